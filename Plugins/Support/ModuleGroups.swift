import CGraftPlugin

/// Per-module groups of a weight file's tensors, in order of each module's first appearance
/// (the order in which the plugins add sites, so an adapter's terms and routers come out in the
/// file's order).
package struct ModuleGroups<Group> {
    package private(set) var groups: [Group] = []
    private var slot: [String: Int] = [:]

    package init() {}

    /// The index of `module`'s group, made with `make(module)` on first sight.
    package mutating func index(of module: String, make: (String) -> Group) -> Int {
        if let i = slot[module] { return i }
        slot[module] = groups.count
        groups.append(make(module))
        return groups.count - 1
    }

    package subscript(i: Int) -> Group {
        get { groups[i] }
        set { groups[i] = newValue }
    }
}

/// One module's tensors in a mixture-of-LoRA-experts file (the MoE-LoRA and ModalityGate key
/// scheme), as found; the loaders check them:
///     <module>.router.weight [E, in], <module>.router.bias [E]
///     <module>.experts.<e>.lora_A.weight [r, in] → a[e], ...lora_B.weight [out, r] → b[e]
package struct ExpertModuleWeights {
    package let module: String
    package var router: graft_st_tensor?
    package var bias: graft_st_tensor?
    package var a: [Int: graft_st_tensor] = [:]
    package var b: [Int: graft_st_tensor] = [:]

    package init(module: String) { self.module = module }
}

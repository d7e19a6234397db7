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

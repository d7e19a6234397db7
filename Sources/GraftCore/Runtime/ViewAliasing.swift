/// Steps whose output is its input's bytes unchanged — Reshape, Flatten, Squeeze, Unsqueeze,
/// Identity and a one-input Concat — become views: the planner gives the output the storage of
/// the input it reads (its *root*, following chains of views) instead of running a copy.
///
/// Why this is safe:
/// - No kernel writes over an input: kernels write only `io.raw(output:)`, and an arena output
///   is placed before the step's inputs are released, so it never overlaps a live value.
///   A view only adds readers of its root, so the root stays live until the last reader of
///   every alias (`extendLiveness`), and no later output can land on it.
/// - A view of a graph input, a constant or a graph output is that same pointer (the view's
///   slot gets a copy of the root's `Plan.Source`); the caller's inputs are never written.
/// - A value that is itself a graph output keeps its copy step: the session hands out output
///   tensors of their own, so it must be written there.
/// - A product of MatMul or Gemm read both by a view and by another step keeps its copy: later
///   stages look at a product's readers among the steps that run — the planner's bias-Add
///   detection for sites, and `LinearEpilogues`, which absorbs a lone bias Add so that the
///   product's own value no longer exists — and would not see the view's readers.
/// - Each view keeps a slot of its own, so the adapter runtime's pointer swaps on a site's input
///   slot (`scaleInput`, `mixBlockInput`) touch that value only, as before.
/// Runs on the compiled steps before `LinearEpilogues`, so the epilogues' step indices refer to
/// the steps that run; `extendLiveness` runs after every other liveness extension of
/// `Plan.build` (sites, blocks, an epilogue's inputs kept to the next step), so those reach the
/// roots too.
enum ViewAliasing {
    /// Operators whose output is a byte-for-byte copy of input 0 (checked again by type below).
    static let copyOps: Set<String> = ["Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"]

    /// Whether `node`'s kernel only copies input 0 unchanged into output 0.
    static func isCopy(_ node: Node, types: [String: TensorType]) -> Bool {
        guard node.isDefaultDomain, node.outputs.count == 1,
              let input = node.inputs.first, !input.isEmpty, let output = node.outputs.first, !output.isEmpty else { return false }
        switch node.opType {
        case _ where copyOps.contains(node.opType): break
        case "Concat" where node.inputs.count == 1: break
        default: return false
        }
        guard let a = types[input], let b = types[output] else { return false }
        return a.dtype == b.dtype && a.count == b.count
    }

    /// Removes the views from the steps left to run and returns, per view value, its root (a
    /// value that is not a view: a step output, a graph input or a constant).
    static func apply(_ c: inout Plan.CompiledGraph, graphOutputs: Set<String>) -> [String: String] {
        var products = Set<String>()
        for p in c.pending where p.node.isDefaultDomain {
            if p.node.opType == "MatMul" || p.node.opType == "Gemm", let o = p.node.outputs.first { products.insert(o) }
        }
        let readers = c.readers()
        var rootOf: [String: String] = [:]
        var kept: [(node: Node, kernel: CompiledKernel)] = []
        kept.reserveCapacity(c.pending.count)
        for p in c.pending {
            if isCopy(p.node, types: c.types), !graphOutputs.contains(p.node.outputs[0]),
               !products.contains(p.node.inputs[0]) || readers[p.node.inputs[0], default: []].count <= 1 {
                let input = p.node.inputs[0]
                rootOf[p.node.outputs[0]] = rootOf[input] ?? input
            } else {
                kept.append(p)
            }
        }
        c.pending = kept
        return rootOf
    }

    /// A root's storage must stay live until the last step that reads it through any alias.
    static func extendLiveness(_ lastUse: inout [String: Int], rootOf: [String: String]) {
        for (view, root) in rootOf {
            guard let last = lastUse[view] else { continue }
            lastUse[root] = max(lastUse[root] ?? last, last)
        }
    }
}

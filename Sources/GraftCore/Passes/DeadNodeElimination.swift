/// Removes nodes whose outputs no graph output depends on, and initializers nothing reads.
/// Expects nodes in topological order.
package enum DeadNodeElimination {
    package static func run(_ graph: Graph) -> Graph {
        var g = graph
        var live = Set(g.outputs.map(\.name))
        var kept: [Node] = []
        for node in g.nodes.reversed() where node.outputs.contains(where: { live.contains($0) }) {
            kept.append(node)
            for input in node.inputs where !input.isEmpty { live.insert(input) }
        }
        g.nodes = kept.reversed()
        g.initializers = g.initializers.filter { live.contains($0.key) }
        return g
    }
}

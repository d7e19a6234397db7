/// Evaluates, once at load, every node whose inputs are all constants (initializers or
/// outputs of nodes folded before it) and replaces it by its outputs as initializers. This
/// removes the weight transposes and constant arithmetic exporters leave behind; the
/// shape subgraphs that hang off run-time inputs (`Shape → Gather → Concat → Reshape`) are
/// folded per shape signature by the planner, with the same kernels.
package enum ConstantFolding {
    /// Folded outputs larger than this many elements, and larger than the node's inputs, stay
    /// as nodes (a `ConstantOfShape` or `Expand` would otherwise bloat the model).
    package static let maxGrowthElements = 1 << 20

    package static func run(_ graph: Graph) throws -> Graph {
        var g = graph
        var kept: [Node] = []
        for node in g.nodes {
            let present = node.inputs.filter { !$0.isEmpty }
            guard present.allSatisfy({ g.initializers[$0] != nil }) else {
                kept.append(node)
                continue
            }
            let inputs = node.inputs.map { $0.isEmpty ? nil : g.initializers[$0] }
            // Sizes are known once compiled: decide before executing allocates the outputs.
            let kernel = try KernelRegistry.compile(node, inputTypes: inputs.map { $0.map { TensorType($0.dtype, $0.shape) } },
                                                    constants: inputs, opset: g.opset, threads: 1, limits: g.limits)
            let inCount = inputs.reduce(0) { $0 + ($1?.count ?? 0) }
            let outCount = kernel.outputTypes.reduce(0) { $0 + $1.count }
            if outCount > max(inCount, maxGrowthElements) {
                kept.append(node)
                continue
            }
            let outputs = try KernelRegistry.execute(kernel, inputs: inputs)
            for (name, t) in zip(node.outputs, outputs) where !name.isEmpty {
                g.initializers[name] = t
            }
        }
        g.nodes = kept
        return g
    }
}

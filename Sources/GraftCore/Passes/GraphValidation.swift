/// Graph-level checks after import (libonnx's checker refuses IR > 8, so Graft checks itself),
/// and the topological sort every later pass relies on. Each error names the node at fault.
package enum GraphValidation {
    /// Validates `graph` and returns it with nodes in topological order.
    package static func validateAndSort(_ graph: Graph) throws -> Graph {
        var g = graph
        // Who defines each value: graph inputs, initializers, or exactly one node output.
        var producer: [String: Int] = [:]   // value -> node index
        var defined = Set<String>(g.initializers.keys)
        for input in g.inputs {
            guard defined.insert(input.name).inserted else {
                throw GraftError(.invalidModel, "graph input '\(input.name)' is declared twice")
            }
        }
        for (i, node) in g.nodes.enumerated() {
            if let factory = KernelRegistry.factory(for: node) { _ = factory } else {
                throw GraftError(.unsupported, "operator \(node.opType) (domain '\(node.domain.isEmpty ? "ai.onnx" : node.domain)') of \(node.label) is not supported")
            }
            for (key, attr) in node.attributes {
                if case .graph = attr {
                    throw GraftError(.unsupported, "\(node.label): attribute '\(key)' holds a subgraph; control flow (If/Loop/Scan) is not supported")
                }
            }
            for out in node.outputs where !out.isEmpty {
                if defined.contains(out) || producer[out] != nil {
                    throw GraftError(.invalidModel, "\(node.label): output '\(out)' is already defined by \(producer[out].map { g.nodes[$0].label } ?? "a graph input or initializer")")
                }
                producer[out] = i
            }
        }
        // Dangling inputs.
        for node in g.nodes {
            for input in node.inputs where !input.isEmpty && !defined.contains(input) && producer[input] == nil {
                throw GraftError(.invalidModel, "\(node.label): input '\(input)' is not a graph input, an initializer or any node's output")
            }
        }
        for out in g.outputs where !defined.contains(out.name) && producer[out.name] == nil {
            throw GraftError(.invalidModel, "graph output '\(out.name)' is not produced by any node")
        }

        // Kahn's algorithm; nodes left over sit on a cycle.
        var pending = [Int](repeating: 0, count: g.nodes.count)
        var consumers: [String: [Int]] = [:]
        for (i, node) in g.nodes.enumerated() {
            for input in Set(node.inputs) where producer[input] != nil {
                pending[i] += 1
                consumers[input, default: []].append(i)
            }
        }
        var ready = (0..<g.nodes.count).filter { pending[$0] == 0 }
        var order: [Int] = []
        order.reserveCapacity(g.nodes.count)
        var head = 0
        while head < ready.count {
            let i = ready[head]
            head += 1
            order.append(i)
            for out in g.nodes[i].outputs where !out.isEmpty {
                for c in consumers[out] ?? [] {
                    pending[c] -= 1
                    if pending[c] == 0 { ready.append(c) }
                }
            }
        }
        if order.count < g.nodes.count {
            let stuck = (0..<g.nodes.count).filter { pending[$0] > 0 }.prefix(5).map { g.nodes[$0].label }
            throw GraftError(.invalidModel, "the graph has a cycle through \(stuck.joined(separator: ", "))")
        }
        g.nodes = order.map { g.nodes[$0] }

        // Declared ranks of graph outputs must agree with value_info where both exist.
        for out in g.outputs {
            if let declared = out.dims, let info = g.valueInfo[out.name]?.dims, declared.count != info.count {
                throw GraftError(.invalidModel, "graph output '\(out.name)' is declared with rank \(declared.count) but value_info says \(info.count)")
            }
        }
        return g
    }
}

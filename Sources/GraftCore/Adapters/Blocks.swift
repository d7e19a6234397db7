/// A gated MLP block of the backbone — `down( act(gate(x)) ⊙ up(x) )` — found in the graph, so
/// that a block mixture (MixLoRA: experts that each own the whole block, act included) can run
/// in place of the graph's own activation and product.
///
/// Both exporters spell a Llama MLP as
///     gate = MatMul(x, W_g);  a = <elementwise chain of gate>  (SiLU: Mul(gate, Sigmoid(gate)));
///     up   = MatMul(x, W_u);  m = Mul(a, up);  down = MatMul(m, W_d)
/// (TorchScript names the nodes `/model/model/layers.0/mlp/act_fn/Sigmoid`, dynamo `node_silu`
/// with name-scope metadata; the structure is the same).
package struct MLPBlock: Sendable, Equatable {
    package let index: Int
    package let gate: Int          // site indices
    package let up: Int
    package let down: Int
    /// Outputs of the nodes between the projections (the activation chain and the Mul): the
    /// steps a block mixture covering every row skips, because it computes their result itself.
    package let internalValues: [String]
    /// The activation chain's op types, in graph order (for messages).
    package let activationOps: [String]
}

package enum BlockDiscovery {
    /// Ops an activation chain between gate and the Mul may use: elementwise, one output.
    static let elementwise: Set<String> = [
        "Sigmoid", "Mul", "Add", "Sub", "Div", "Tanh", "Erf", "Relu", "Gelu", "Pow", "Neg", "Exp",
        "Softplus", "HardSigmoid", "HardSwish", "Clip", "Max", "Min", "Cast", "Identity", "Sqrt",
    ]
    /// Longest activation chain looked at (SiLU is 2 nodes, tanh-GELU about 8).
    static let maxChain = 16

    /// Every gated MLP block: sites gate, up, down as above, where gate and up read the same
    /// input with the same shape, every intermediate value is read only inside the block and is
    /// not a graph output, and no projection has a bias (down's output is not fed to an Add of a
    /// constant vector; gate's and up's are read by the chain and the Mul directly).
    package static func discover(_ g: Graph, sites: [Site]) -> [MLPBlock] {
        var producer: [String: Node] = [:]
        var readers: [String: [Int]] = [:]
        for (i, n) in g.nodes.enumerated() {
            for o in n.outputs where !o.isEmpty { producer[o] = n }
            for v in Set(n.inputs) where !v.isEmpty { readers[v, default: []].append(i) }
        }
        let siteByOutput = Dictionary(sites.map { ($0.output, $0) }, uniquingKeysWith: { a, _ in a })
        let graphOutputs = Set(g.outputs.map(\.name))
        var blocks: [MLPBlock] = []
        for down in sites {
            guard let mul = producer[down.input], mul.opType == "Mul", mul.inputs.count == 2,
                  let mulOut = mul.outputs.first, readers[mulOut]?.count == 1, !graphOutputs.contains(mulOut),
                  !hasBias(down, readers: readers, nodes: g.nodes, initializers: g.initializers)
            else { continue }
            for (actValue, upValue) in [(mul.inputs[0], mul.inputs[1]), (mul.inputs[1], mul.inputs[0])] {
                guard let up = siteByOutput[upValue], readers[upValue]?.count == 1, !graphOutputs.contains(upValue),
                      let chain = activationChain(from: actValue, producer: producer, initializers: g.initializers,
                                                  siteByOutput: siteByOutput),
                      let gate = siteByOutput[chain.source], gate.index != up.index, gate.index != down.index,
                      gate.input == up.input, gate.inFeatures == up.inFeatures,
                      gate.outFeatures == up.outFeatures, up.outFeatures == down.inFeatures
                else { continue }
                // Everything the chain and gate produce is read only by the chain or the Mul.
                let inside = Set(chain.nodes.compactMap { $0.outputs.first })
                let allowedReaders = Set(g.nodes.indices.filter { i in
                    g.nodes[i].outputs.first.map { inside.contains($0) || $0 == mulOut } ?? false
                })
                let values = [chain.source] + chain.nodes.compactMap { $0.outputs.first }
                guard values.allSatisfy({ v in !graphOutputs.contains(v) && (readers[v] ?? []).allSatisfy { allowedReaders.contains($0) } })
                else { continue }
                blocks.append(MLPBlock(index: blocks.count, gate: gate.index, up: up.index, down: down.index,
                                       internalValues: chain.nodes.compactMap { $0.outputs.first } + [mulOut],
                                       activationOps: chain.nodes.map(\.opType)))
                break
            }
        }
        return blocks
    }

    /// The nodes computing `value` from one site's output alone (plus constants), in graph
    /// order, and that site output; nil when `value` depends on anything else.
    static func activationChain(from value: String, producer: [String: Node], initializers: [String: HostTensor],
                                siteByOutput: [String: Site]) -> (source: String, nodes: [Node])? {
        var source: String?
        var nodes: [String: Node] = [:]
        var order: [String] = []
        var stack = [value]
        while let v = stack.popLast() {
            if siteByOutput[v] != nil {
                if source != nil && source != v { return nil }
                source = v
                continue
            }
            if nodes[v] != nil || initializers[v] != nil { continue }
            guard let n = producer[v], n.isDefaultDomain, elementwise.contains(n.opType),
                  n.outputs.count == 1, nodes.count < maxChain else { return nil }
            nodes[v] = n
            order.append(v)
            stack += n.inputs.filter { !$0.isEmpty }
        }
        guard let source, !order.isEmpty || value == source else { return nil }
        // Reversed discovery order: producers before readers for a chain (used for messages only).
        return (source, order.reversed().map { nodes[$0]! })
    }

    /// Whether a site's only reader adds a constant [out] vector to it (a Linear's bias).
    static func hasBias(_ site: Site, readers: [String: [Int]], nodes: [Node], initializers: [String: HostTensor]) -> Bool {
        guard let r = readers[site.output], r.count == 1 else { return false }
        let n = nodes[r[0]]
        guard n.opType == "Add", n.inputs.count == 2 else { return false }
        let other = n.inputs[0] == site.output ? n.inputs[1] : n.inputs[0]
        guard let b = initializers[other] else { return false }
        return b.count == site.outFeatures
    }
}

extension Array where Element == MLPBlock {
    /// The block made of exactly these three sites; an error saying what the sites are instead.
    package func find(gate: Int, up: Int, down: Int, sites: [Site]) throws -> MLPBlock {
        if let b = first(where: { $0.gate == gate && $0.up == up && $0.down == down }) { return b }
        func name(_ i: Int) -> String { i < sites.count ? "'\(sites[i].name)'" : "#\(i)" }
        let known = isEmpty ? "the model has no gated MLP block" :
            "its gated MLP blocks are " + prefix(3).map { "(\(name($0.gate)), \(name($0.up)), \(name($0.down)))" }.joined(separator: ", ") + (count > 3 ? ", …" : "")
        throw GraftError(.invalidArgument, "sites \(name(gate)) (gate), \(name(up)) (up) and \(name(down)) (down) do not form a gated MLP block of this model (down(act(gate(x)) ⊙ up(x)) with gate and up reading the same input, no biases); \(known)")
    }
}

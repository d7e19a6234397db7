/// Plan-time fusion of a weight product with what the exporters write after it: the bias
/// `Add` of a Linear layer, and a GELU after that (BERT's intermediate layer). The product's
/// kernel adds the bias and applies the activation on each thread's block of C right after
/// computing it, instead of two more passes over the output.
///
/// It runs on the compiled steps (`Plan.CompiledGraph`), not on the graph, because whether it
/// may happen depends on what is bound at run time:
/// - The bias `Add` is absorbed always. A site's output is complete after its bias (adapter
///   terms and output scales apply there, `Plan.build`), and with the bias in the product the
///   product's step is that point, so adapters see exactly the value they saw before.
/// - The activation is not: adapter terms must be added before it. The product's step gets a
///   second kernel that also computes the next step (the GELU) and writes its output; a run
///   uses it only when nothing acts at that site (`CoreSession.execute`), and otherwise runs
///   the product (with bias) and the GELU step as before.
/// Gated MLP blocks (MixLoRA) never match: their projections have no bias.
enum LinearEpilogues {
    struct Result {
        /// A product's output value → the absorbed bias Add's output, which the product's step
        /// now writes (sites whose output was the product's are complete at that step).
        var absorbed: [String: String] = [:]
        /// Index in `pending` of a product → its kernel that also computes `pending[index + 1]`
        /// (an activation of the product's output), writing that step's output.
        var withNext: [Int: CompiledKernel] = [:]
    }

    static func apply(_ c: inout Plan.CompiledGraph, graph: Graph, threads: Int) throws -> Result {
        var result = Result()
        let graphOutputs = Set(graph.outputs.map(\.name))
        var readers: [String: [Int]] = [:]
        for (i, p) in c.pending.enumerated() {
            for name in Set(p.node.inputs) where !name.isEmpty { readers[name, default: []].append(i) }
        }
        var remove = Set<Int>()
        for i in c.pending.indices {
            let node = c.pending[i].node
            guard isDefaultDomain(node), node.opType == "MatMul", node.inputs.count == 2, node.outputs.count == 1,
                  let w = c.constants[node.inputs[1]], w.rank == 2, w.dtype == .float32,
                  let xType = c.types[node.inputs[0]], xType.dtype == .float32,
                  let product = node.outputs.first, !graphOutputs.contains(product),
                  let r = readers[product], r.count == 1, !remove.contains(r[0])
            else { continue }
            let add = c.pending[r[0]].node
            guard isDefaultDomain(add), add.opType == "Add", add.inputs.count == 2, add.outputs.count == 1,
                  let other = add.inputs.first(where: { $0 != product }), add.inputs.contains(product),
                  let bias = c.constants[other], bias.dtype == .float32, bias.count == w.shape[1], bias.shape.last == w.shape[1],
                  let sum = add.outputs.first, c.types[sum] == c.types[product]
            else { continue }
            let ctx = KernelContext(node: node, inputTypes: [xType, TensorType(w.dtype, w.shape)],
                                    constants: [c.constants[node.inputs[0]], w], opset: graph.opset, threads: threads,
                                    limits: graph.limits)
            var epilogue = LinearKernels.Epilogue(bias: bias, activation: nil)
            var fused = node
            fused.outputs = [sum]
            c.pending[i] = (fused, try LinearKernels.matmul(ctx, epilogue: epilogue))
            remove.insert(r[0])
            result.absorbed[product] = sum

            // The activation, when it is the step right after the Add's removal and reads only
            // the sum. `r[0]` is the Add; the next surviving step must be the activation.
            guard let next = (i + 1..<c.pending.count).first(where: { !remove.contains($0) }),
                  let act = activation(of: c.pending[next].node),
                  c.pending[next].node.inputs == [sum], !graphOutputs.contains(sum),
                  let sumReaders = readers[sum], sumReaders == [next],
                  let out = c.pending[next].node.outputs.first, c.types[out] == c.types[sum]
            else { continue }
            epilogue.activation = act
            result.withNext[i] = try LinearKernels.matmul(ctx, epilogue: epilogue)
        }
        guard !remove.isEmpty else { return result }
        // Re-index `withNext` past the removed steps.
        var newIndex: [Int: Int] = [:]
        var kept: [(node: Node, kernel: CompiledKernel)] = []
        for (i, p) in c.pending.enumerated() where !remove.contains(i) {
            newIndex[i] = kept.count
            kept.append(p)
        }
        c.pending = kept
        result.withNext = Dictionary(uniqueKeysWithValues: result.withNext.compactMap { k, v in newIndex[k].map { ($0, v) } })
        return result
    }

    private static func isDefaultDomain(_ n: Node) -> Bool { n.domain.isEmpty || n.domain == "ai.onnx" }

    /// The activation an epilogue can apply for this node: `graft:FusedGelu` or ONNX `Gelu`
    /// (opset 20), exact or tanh form.
    private static func activation(of n: Node) -> LinearActivation? {
        guard n.inputs.count == 1, n.outputs.count == 1,
              (n.domain == Fusion.domain && n.opType == "FusedGelu") || (isDefaultDomain(n) && n.opType == "Gelu")
        else { return nil }
        switch n.string("approximate") ?? "none" {
        case "none": return .geluErf
        case "tanh": return .geluTanh
        default: return nil
        }
    }
}

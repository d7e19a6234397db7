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
        let readers = c.readers()
        var remove = Set<Int>()
        for i in c.pending.indices {
            let node = c.pending[i].node
            guard node.isDefaultDomain, node.opType == "MatMul", node.inputs.count == 2, node.outputs.count == 1,
                  let w = c.constants[node.inputs[1]], w.rank == 2, w.dtype == .float32,
                  let xType = c.types[node.inputs[0]], xType.dtype == .float32, let product = node.outputs.first,
                  let (j, bias) = c.biasAdd(of: product, columns: w.shape[1], readers: readers, graphOutputs: graphOutputs),
                  !remove.contains(j)
            else { continue }
            let sum = c.pending[j].node.outputs[0]
            let ctx = KernelContext(node: node, inputTypes: [xType, TensorType(w.dtype, w.shape)],
                                    constants: [c.constants[node.inputs[0]], w], opset: graph.opset, threads: threads,
                                    limits: graph.limits)
            var epilogue = LinearKernels.Epilogue(bias: bias, activation: nil)
            var fused = node
            fused.outputs = [sum]
            c.pending[i] = (fused, try LinearKernels.matmul(ctx, epilogue: epilogue))
            remove.insert(j)
            result.absorbed[product] = sum

            // The activation, when it is the step right after the Add's removal and reads only
            // the sum. `j` is the Add; the next surviving step must be the activation.
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

    /// The activation an epilogue can apply for this node: `graft:FusedGelu` or ONNX `Gelu`
    /// (opset 20), exact or tanh form.
    private static func activation(of n: Node) -> LinearActivation? {
        guard n.inputs.count == 1, n.outputs.count == 1,
              (n.domain == Fusion.domain && n.opType == "FusedGelu") || (n.isDefaultDomain && n.opType == "Gelu")
        else { return nil }
        switch n.string("approximate") ?? "none" {
        case "none": return .geluErf
        case "tanh": return .geluTanh
        default: return nil
        }
    }
}

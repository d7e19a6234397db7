/// Normalisations: the decomposed RMS norm, and a residual Add feeding a norm.
///
/// RMS norm as both exporters write Llama's `LlamaRMSNorm`:
///     dynamo:       Mul(w, Mul(x, Reciprocal(Sqrt(Add(ReduceMean(Pow(x, 2), [-1]), ε)))))
///     TorchScript:  Mul(w, Cast(Mul(x, Div(1, Sqrt(Add(ReduceMean(Pow(x, 2), axes=[-1]), ε))))))
/// (the Cast is to float, the type the Mul already has). Also `Div(x, Sqrt(...))` and `Mul(x, x)`
/// for the square. → `graft:FusedRMSNorm(x, w)` with `epsilon`.
///
/// LayerNorm decomposed (TorchScript below opset 17) → `graft:FusedLayerNorm(x, w[, b])`.
///
/// Residual add + norm: `LayerNormalization(Add(a, b), ...)` (or `FusedLayerNorm`) or `FusedRMSNorm(Add(a, b), w)`
/// with a and b float32 of one shape (TorchScript's float Cast of the sum in between allowed)
/// → `graft:FusedAddNorm(a, b, scale[, bias])`. BERT (post-LN) reads
/// the sum only in the norm; Llama (pre-LN) also adds it to the next residual, so then the
/// fused node also writes the sum under the Add's output name.
enum FusionNorm {
    // MARK: - RMS norm

    static func matchRMS(_ ctx: inout FusionContext) {
        guard let shapes = ctx.shapes else { return }
        for fin in ctx.graph.nodes.indices where ctx.isDefault(fin, "Mul") && ctx.free(fin) {
            let node = ctx.node(fin)
            guard node.inputs.count == 2, node.outputs.count == 1 else { continue }
            for (w, v) in [(node.inputs[0], node.inputs[1]), (node.inputs[1], node.inputs[0])] {
                guard let weight = ctx.graph.initializers[w], weight.dtype == .float32,
                      let chain = normalized(ctx, v, readBy: fin),
                      let dims = shapes[chain.x], case .fixed(let n)? = dims.last, ctx.areFloat([chain.x]),
                      weight.count == n, weight.shape.last == n else { continue }
                let fused = Fusion.node("FusedRMSNorm", replacing: node, inputs: [chain.x, w], outputs: node.outputs,
                                        attributes: ["epsilon": .float(chain.epsilon), "axis": .int(-1)])
                if ctx.rewrite(chain.nodes + [fin], fused) { break }
            }
        }
    }

    /// `v = x · 1/√(mean(x², last axis) + ε)` (through an optional float Cast), each value read
    /// only inside: the nodes, x and ε.
    static func normalized(_ ctx: FusionContext, _ v: String, readBy reader: Int) -> (nodes: [Int], x: String, epsilon: Float)? {
        var nodes: [Int] = []
        var value = v, next = reader
        if let cast = ctx.inner(value, op: "Cast", readBy: next) {
            guard ctx.node(cast).int("to") == Int(DType.float32.rawValue) else { return nil }
            nodes.append(cast)
            value = ctx.node(cast).inputs[0]
            next = cast
        }
        // x / √(...)
        if let div = ctx.inner(value, op: "Div", readBy: next), ctx.node(div).inputs.count == 2 {
            let ins = ctx.node(div).inputs
            guard let root = rootMeanSquare(ctx, ins[1], of: ins[0], readBy: div) else { return nil }
            return (nodes + [div] + root.nodes, ins[0], root.epsilon)
        }
        // x · r, r = Reciprocal(√(...)) or Div(1, √(...))
        guard let mul = ctx.inner(value, op: "Mul", readBy: next), ctx.node(mul).inputs.count == 2 else { return nil }
        let ins = ctx.node(mul).inputs
        for (x, r) in [(ins[0], ins[1]), (ins[1], ins[0])] where x != r {
            var inv: [Int] = []
            var sq: String
            if let rec = ctx.inner(r, op: "Reciprocal", readBy: mul) {
                inv = [rec]
                sq = ctx.node(rec).inputs[0]
            } else if let div = ctx.inner(r, op: "Div", readBy: mul), ctx.node(div).inputs.count == 2, ctx.isScalar(ctx.node(div).inputs[0], 1) {
                inv = [div]
                sq = ctx.node(div).inputs[1]
            } else { continue }
            guard let root = rootMeanSquare(ctx, sq, of: x, readBy: inv[0]) else { continue }
            return (nodes + [mul] + inv + root.nodes, x, root.epsilon)
        }
        return nil
    }

    /// `value = Sqrt(Add(ReduceMean(Pow(x, 2) | Mul(x, x), last axis, keepdims), ε))`.
    static func rootMeanSquare(_ ctx: FusionContext, _ value: String, of x: String, readBy reader: Int) -> (nodes: [Int], epsilon: Float)? {
        guard let sqrt = ctx.inner(value, op: "Sqrt", readBy: reader),
              let add = ctx.inner(ctx.node(sqrt).inputs[0], op: "Add", readBy: sqrt), ctx.node(add).inputs.count == 2 else { return nil }
        let ins = ctx.node(add).inputs
        let (m, e) = ctx.scalar(ins[1]) != nil ? (ins[0], ins[1]) : (ins[1], ins[0])
        guard let epsilon = ctx.scalar(e), epsilon >= 0, epsilon.isFinite,
              let mean = ctx.inner(m, op: "ReduceMean", readBy: add) else { return nil }
        guard let rank = ctx.shapes?[x]?.count, isLastAxisMean(ctx, mean, rank: rank) else { return nil }
        let square = ctx.node(mean).inputs[0]
        if let pow = ctx.inner(square, op: "Pow", readBy: mean) {
            let p = ctx.node(pow)
            guard p.inputs.count == 2, p.inputs[0] == x, let t = ctx.graph.initializers[p.inputs[1]], t.count == 1,
                  (t.dtype == .float32 && t.floats()[0] == 2) || ((t.dtype == .int64 || t.dtype == .int32) && t.integers()[0] == 2)
            else { return nil }
            return ([sqrt, add, mean, pow], epsilon)
        }
        if let mul = ctx.inner(square, op: "Mul", readBy: mean), ctx.node(mul).inputs == [x, x] {
            return ([sqrt, add, mean, mul], epsilon)
        }
        return nil
    }

    /// A ReduceMean over the last axis of a rank-`rank` input, keeping dims. Axes come from the
    /// attribute (opset < 18) or the second input (18+).
    static func isLastAxisMean(_ ctx: FusionContext, _ mean: Int, rank: Int) -> Bool {
        let node = ctx.node(mean)
        guard node.int("keepdims", default: 1) == 1 else { return false }
        var axes = node.ints("axes")
        if node.inputs.count > 1, !node.inputs[1].isEmpty {
            guard axes == nil, let t = ctx.graph.initializers[node.inputs[1]], t.dtype == .int64 || t.dtype == .int32 else { return false }
            axes = t.integers()
        }
        guard let axes, axes.count == 1 else { return false }
        return axes[0] == -1 || axes[0] == rank - 1
    }

    // MARK: - Decomposed LayerNorm

    /// LayerNorm as TorchScript writes it below opset 17:
    ///     d = Sub(X, ReduceMean(X, [-1]));  n = Div(d, Sqrt(Add(ReduceMean(Pow(d, 2), [-1]), ε)))
    ///     y = Add(Mul(n, w), b)
    /// → `graft:FusedLayerNorm(X, w, b)` (the LayerNormalization kernel; the bias is optional).
    static func matchLayerNorm(_ ctx: inout FusionContext) {
        guard let shapes = ctx.shapes else { return }
        for div in ctx.graph.nodes.indices where ctx.isDefault(div, "Div") && ctx.free(div) {
            let node = ctx.node(div)
            guard node.inputs.count == 2, let root = rootMeanSquare(ctx, node.inputs[1], of: node.inputs[0], readBy: div),
                  let pow = root.nodes.last, let sub = ctx.inner(node.inputs[0], op: "Sub", readOnlyBy: [div, pow]),
                  ctx.node(sub).inputs.count == 2 else { continue }
            let x = ctx.node(sub).inputs[0]
            guard let dims = shapes[x], case .fixed(let n)? = dims.last, ctx.areFloat([x]),
                  let mean = ctx.inner(ctx.node(sub).inputs[1], op: "ReduceMean", readBy: sub),
                  ctx.node(mean).inputs.first == x, isLastAxisMean(ctx, mean, rank: dims.count) else { continue }
            // The affine part: Mul by a [n] weight, then optionally Add of a [n] bias.
            func affine(_ value: String, _ op: String, readBy reader: Int) -> (Int, String)? {
                guard let r = ctx.readers(of: value).first, ctx.readers(of: value).count == 1, !ctx.graphOutputs.contains(value),
                      ctx.isDefault(r, op), ctx.free(r), ctx.node(r).inputs.count == 2 else { return nil }
                let ins = ctx.node(r).inputs
                let p = ins[0] == value ? ins[1] : ins[0]
                guard ins.contains(value), let t = ctx.graph.initializers[p], t.dtype == .float32, t.count == n, t.shape.last == n
                else { return nil }
                return (r, p)
            }
            guard let (mul, w) = affine(node.outputs[0], "Mul", readBy: div) else { continue }
            var nodes = [sub, mean, div, mul] + root.nodes
            var inputs = [x, w]
            var last = mul
            if let (add, b) = affine(ctx.node(mul).outputs[0], "Add", readBy: mul) {
                nodes.append(add)
                inputs.append(b)
                last = add
            }
            ctx.rewrite(nodes, Fusion.node("FusedLayerNorm", replacing: ctx.node(last), inputs: inputs, outputs: ctx.node(last).outputs,
                                           attributes: ["epsilon": .float(root.epsilon), "axis": .int(-1)]))
        }
    }

    // MARK: - Residual add + norm

    static func matchAddNorm(_ ctx: inout FusionContext) {
        guard let shapes = ctx.shapes else { return }
        for i in ctx.graph.nodes.indices where ctx.free(i) {
            let node = ctx.node(i)
            let rms: Bool
            if ctx.isDefault(i, "LayerNormalization") || (node.domain == Fusion.domain && node.opType == "FusedLayerNorm") {
                rms = false
            } else if node.domain == Fusion.domain && node.opType == "FusedRMSNorm" {
                rms = true
            } else { continue }
            // Only Y: the optional Mean / InvStdDev outputs have no place in the fused node.
            guard node.inputs.count >= 2, node.outputs.count == 1 || node.outputs.dropFirst().allSatisfy(\.isEmpty),
                  let sum = node.inputs.first else { continue }
            // TorchScript's Llama casts the sum to float (what it already is) before the norm:
            // Add → Cast(to float) → norm, the Add's output read only by the Cast.
            var chain = [i]
            var added = sum
            if let cast = ctx.producer(of: sum, op: "Cast"), ctx.free(cast), ctx.node(cast).int("to") == Int(DType.float32.rawValue) {
                added = ctx.node(cast).inputs[0]
                guard ctx.inner(added, op: "Add", readBy: cast) != nil else { continue }
                chain.append(cast)
            }
            guard let add = ctx.producer(of: added, op: "Add"), ctx.free(add) else { continue }
            let a = ctx.node(add)
            guard a.inputs.count == 2, ctx.graph.initializers[a.inputs[0]] == nil, ctx.graph.initializers[a.inputs[1]] == nil,
                  ctx.areFloat(a.inputs), let d = shapes[sum], !d.isEmpty, !d.contains(.unknown),
                  shapes[a.inputs[0]] == d, shapes[a.inputs[1]] == d
            else { continue }
            // The value the norm reads (the sum, or its cast) is kept when read elsewhere.
            let sumReadElsewhere = ctx.readers(of: sum) != [i] || ctx.graphOutputs.contains(sum)
            var attrs: [String: Attribute] = ["epsilon": .float(node.float("epsilon", default: 1e-5)),
                                              "axis": .int(node.int("axis", default: -1))]
            if rms { attrs["rms"] = .int(1) }
            let inputs = [a.inputs[0], a.inputs[1]] + node.inputs.dropFirst()
            ctx.rewrite([add] + chain, Fusion.node("FusedAddNorm", replacing: node, inputs: Array(inputs),
                                                   outputs: [node.outputs[0]] + (sumReadElsewhere ? [sum] : []), attributes: attrs))
        }
    }
}

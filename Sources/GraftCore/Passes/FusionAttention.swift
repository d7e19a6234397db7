/// Scaled-dot-product attention from the projections' outputs to the merged heads →
/// `graft:FusedAttention(Q, K, V, M)` (`Kernels/FusedAttention.swift`). Runs after
/// `FusionSoftmax`, whose `FusedScaledSoftmax` node carries the scale and mask.
///
/// Matched (transformers' eager attention, both exporters; `x` in `[B, S, H·D]`):
///     Qt = Transpose(Reshape(Q → [B, Sq, H, D]), [0,2,1,3])
///     Kt = Transpose(Reshape(K → [B, Sk, H, D]), [0,2,3,1])   (or [0,2,1,3] then [0,1,3,2])
///     Vt = Transpose(Reshape(V → [B, Sk, H, Dv]), [0,2,1,3])
///     P  = FusedScaledSoftmax(MatMul(Qt, Kt), M?)   or Softmax(MatMul(Qt, Kt)) over the last axis
///     Y  = Reshape(Transpose(MatMul(Cast*(P), Vt), [0,2,1,3]) → [B, Sq, H·Dv])
/// (`Cast*`: float→float Casts, TorchScript ViT writes two). The Reshapes' shape operands may be
/// computed (TorchScript's Shape/Concat chains): the shapes are checked on the load-time symbolic
/// shapes instead: each split keeps the first two dims of its `[B, S, H·D]` input and splits the
/// last into fixed H × D, one H for all three, one B, K and V of one length, and the final
/// Reshape gives `[B, Sq, H·Dv]`. Every value inside is read only inside (Q, K, V, M and the
/// shape operands are not absorbed) and float32. Llama's rotary embeddings and repeated KV heads
/// sit between the projections and the MatMul: not matched.
enum FusionAttention {
    static func match(_ ctx: inout FusionContext) {
        guard ctx.graph.opset >= 13, let shapes = ctx.shapes else { return }
        for sm in ctx.graph.nodes.indices where ctx.free(sm) {
            guard let m = chain(ctx, shapes, softmax: sm) else { continue }
            let last = ctx.node(m.nodes.max()!)
            ctx.rewrite(m.nodes, Fusion.node("FusedAttention", replacing: last, inputs: m.inputs, outputs: last.outputs,
                                             attributes: m.attributes))
        }
    }

    struct Match {
        var inputs: [String]
        var attributes: [String: Attribute]
        var nodes: [Int]
    }

    /// The softmax's scale/mask attributes and mask, when `sm` is a FusedScaledSoftmax or a
    /// plain last-axis Softmax of a rank-4 value.
    static func softmax(_ ctx: FusionContext, _ shapes: [String: [Dim]], _ sm: Int) -> (attrs: [String: Attribute], mask: String?)? {
        let n = ctx.node(sm)
        guard n.outputs.count == 1, let s = n.inputs.first, !s.isEmpty else { return nil }
        if n.domain == Fusion.domain && n.opType == "FusedScaledSoftmax" {
            var attrs: [String: Attribute] = [:]
            for key in ["scale", "divide", "mask_first"] { if let a = n.attributes[key] { attrs[key] = a } }
            let mask = n.inputs.count > 1 && !n.inputs[1].isEmpty ? n.inputs[1] : nil
            return (attrs, mask)
        }
        guard ctx.isDefault(sm, "Softmax"), n.inputs.count == 1, let dims = shapes[s], dims.count == 4,
              [-1, 3].contains(n.int("axis", default: -1)) else { return nil }
        return ([:], nil)
    }

    static func chain(_ ctx: FusionContext, _ shapes: [String: [Dim]], softmax sm: Int) -> Match? {
        guard let (attrs, mask) = softmax(ctx, shapes, sm) else { return nil }
        let smNode = ctx.node(sm)
        var nodes = [sm]
        // Scores = MatMul(Qt, Kt), read only by the softmax.
        guard let mm1 = ctx.inner(smNode.inputs[0], op: "MatMul", readBy: sm), ctx.node(mm1).inputs.count == 2,
              let qs = split(ctx, ctx.node(mm1).inputs[0], perm: [0, 2, 1, 3], readBy: mm1),
              let ks = split(ctx, ctx.node(mm1).inputs[1], perm: [0, 2, 3, 1], readBy: mm1) else { return nil }
        nodes += [mm1] + qs.nodes + ks.nodes
        // P (through float Casts) → MatMul(P, Vt).
        var p = smNode.outputs[0]
        var reader: Int?
        for _ in 0..<3 {
            guard !ctx.graphOutputs.contains(p), ctx.readers(of: p).count == 1, let r = ctx.readers(of: p).first, ctx.free(r) else { return nil }
            if ctx.isDefault(r, "Cast"), ctx.node(r).int("to", default: 0) == 1, ctx.areFloat([p]), ctx.node(r).outputs.count == 1 {
                nodes.append(r)
                p = ctx.node(r).outputs[0]
                continue
            }
            reader = r
            break
        }
        guard let mm2 = reader, ctx.isDefault(mm2, "MatMul"), ctx.node(mm2).inputs.count == 2, ctx.node(mm2).inputs[0] == p,
              let vs = split(ctx, ctx.node(mm2).inputs[1], perm: [0, 2, 1, 3], readBy: mm2) else { return nil }
        nodes += [mm2] + vs.nodes
        // Y = Reshape(Transpose(O, [0,2,1,3])).
        let o = ctx.node(mm2).outputs[0]
        guard let t = ctx.readers(of: o).first, let ot = transposeOutput(ctx, t, reading: o, perm: [0, 2, 1, 3]),
              ctx.inner(o, op: "MatMul", readBy: t) == mm2,
              let rs = ctx.readers(of: ot).first, ctx.inner(ot, op: "Transpose", readBy: rs) == t,
              ctx.isDefault(rs, "Reshape"), ctx.free(rs), ctx.node(rs).inputs.first == ot, ctx.node(rs).outputs.count == 1 else { return nil }
        nodes += [t, rs]
        let y = ctx.node(rs).outputs[0]

        // Shapes: one B and H; Q [B, Sq, H·D], K [B, Sk, H·D], V [B, Sk, H·Dv], Y [B, Sq, H·Dv].
        guard qs.heads == ks.heads, qs.heads == vs.heads, qs.headSize == ks.headSize,
              qs.dims[0] == ks.dims[0], qs.dims[0] == vs.dims[0], ks.dims[1] == vs.dims[1],
              shapes[y] == [qs.dims[0], qs.dims[1], .fixed(vs.heads * vs.headSize)],
              ctx.areFloat([qs.source, ks.source, vs.source, y] + (mask.map { [$0] } ?? [])) else { return nil }
        var a = attrs
        a["num_heads"] = .int(qs.heads)
        return Match(inputs: [qs.source, ks.source, vs.source] + (mask.map { [$0] } ?? []), attributes: a, nodes: nodes)
    }

    /// A head split read only by `reader`: `value = Transpose(Reshape(x → [B, S, H, D]))` with
    /// the transposes composing to `perm` (one Transpose, or two), x `[B, S, H·D]`.
    static func split(_ ctx: FusionContext, _ value: String, perm: [Int], readBy reader: Int) -> (source: String, dims: [Dim], heads: Int, headSize: Int, nodes: [Int])? {
        guard let shapes = ctx.shapes, let t1 = ctx.inner(value, op: "Transpose", readBy: reader),
              let p1 = ctx.node(t1).ints("perm"), ctx.node(t1).inputs.count == 1 else { return nil }
        var nodes = [t1]
        var composed = p1
        var below = ctx.node(t1).inputs[0]
        if let t0 = ctx.inner(below, op: "Transpose", readBy: t1), let p0 = ctx.node(t0).ints("perm"), p0.count == 4, p1.count == 4,
           ctx.node(t0).inputs.count == 1 {
            // Transpose(Transpose(x, p0), p1)[i] = x[p0[p1[i]]].
            composed = p1.map { p0[$0] }
            nodes.append(t0)
            below = ctx.node(t0).inputs[0]
        }
        guard composed == perm, let r = ctx.inner(below, op: "Reshape", readBy: nodes.last!),
              let x = ctx.node(r).inputs.first, !x.isEmpty,
              let xd = shapes[x], xd.count == 3, case .fixed(let hd) = xd[2],
              let rd = shapes[below], rd.count == 4, rd[0] == xd[0], rd[1] == xd[1],
              case .fixed(let h) = rd[2], case .fixed(let d) = rd[3], h > 0, h * d == hd,
              !xd.contains(.unknown) else { return nil }
        return (x, xd, h, d, nodes + [r])
    }

    /// The output of Transpose node `t` when it reads `value` with `perm`.
    static func transposeOutput(_ ctx: FusionContext, _ t: Int, reading value: String, perm: [Int]) -> String? {
        let n = ctx.node(t)
        guard ctx.isDefault(t, "Transpose"), n.inputs == [value], n.ints("perm") == perm, n.outputs.count == 1 else { return nil }
        return n.outputs[0]
    }
}

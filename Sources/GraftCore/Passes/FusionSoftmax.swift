/// Attention scores: `Softmax(MatMul(Q, Kᵀ) · s + M)` → `graft:FusedScaledSoftmax(S, M)`, the
/// scale and the mask applied while the softmax reads each row. The MatMuls stay; when the
/// whole eager-attention chain around it matches, `FusionAttention` then takes this node in.
///
/// Both exporters write (transformers' eager attention) `Softmax(Add(Mul(MatMul, 0.25), mask))`;
/// also matched: the scale as `Div(S, d)` or `Mul(s, S)`, the mask added before the scale
/// (`Mul(Add(S, M), s)`), only a scale, or only a mask. The mask may broadcast over heads and
/// rows ([B,1,1,S], [B,1,S,S], [S,S]) but must not grow the scores (checked on the load-time
/// symbolic shapes; without them nothing is fused).
enum FusionSoftmax {
    static func match(_ ctx: inout FusionContext) {
        guard ctx.graph.opset >= 13, let shapes = ctx.shapes else { return }
        for sm in ctx.graph.nodes.indices where ctx.isDefault(sm, "Softmax") && ctx.free(sm) {
            let node = ctx.node(sm)
            guard node.inputs.count == 1, node.outputs.count == 1, let u = node.inputs.first,
                  let dims = shapes[u], !dims.isEmpty, !dims.contains(.unknown),
                  node.int("axis", default: -1) == -1 || node.int("axis", default: -1) == dims.count - 1,
                  let m = scores(ctx, u, softmax: sm) else { continue }
            // The scores have the softmax input's shape, and the mask only broadcasts into it.
            guard shapes[m.s] == dims, ctx.areFloat([m.s] + (m.mask.map { [$0] } ?? [])) else { continue }
            if let mask = m.mask {
                guard let md = shapes[mask], md.count <= dims.count,
                      zip(md.reversed(), dims.reversed()).allSatisfy({ $0 == $1 || $0 == .fixed(1) }),
                      !md.contains(.unknown) else { continue }
            }
            var attrs: [String: Attribute] = ["scale": .float(m.scale)]
            if m.divide { attrs["divide"] = .int(1) }
            if m.maskFirst { attrs["mask_first"] = .int(1) }
            ctx.rewrite(m.nodes + [sm], Fusion.node("FusedScaledSoftmax", replacing: node, inputs: [m.s] + (m.mask.map { [$0] } ?? []),
                                                    outputs: node.outputs, attributes: attrs))
        }
    }

    struct Match {
        var s: String
        var mask: String?
        var scale: Float = 1
        var divide = false
        var maskFirst = false
        var nodes: [Int]
    }

    /// How the softmax input `u` is made from a MatMul output S.
    static func scores(_ ctx: FusionContext, _ u: String, softmax: Int) -> Match? {
        // S · s + M (or the mask alone).
        if let add = ctx.inner(u, op: "Add", readBy: softmax), ctx.node(add).inputs.count == 2 {
            let ins = ctx.node(add).inputs
            for (t, mask) in [(ins[0], ins[1]), (ins[1], ins[0])] where t != mask {
                if let sc = scaled(ctx, t, readBy: add), isScores(ctx, sc.s) {
                    return Match(s: sc.s, mask: mask, scale: sc.scale, divide: sc.divide, nodes: [sc.node, add])
                }
            }
            for (t, mask) in [(ins[0], ins[1]), (ins[1], ins[0])] where t != mask && isScores(ctx, t) && ctx.scalar(mask) == nil {
                return Match(s: t, mask: mask, nodes: [add])
            }
            return nil
        }
        // (S + M) · s, or S · s.
        guard let sc = scaled(ctx, u, readBy: softmax) else { return nil }
        if isScores(ctx, sc.s) { return Match(s: sc.s, scale: sc.scale, divide: sc.divide, nodes: [sc.node]) }
        guard let add = ctx.inner(sc.s, op: "Add", readBy: sc.node), ctx.node(add).inputs.count == 2 else { return nil }
        let ins = ctx.node(add).inputs
        for (s, mask) in [(ins[0], ins[1]), (ins[1], ins[0])] where s != mask && isScores(ctx, s) && ctx.scalar(mask) == nil {
            return Match(s: s, mask: mask, scale: sc.scale, divide: sc.divide, maskFirst: true, nodes: [add, sc.node])
        }
        return nil
    }

    /// `value = Mul(x, s) | Mul(s, x) | Div(x, s)` with a finite non-zero scalar s, read only by
    /// `reader`.
    static func scaled(_ ctx: FusionContext, _ value: String, readBy reader: Int) -> (node: Int, s: String, scale: Float, divide: Bool)? {
        if let mul = ctx.inner(value, op: "Mul", readBy: reader), ctx.node(mul).inputs.count == 2 {
            let ins = ctx.node(mul).inputs
            for (x, c) in [(ins[0], ins[1]), (ins[1], ins[0])] {
                if let s = ctx.scalar(c), s.isFinite, s != 0, ctx.scalar(x) == nil { return (mul, x, s, false) }
            }
        }
        if let div = ctx.inner(value, op: "Div", readBy: reader), ctx.node(div).inputs.count == 2 {
            let ins = ctx.node(div).inputs
            if let s = ctx.scalar(ins[1]), s.isFinite, s != 0, ctx.scalar(ins[0]) == nil { return (div, ins[0], s, true) }
        }
        return nil
    }

    /// The attention scores: a MatMul output (Q·Kᵀ).
    static func isScores(_ ctx: FusionContext, _ value: String) -> Bool { ctx.producer(of: value, op: "MatMul") != nil }
}

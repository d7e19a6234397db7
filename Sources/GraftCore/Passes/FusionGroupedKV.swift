/// Grouped-query attention's repeated K/V heads → `graft:GroupedMatMul`
/// (`Kernels/GroupedMatMul.swift`): query head h reads K/V head h / g of the cache as it is,
/// instead of a copy of the cache expanded g times (and, for K, transposed once more).
///
/// Matched (transformers' `repeat_kv` as the TorchScript exporter writes it; X is the K or V
/// cache `[B, KVH, T, D]`, any value, e.g. the `present_*` output):
///     R = Reshape(Expand(Unsqueeze(X) → [B, KVH, 1, T, D], E) → [B, KVH, g, T, D]) → [B, KVH·g, T, D]
///     S = MatMul(Q, Transpose(R, [0,1,3,2]))   Q [B, KVH·g, Sq, D]  →  GroupedMatMul(Q, X, E, trans_b = 1)
///     O = MatMul(P, R)                          P [B, KVH·g, Sq, T]  →  GroupedMatMul(P, X, E, trans_b = 0)
/// R[b, kv·g + j] = X[b, kv] for every j, so both products read head h of R from X[b, h / g]:
/// the same function. Checked on the load-time symbolic shapes: X's batch dim known, KVH and g
/// fixed, D known; the Unsqueeze puts the 1 before T; the Expand grows only that axis (every
/// other dim equal to X's); the Reshape merges KVH and g, keeping B and D (so, by element count,
/// T); the left operand has X's batch dim (no MatMul broadcasting) and KVH·g heads, and for the
/// scores X's D. The key length T may be unknown to the probes (Llama's present cache is past +
/// sequence long, a sum the probes cannot name): the Expand's shape operand goes to the fused
/// node, whose kernel checks at plan time that it broadcasts `[B, KVH, 1, T, D]` to exactly
/// `[B, KVH, g, T, D]` (else a clear error), and the contracted dims are checked there as the
/// MatMul checks them. The Unsqueeze, Expand, Reshape and Transpose outputs are read only by
/// the chain; X, the left operand and the shape operands are not absorbed; operands are float32.
/// Attention MatMuls multiply two run-time values, so they are never sites.
enum FusionGroupedKV {
    static func match(_ ctx: inout FusionContext) {
        guard let shapes = ctx.shapes else { return }
        for mm in ctx.graph.nodes.indices where ctx.free(mm) && ctx.isDefault(mm, "MatMul") {
            guard let m = chain(ctx, shapes, matmul: mm) else { continue }
            let last = ctx.node(mm)
            ctx.rewrite(m.nodes, Fusion.node("GroupedMatMul", replacing: last, inputs: m.inputs, outputs: last.outputs,
                                             attributes: ["trans_b": .int(m.transB ? 1 : 0)]))
        }
    }

    struct Match {
        var inputs: [String]
        var transB: Bool
        var nodes: [Int]
    }

    static func chain(_ ctx: FusionContext, _ shapes: [String: [Dim]], matmul mm: Int) -> Match? {
        let n = ctx.node(mm)
        guard n.inputs.count == 2, n.outputs.count == 1, !n.inputs[0].isEmpty else { return nil }
        let lhs = n.inputs[0]
        var nodes = [mm]
        var repeated = n.inputs[1], reader = mm, transB = false
        if let t = ctx.inner(repeated, op: "Transpose", readBy: mm) {
            guard ctx.node(t).ints("perm") == [0, 1, 3, 2] else { return nil }
            nodes.append(t)
            (repeated, reader, transB) = (ctx.node(t).inputs[0], t, true)
        }
        guard let rs = ctx.inner(repeated, op: "Reshape", readBy: reader),
              let ex = ctx.inner(ctx.node(rs).inputs[0], op: "Expand", readBy: rs),
              let un = ctx.inner(ctx.node(ex).inputs[0], op: "Unsqueeze", readBy: ex) else { return nil }
        nodes += [rs, ex, un]
        let x = ctx.node(un).inputs[0], expandShape = ctx.node(ex).inputs.count == 2 ? ctx.node(ex).inputs[1] : ""
        guard !x.isEmpty, !expandShape.isEmpty, ctx.areFloat([lhs, x]),
              let xd = shapes[x], xd.count == 4, xd[0] != .unknown, xd[3] != .unknown, case .fixed(let kvh) = xd[1], kvh > 0,
              let ud = shapes[ctx.node(un).outputs[0]], ud.count == 5, ud[0] == xd[0], ud[1] == xd[1], ud[2] == .fixed(1), ud[4] == xd[3],
              let ed = shapes[ctx.node(ex).outputs[0]], ed.count == 5, case .fixed(let g) = ed[2], g > 0,
              ed[0] == xd[0], ed[1] == xd[1], ed[4] == xd[3], xd[2] == .unknown || ed[3] == xd[2],
              let rd = shapes[repeated], rd.count == 4, rd[0] == xd[0], rd[1] == .fixed(kvh * g), rd[3] == xd[3],
              let ad = shapes[lhs], ad.count == 4, ad[0] == xd[0], ad[1] == .fixed(kvh * g),
              !transB || ad[3] == xd[3] else { return nil }
        return Match(inputs: [lhs, x, expandShape], transB: transB, nodes: nodes)
    }
}

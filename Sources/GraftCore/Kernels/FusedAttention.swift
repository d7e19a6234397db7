import CMath

/// `graft:FusedAttention` (written by `Passes/FusionAttention.swift`): scaled-dot-product
/// attention straight from and into the projections' `[B, S, H·D]` layout.
///
/// Inputs: Q `[B, Sq, H·D]`, K `[B, Sk, H·D]`, V `[B, Sk, H·Dv]` (float32), M (optional, float32,
/// broadcastable to `[B, H, Sq, Sk]` without growing it). Attributes: `num_heads` H, and the
/// softmax's `scale`, `divide`, `mask_first` (as `FusedScaledSoftmax`).
/// Output 0: Y `[B, Sq, H·Dv]`, Y[b, i, h·Dv + e] = Σ_j P[b,h,i,j] · V[b, j, h·Dv + e] with
/// P[b,h,i,:] = softmax row of (Q_h K_hᵀ)[i,:] scaled and masked (`vmath_softmax_scaled_row`).
/// Output 1 (unnamed, arena scratch freed after the step): `[chunks, F]`, one
/// `vmath_attention_scratch_floats(Sk, D)` block per thread (K's head packed, 6 score rows).
///
/// Per (batch, head, block of ≤ R query rows), split over the session's threads: one
/// `vmath_attention_rows` call (Sources/CMath/attention.c), which packs K_h once, then per 6
/// query rows takes the scores, the scaled masked softmax rows and P·V straight into Y's rows
/// (ld H·Dv) while the scores are in L1. No head layout is materialised. Equal to the unfused
/// graph up to float rounding: the products sum in another order than its OpenBLAS MatMuls, and
/// the softmax's 1/Σ is applied to Y's rows instead of to P (the scale and mask operations round
/// as `vmath_softmax_scaled_row`'s, with the same exp).
enum FusedAttentionKernel {
    /// Bounds R = rows per unit (R = Sq up to Sq·Sk = 32768) so that long sequences still split
    /// into several units per head for the threads; each unit packs K_h once.
    static let blockFloats = 32768
    /// Below this many multiply-adds the whole op runs on the calling thread.
    static let splitWork = 1 << 15

    static func make(_ ctx: KernelContext) throws -> CompiledKernel {
        let q = try ctx.require(0, [.float32]), k = try ctx.require(1, [.float32]), v = try ctx.require(2, [.float32])
        let heads = ctx.node.int("num_heads", default: 0)
        guard heads > 0 else { throw ctx.fail(.invalidModel, "num_heads must be positive; it is \(heads)") }
        guard q.shape.count == 3, k.shape.count == 3, v.shape.count == 3 else {
            throw ctx.fail(.shapeMismatch, "Q, K, V must be [B, S, H·D]; they are \(q.shape), \(k.shape), \(v.shape)")
        }
        let (b, sq, sk) = (q.shape[0], q.shape[1], k.shape[1])
        let (hd, hdv) = (q.shape[2], v.shape[2])
        guard k.shape[0] == b, v.shape[0] == b, v.shape[1] == sk, k.shape[2] == hd,
              hd % heads == 0, hdv % heads == 0 else {
            throw ctx.fail(.shapeMismatch, "Q \(q.shape), K \(k.shape), V \(v.shape) are not \(heads) heads of one attention")
        }
        let (d, dv) = (hd / heads, hdv / heads)
        let scale = ctx.node.float("scale", default: 1)
        let flags = Int32((ctx.node.int("mask_first", default: 0) != 0 ? VMATH_SOFTMAX_MASK_FIRST : 0)
                          | (ctx.node.int("divide", default: 0) != 0 ? VMATH_SOFTMAX_DIVIDE : 0))
        let scores = [b, heads, sq, sk]
        // Mask element offset = b·ms[0] + h·ms[1] + i·ms[2] + j·ms[3].
        var ms = [0, 0, 0, 0]
        let hasMask = ctx.has(3)
        if hasMask {
            let m = try ctx.require(3, [.float32])
            guard (try? Shape.broadcast(scores, m.shape)) == scores else {
                throw ctx.fail(.unsupported, "mask \(m.shape) does not broadcast to the scores \(scores)")
            }
            ms = Shape.broadcastStrides(m.shape, to: scores)
        }
        let out = TensorType(.float32, [b, sq, hdv])
        let rowsPerBlock = max(1, min(sq, blockFloats / max(sk, 1)))
        let blocks = sq == 0 ? 0 : (sq + rowsPerBlock - 1) / rowsPerBlock
        let units = b * heads * blocks
        let work = b * heads * sq * sk * (d + dv)
        let chunks = max(1, min(ctx.threads, units, work < splitWork ? 1 : units))
        let scratchFloats = vmath_attention_scratch_floats(sk, d)
        let scratch = TensorType(.float32, [chunks, scratchFloats])
        let threads = ctx.threads
        return CompiledKernel(outputs: [out, scratch]) { [ms] io in
            let pq = io.input(0, Float.self), pk = io.input(1, Float.self), pv = io.input(2, Float.self)
            let pm: UnsafePointer<Float>? = hasMask ? io.input(3, Float.self) : nil
            let py = io.output(0, Float.self), ps = io.output(1, Float.self)
            parallelFor(chunks, threads: threads) { range in
                for c in range {
                    let s = ps + c * scratchFloats
                    for u in (units * c / chunks)..<(units * (c + 1) / chunks) {
                        let blk = u % blocks, h = (u / blocks) % heads, bi = u / (blocks * heads)
                        let i0 = blk * rowsPerBlock, rows = min(rowsPerBlock, sq - i0)
                        // Q_h rows i0..: [rows, D] at ld H·D; K_h, V_h: [Sk, D], [Sk, Dv] at ld H·D, H·Dv;
                        // Y_h rows i0..: [rows, Dv] at ld H·Dv; mask row i0 of (b, h), rows ms[2] apart.
                        let qh = pq + (bi * sq + i0) * hd + h * d
                        let kh = pk + bi * sk * hd + h * d
                        let vh = pv + bi * sk * hdv + h * dv
                        let yh = py + (bi * sq + i0) * hdv + h * dv
                        let mh = pm.map { $0 + bi * ms[0] + h * ms[1] + i0 * ms[2] }
                        vmath_attention_rows(qh, hd, kh, hd, vh, hdv, mh, ms[2], ms[3], scale, flags, yh, hdv,
                                             rows, sk, d, dv, s)
                    }
                }
            }
        }
    }
}

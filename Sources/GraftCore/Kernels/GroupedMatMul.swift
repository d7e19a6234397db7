import COpenBLAS

/// `graft:GroupedMatMul` (written by `Passes/FusionGroupedKV.swift`): the attention products of
/// grouped-query attention, reading each K/V head once for the g query heads that share it.
///
/// Inputs: A `[B, H, M, K]`, X (float32) `[B, KVH, N, K]` when `trans_b` = 1 (keys: scores
/// A·Xᵀ) or `[B, KVH, K, N]` when `trans_b` = 0 (values: P·X); H = g·KVH.
/// E (optional, int64, known at plan time): the shape operand of the Expand that repeated X's
/// heads in the unfused graph; it must broadcast `[B, KVH, 1, T, D]` (X with a 1 before its
/// last two dims) to exactly `[B, KVH, g, T, D]`, the only case the rewrite covers.
/// Output: Y `[B, H, M, N]`, Y[b, h] = A[b, h] · op(X[b, h / g]).
///
/// The g query heads of one K/V head are adjacent in A and Y, so their rows form one
/// `[g·M, K]` block: one `cblas_sgemm` per (batch, K/V head), split over the session's threads;
/// with one query row per head (decoding), g GEMVs instead (OpenBLAS's GEMM packs X for a
/// product of a few rows, which costs more than the product).
enum GroupedMatMulKernel {
    /// Below this many multiply-adds the whole op runs on the calling thread: a decode step's
    /// products (12 heads × 128 keys × 64) ran faster on one thread than split in two.
    static let splitWork = 1 << 18

    static func make(_ ctx: KernelContext) throws -> CompiledKernel {
        let a = try ctx.require(0, [.float32]), x = try ctx.require(1, [.float32])
        let transB = ctx.node.int("trans_b", default: 0) != 0
        guard a.shape.count == 4, x.shape.count == 4 else {
            throw ctx.fail(.shapeMismatch, "A and X must be [B, heads, rows, cols]; they are \(a.shape) and \(x.shape)")
        }
        let (b, heads, m, k) = (a.shape[0], a.shape[1], a.shape[2], a.shape[3])
        let kvHeads = x.shape[1]
        let n = transB ? x.shape[2] : x.shape[3]
        guard x.shape[0] == b, kvHeads > 0, heads % kvHeads == 0, (transB ? x.shape[3] : x.shape[2]) == k else {
            throw ctx.fail(.shapeMismatch, "A \(a.shape) and X \(x.shape) (trans_b \(transB ? 1 : 0)) are not grouped heads of one product")
        }
        let g = heads / kvHeads
        if let e = try ctx.constantInts(2, "the repeat's expand shape") {
            var unsqueezed = x.shape
            unsqueezed.insert(1, at: 2)
            var repeated = unsqueezed
            repeated[2] = g
            guard (try? Shape.broadcast(unsqueezed, e)) == repeated else {
                throw ctx.fail(.unsupported, "the grouped K/V fusion covers an Expand of \(unsqueezed) to \(repeated); this one expands to shape \(e) (run with GRAFT_FUSE=0)")
            }
        }
        let out = TensorType(.float32, [b, heads, m, n])
        try ShapeKernels.checked(out.shape, ctx)
        let units = b * kvHeads
        let rows = g * m                            // rows of one unit's block of A and Y
        let work = units * rows * n * k
        let chunks = max(1, min(ctx.threads, units, work < splitWork ? 1 : units))
        let (ldb, op) = transB ? (k, CblasTrans) : (n, CblasNoTrans)
        let outCount = out.count
        return CompiledKernel(outputs: [out]) { io in
            let y = io.output(0, Float.self)
            guard outCount > 0 else { return }
            guard k > 0 else { y.update(repeating: 0, count: outCount); return }   // empty sums
            let ap = io.input(0, Float.self), xp = io.input(1, Float.self)
            parallelFor(units, threads: chunks) { range in
                for u in range {
                    let (a0, x0, y0) = (ap + u * rows * k, xp + u * n * k, y + u * rows * n)
                    if m == 1 {
                        // One query row per head (decoding): g GEMVs over the shared K/V head, as
                        // the MatMul kernel does for one row; y cleared first as it does (GEMV's
                        // beta = 0 may keep NaN garbage of an earlier use of the buffer).
                        y0.update(repeating: 0, count: rows * n)
                        for r in 0..<rows {
                            if transB {   // y[r, :] = X[N, K] · a[r, :]
                                cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(n), Int32(k), 1, x0, Int32(k), a0 + r * k, 1, 0, y0 + r * n, 1)
                            } else {      // y[r, :] = X[K, N]ᵀ · a[r, :]
                                cblas_sgemv(CblasRowMajor, CblasTrans, Int32(k), Int32(n), 1, x0, Int32(n), a0 + r * k, 1, 0, y0 + r * n, 1)
                            }
                        }
                    } else {
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, op, Int32(rows), Int32(n), Int32(k), 1, a0, Int32(k), x0, Int32(ldb), 0, y0, Int32(n))
                    }
                }
            }
        }
    }
}

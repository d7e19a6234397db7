import COpenBLAS

/// Routed and modality-gated terms evaluated on the tokens they act on only.
///
/// A routed expert under a top-k gate has weight 0 on most tokens (top-2 of 8: ~3/4), and a
/// modality-gated term on every token of other modalities. The dense path computes U = X·Aᵀ
/// for the whole block and multiplies those rows by 0; here the rows with a non-zero weight are
/// gathered first:
///     idx [k], w [k]      rows of the block the term acts on, and its weight there
///     Xg  [k, in]         = X[idx]
///     U   [k, r]          = σ(Xg · Aᵀ) ⊙ w
///     V   [k, out]        = (c · s) · U · Bᵀ
///     Y[idx] += V
/// Rows it does not act on are not touched at all, so they keep exactly the base value.
struct SparseScratch: ~Copyable {
    var x = ScratchBuffer()
    var u = ScratchBuffer()
    var v = ScratchBuffer()
    var w = ScratchBuffer()
    private var idx = GrowableBuffer<Int>()

    mutating func indices(_ n: Int) -> UnsafeMutablePointer<Int> { idx.elements(n) }
}

extension SessionAdapters {
    /// Evaluates `active` on block [start, start + m) through the gathered rows when it acts on
    /// at most 3/4 of them; returns false (nothing done) when the dense path is cheaper.
    /// `routed`: the term's expert weight for the block's first token, stride `stride` per token.
    func applySparse(_ active: ActiveTerm, routed: UnsafePointer<Float>?, stride: Int, start: Int, m: Int,
                     x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, inFeatures inF: Int, outFeatures outF: Int) -> Bool {
        let t = active.term, r = t.rank
        let idx = sparse.indices(m), w = sparse.w.floats(m)
        var k = 0
        for i in 0..<m {
            var weight: Float = routed.map { $0[i * stride] } ?? 1
            if t.modalities != 0, let ids = modalities {
                let id = UInt32(ids[start + i])
                if id > 31 || (t.modalities >> id) & 1 == 0 { weight = 0 }
            }
            if weight != 0 {
                idx[k] = start + i
                w[k] = weight
                k += 1
            }
        }
        if k * 4 > m * 3 { return false }
        if k == 0 { return true }
        let xg = sparse.x.floats(k * inF), u = sparse.u.floats(k * r), v = sparse.v.floats(k * outF)
        for i in 0..<k { (xg + i * inF).update(from: x + idx[i] * inF, count: inF) }
        // U[k, r] = Xg · Aᵀ, then σ and the weights
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(k), Int32(r), Int32(inF), 1, xg, Int32(inF),
                    t.a.pointer(Float.self), Int32(inF), 0, u, Int32(r))
        Self.activate(u, count: k * r, t.activation)
        for i in 0..<k { for j in 0..<r { u[i * r + j] *= w[i] } }
        // V[k, out] = scale · U · Bᵀ; Y[idx] += V
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(k), Int32(outF), Int32(r), active.scale, u, Int32(r),
                    t.b.pointer(Float.self), Int32(r), 0, v, Int32(outF))
        for i in 0..<k {
            let row = y + idx[i] * outF, src = v + i * outF
            for o in 0..<outF { row[o] += src[o] }
        }
        return true
    }
}

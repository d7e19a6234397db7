import CKernels

/// One-row weight products (decode): y[1 × n] = x[1 × k] · W[k × n] with W row-major where it
/// is (never packed or copied), on Graft's GEMV (`graft_gemv_rows`, Sources/CKernels/gemv.c).
///
/// The product is memory-bound, so it is split by K: each part multiplies a contiguous block
/// of W's rows (its own region of memory, read as 4 streams) into a partial y, and the
/// partials are added by `graft_gemv_sum`. Splitting N instead (no partials) measured the same
/// on the 32000-wide lm_head and 10–25% slower on the 256–2048-wide products (each part then
/// reads a short piece of every row), so K is always the split (docs/PERFORMANCE.md,
/// "Decode GEMV").
package enum DecodeGemv {
    /// Rows of W below which a part is not worth its partial sum.
    static let minRowsPerPart = 64
    /// Weight floats (k·n) below which one thread runs the product: 32 K floats (128 KB) take
    /// ~8 µs at one thread's bandwidth, where a fork/join of the session's pool costs < 1 µs.
    static let minSplitFloats = 1 << 15

    /// Parts (threads) for a k × n product at `threads` threads: 1 below the cut-offs above.
    package static func parts(k: Int, n: Int, threads: Int) -> Int {
        guard threads > 1, k * n >= minSplitFloats else { return 1 }
        return max(1, min(threads, k / minRowsPerPart))
    }

    /// y[n] = x[k] · W[k × n] (W rows `ldw` floats apart, ldw >= n), split into `parts` K
    /// blocks run in parallel. `partials` holds (parts - 1) × n floats (parts after the first
    /// write there; ignored when parts == 1). y's old contents are never read.
    package static func run(x: UnsafePointer<Float>, w: UnsafePointer<Float>, ldw: Int,
                            y: UnsafeMutablePointer<Float>, k: Int, n: Int,
                            parts: Int, partials: UnsafeMutablePointer<Float>?,
                            path: PackedGemm.Path = .auto) {
        let parts = partials == nil ? 1 : max(parts, 1)
        if parts == 1 {
            graft_gemv_rows(path.rawValue, k, n, x, w, ldw, y, 0)
            return
        }
        parallelFor(parts, threads: parts) { r in
            for t in r {
                let k0 = k * t / parts, k1 = k * (t + 1) / parts
                let yt = t == 0 ? y : partials! + (t - 1) * n
                graft_gemv_rows(path.rawValue, k1 - k0, n, x + k0, w + k0 * ldw, ldw, yt, 0)
            }
        }
        graft_gemv_sum(path.rawValue, n, y, partials, n, parts - 1)
    }
}

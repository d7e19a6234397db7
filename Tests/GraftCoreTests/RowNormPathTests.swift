import CMath
import Foundation
import Testing

/// vmath_add_norm_row_on (Sources/CMath/rownorm.c, the row normaliser of LayerNormalization, the
/// RMS norms and graft:FusedAddNorm) on both paths against a Double reference: row lengths around
/// the AVX2 path's 8-lane vectors and 32-float unrolled steps (1, 3, 8, 9, 31, 32, 33, 384, 385),
/// LayerNormalization and RMS, per-element or single-value scale and bias, no bias, with and
/// without the residual add, the sum written to its own row or in place into y, and rows offset
/// by up to 1000 (where a one-pass variance would lose the deviations to cancellation).
///
/// Tolerance: 2e-5 · max(1, |expected|) for y (values ~N(0,1)·|scale| ≤ 2 plus a bias; the float
/// sums of ≤ 385 terms and the three roundings per element stay near 1e-6, an indexing or tail
/// mistake is off by O(1)); mean 1e-6 relative to the offset; inv 2e-5 relative.
@Suite struct RowNormPathTests {
    struct Variant: CustomStringConvertible {
        var rms: Bool, add: Bool, inPlace: Bool, scalarScale: Bool, bias: Bool, scalarBias: Bool
        var description: String {
            "\(rms ? "rms" : "layer") add \(add) inPlace \(inPlace) scalarScale \(scalarScale) bias \(bias) scalarBias \(scalarBias)"
        }
    }

    static let lengths = [1, 3, 8, 9, 31, 32, 33, 384, 385]
    static let variants: [Variant] = [
        Variant(rms: false, add: false, inPlace: false, scalarScale: false, bias: true, scalarBias: false),
        Variant(rms: false, add: true, inPlace: true, scalarScale: false, bias: true, scalarBias: false),
        Variant(rms: false, add: true, inPlace: false, scalarScale: true, bias: true, scalarBias: true),
        Variant(rms: false, add: false, inPlace: true, scalarScale: false, bias: false, scalarBias: false),
        Variant(rms: true, add: false, inPlace: false, scalarScale: false, bias: false, scalarBias: false),
        Variant(rms: true, add: true, inPlace: true, scalarScale: true, bias: false, scalarBias: false),
        Variant(rms: true, add: true, inPlace: false, scalarScale: false, bias: false, scalarBias: false),
    ]

    @Test(arguments: [Int32(GRAFT_VMATH_SCALAR), Int32(GRAFT_VMATH_AVX2)])
    func pathMatchesDoubleReference(path: Int32) throws {
        var rng = TestRandom(seed: 77)
        var probe: Float = 0
        let available = vmath_add_norm_row_on(path, nil, [1], nil, &probe, 1, 0, 1e-5, [1], 0, nil, 0, nil, nil) == 0
        guard available else { return }   // no AVX2 on this CPU: the scalar case still runs
        for n in Self.lengths {
            for v in Self.variants {
                for offset: Float in [0, 1000] {
                    let a = v.add ? rng.floats(n, -1, 1).map { $0 + offset / 2 } : []
                    let b = rng.floats(n, -1, 1).map { $0 + (v.add ? offset / 2 : offset) }
                    let scale = v.scalarScale ? [rng.float(0.5, 2)] : rng.floats(n, -2, 2)
                    let bias = v.bias ? (v.scalarBias ? [rng.float(-1, 1)] : rng.floats(n, -1, 1)) : []
                    let eps: Float = 1e-5
                    // Reference in Double.
                    let x = (0..<n).map { Double(v.add ? a[$0] + b[$0] : b[$0]) }
                    let mean = v.rms ? 0 : x.reduce(0, +) / Double(n)
                    let variance = x.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(n)
                    let inv = 1 / (variance + Double(eps)).squareRoot()
                    let want = (0..<n).map { j -> Double in
                        let s = Double(scale[v.scalarScale ? 0 : j])
                        let bj = v.bias ? Double(bias[v.scalarBias ? 0 : j]) : 0
                        return (x[j] - mean) * inv * s + bj
                    }
                    // Graft: y alone, or the sum written into y's own row (in place).
                    var y = [Float](repeating: .nan, count: n), sum = [Float](repeating: .nan, count: n)
                    var gotMean: Float = .nan, gotInv: Float = .nan
                    let rc: Int32 = y.withUnsafeMutableBufferPointer { yp in
                        sum.withUnsafeMutableBufferPointer { sp in
                            let s = v.inPlace ? yp.baseAddress! : sp.baseAddress!
                            return v.add
                                ? vmath_add_norm_row_on(path, a, b, s, yp.baseAddress!, n, v.rms ? 1 : 0, eps, scale,
                                                        v.scalarScale ? 0 : 1, v.bias ? bias : nil, v.scalarBias ? 0 : 1,
                                                        &gotMean, &gotInv)
                                : vmath_add_norm_row_on(path, nil, b, nil, yp.baseAddress!, n, v.rms ? 1 : 0, eps, scale,
                                                        v.scalarScale ? 0 : 1, v.bias ? bias : nil, v.scalarBias ? 0 : 1,
                                                        &gotMean, &gotInv)
                        }
                    }
                    #expect(rc == 0)
                    let worst = zip(y, want).map { Double(abs(Double($0) - $1)) / max(1, abs($1)) }.max() ?? 0
                    #expect(worst <= 2e-5, "path \(path) n \(n) \(v) offset \(offset): y off by \(worst)")
                    #expect(abs(Double(gotMean) - mean) <= 1e-6 * max(1, Double(offset)), "path \(path) n \(n) \(v): mean \(gotMean) vs \(mean)")
                    #expect(abs(Double(gotInv) - inv) <= 2e-5 * inv, "path \(path) n \(n) \(v): inv \(gotInv) vs \(inv)")
                    if v.add && !v.inPlace {
                        #expect(zip(sum, x).allSatisfy { Double($0) == $1 }, "path \(path) n \(n) \(v): the sum row")
                    }
                }
            }
        }
    }
}

import CMath
import Foundation
import Testing

/// vmath_attention_rows_on (Sources/CMath/attention.c, the FusedAttention kernel's inner loop) on
/// both paths against a Double reference of the same formula, over the edge cases of the AVX2
/// tiles: one query row, one key, row counts that are not multiples of the 6-row tile, key counts
/// not multiples of the 16-key panel or the 8-wide in-register transpose, head sizes not
/// multiples of 8 (masked loads and stores of the dv tail), d = 0, dv = 0, sk = 0, strided rows
/// (ld > d), and the mask forms the kernel passes (per row, one row for all, one value, none)
/// under each scale / mask-order flag.
///
/// Tolerance 1e-4 absolute: inputs in [-3, 3], so a score is a float sum of d ≤ 64 products of
/// magnitude ≤ 9 (rounding error ≲ d·2^-24·9 ≈ 3e-5 in the worst case, far less in practice),
/// multiplied by scale ≤ 1/√d; an error δ in a logit is a relative error ≲ δ in P, and y sums
/// P-weighted values of magnitude ≤ 3 — float rounding stays well below 1e-4, while any indexing
/// or tail mistake is off by O(1).
@Suite struct AttentionRowsTests {
    struct Case: CustomStringConvertible {
        var rows, sk, d, dv: Int
        var description: String { "rows \(rows) sk \(sk) d \(d) dv \(dv)" }
    }

    static let cases: [Case] = [
        Case(rows: 1, sk: 1, d: 1, dv: 1), Case(rows: 1, sk: 17, d: 5, dv: 3), Case(rows: 3, sk: 8, d: 8, dv: 8),
        Case(rows: 4, sk: 16, d: 32, dv: 32), Case(rows: 7, sk: 33, d: 32, dv: 32), Case(rows: 5, sk: 9, d: 64, dv: 20),
        Case(rows: 9, sk: 130, d: 13, dv: 9), Case(rows: 2, sk: 24, d: 17, dv: 25), Case(rows: 6, sk: 5, d: 0, dv: 4),
        Case(rows: 3, sk: 7, d: 4, dv: 0), Case(rows: 2, sk: 0, d: 4, dv: 5), Case(rows: 16, sk: 128, d: 64, dv: 64),
    ]

    /// Mask layouts as (row stride, element stride, floats): per (row, key); one key row shared by
    /// all query rows (the BERT padding mask); one value; none.
    static func masks(rows: Int, sk: Int, rng: inout TestRandom) -> [(String, Int, Int, [Float]?)] {
        func values(_ n: Int) -> [Float] {
            var m = (0..<n).map { _ -> Float in
                let r = rng.float(0, 1)
                return r < 0.25 ? -Float.greatestFiniteMagnitude : (r < 0.4 ? rng.float(-4, 4) : 0)
            }
            for i in stride(from: 0, to: n, by: max(sk, 1)) { m[i] = 0 }   // never a whole row masked
            return m
        }
        return [("per row", sk, 1, values(max(rows * sk, 1))), ("shared row", 0, 1, values(max(sk, 1))),
                ("one value", 0, 0, [rng.float(-1, 1)]), ("none", 0, 0, nil)]
    }

    /// The formula in Double, with each softmax prepass operation as vmath_softmax_scaled_row.
    static func reference(q: [Float], ldq: Int, k: [Float], ldk: Int, v: [Float], ldv: Int, mask: [Float]?,
                          mrs: Int, ms: Int, scale: Float, flags: Int32, c: Case) -> [[Double]] {
        (0..<c.rows).map { i in
            guard c.sk > 0 else { return [Double](repeating: 0, count: c.dv) }
            let logits = (0..<c.sk).map { j -> Double in
                var s = 0.0
                for t in 0..<c.d { s += Double(q[i * ldq + t]) * Double(k[j * ldk + t]) }
                let m = mask.map { Double($0[i * mrs + j * ms]) } ?? 0
                let sc = flags & Int32(VMATH_SOFTMAX_DIVIDE) != 0 ? 1 / Double(scale) : Double(scale)
                return flags & Int32(VMATH_SOFTMAX_MASK_FIRST) != 0 ? (s + m) * sc : s * sc + m
            }
            let top = logits.max()!
            let e = logits.map { Foundation.exp($0 - top) }
            let sum = e.reduce(0, +)
            return (0..<c.dv).map { col in (0..<c.sk).reduce(0.0) { $0 + e[$1] / sum * Double(v[$1 * ldv + col]) } }
        }
    }

    @Test(arguments: VMathPath.allCases)
    func rowsMatchReference(_ path: VMathPath) throws {
        var rng = TestRandom(seed: 4242)
        for c in Self.cases {
            // Strided operands as in [B, S, H·D]: 3 extra floats per row (another head's columns).
            let (ldq, ldk, ldv, ldy) = (c.d + 3, c.d + 3, c.dv + 2, c.dv + 5)
            let q = rng.floats(max(c.rows * ldq, 1)), k = rng.floats(max(c.sk * ldk, 1)), v = rng.floats(max(c.sk * ldv, 1))
            for (maskName, mrs, ms, mask) in Self.masks(rows: c.rows, sk: c.sk, rng: &rng) {
                for flags in [Int32(0), Int32(VMATH_SOFTMAX_MASK_FIRST | VMATH_SOFTMAX_DIVIDE)] {
                    let scale: Float = flags != 0 ? Float(max(c.d, 1)).squareRoot() : 1 / Float(max(c.d, 1)).squareRoot()
                    let sentinel: Float = 12345
                    var y = [Float](repeating: sentinel, count: c.rows * ldy)
                    var scratch = [Float](repeating: .nan, count: vmath_attention_scratch_floats(c.sk, c.d))
                    let rc = q.withUnsafeBufferPointer { qp in
                        k.withUnsafeBufferPointer { kp in
                            v.withUnsafeBufferPointer { vp in
                                (mask ?? []).withUnsafeBufferPointer { mp in
                                    y.withUnsafeMutableBufferPointer { yp in
                                        scratch.withUnsafeMutableBufferPointer { sp in
                                            vmath_attention_rows_on(path.code, qp.baseAddress, ldq, kp.baseAddress, ldk, vp.baseAddress, ldv,
                                                                    mask == nil ? nil : mp.baseAddress, mrs, ms, scale, flags,
                                                                    yp.baseAddress, ldy, c.rows, c.sk, c.d, c.dv, sp.baseAddress)
                                        }
                                    }
                                }
                            }
                        }
                    }
                    if rc != 0 { return } // path not available on this CPU
                    let want = Self.reference(q: q, ldq: ldq, k: k, ldk: ldk, v: v, ldv: ldv, mask: mask, mrs: mrs, ms: ms,
                                              scale: scale, flags: flags, c: c)
                    var worst = 0.0
                    for i in 0..<c.rows {
                        for col in 0..<ldy {
                            let got = y[i * ldy + col]
                            if col < c.dv {
                                worst = max(worst, got.isFinite ? abs(Double(got) - want[i][col]) : .infinity)
                            } else {
                                #expect(got == sentinel, "\(path) \(c) mask \(maskName): wrote past dv at row \(i) column \(col)")
                            }
                        }
                    }
                    #expect(worst <= 1e-4, "\(path) \(c) mask \(maskName) flags \(flags): max |Δ| \(worst)")
                }
            }
        }
    }

    /// The two paths agree with each other (not only each with the reference).
    @Test func pathsAgree() throws {
        var rng = TestRandom(seed: 99)
        let c = Case(rows: 13, sk: 45, d: 24, dv: 40)
        let q = rng.floats(c.rows * c.d), k = rng.floats(c.sk * c.d), v = rng.floats(c.sk * c.dv)
        let mask = rng.floats(c.sk, -2, 0)
        func run(_ path: VMathPath) -> [Float]? {
            var y = [Float](repeating: .nan, count: c.rows * c.dv)
            var scratch = [Float](repeating: 0, count: vmath_attention_scratch_floats(c.sk, c.d))
            let rc = vmath_attention_rows_on(path.code, q, c.d, k, c.d, v, c.dv, mask, 0, 1, 0.2, 0, &y, c.dv,
                                             c.rows, c.sk, c.d, c.dv, &scratch)
            return rc == 0 ? y : nil
        }
        guard let a = run(.scalar), let b = run(.avx2) else { return }
        let diff = zip(a, b).map { abs($0 - $1) }.max()!
        #expect(diff <= 1e-4, "max |Δ| \(diff)")
    }

    @Test func unknownPathIsRefused() {
        #expect(vmath_attention_rows_on(7, nil, 0, nil, 0, nil, 0, nil, 0, 0, 1, 0, nil, 0, 0, 0, 0, 0, nil) == -1)
    }
}

import CMath
import Foundation
import Testing

/// vmath_softmax_scaled_row on both paths against the unfused operations done one at a time
/// (multiply or divide, add the mask, softmax row on the same path): the prepass rounds each
/// operation as the unfused Mul/Div and Add kernels do, so the results are identical.
@Suite struct FusedRowTests {
    @Test(arguments: VMathPath.allCases)
    func scaledSoftmaxRowEqualsUnfusedOperations(_ path: VMathPath) throws {
        var rng = TestRandom(seed: 77)
        for n in [1, 3, 7, 8, 9, 31, 128, 1001] {
            let x = rng.floats(n, -8, 8)
            let maskRow = (0..<n).map { _ in rng.float(0, 1) < 0.2 ? -Float.greatestFiniteMagnitude : rng.float(-2, 2) }
            for flags in [0, Int(VMATH_SOFTMAX_MASK_FIRST), Int(VMATH_SOFTMAX_DIVIDE), Int(VMATH_SOFTMAX_MASK_FIRST | VMATH_SOFTMAX_DIVIDE)] {
                for (mask, stride) in [(maskRow, 1), ([maskRow[0]], 0), ([], 0)] {
                    let scale: Float = flags & Int(VMATH_SOFTMAX_DIVIDE) != 0 ? 5.656854 : 0.17677669
                    // Unfused: each operation rounded on its own, then the softmax row.
                    var want = x.indices.map { j -> Float in
                        guard !mask.isEmpty else { return flags & Int(VMATH_SOFTMAX_DIVIDE) != 0 ? x[j] / scale : x[j] * scale }
                        let m = mask[j * stride]
                        if flags & Int(VMATH_SOFTMAX_MASK_FIRST) != 0 {
                            let t = x[j] + m
                            return flags & Int(VMATH_SOFTMAX_DIVIDE) != 0 ? t / scale : t * scale
                        }
                        let t = flags & Int(VMATH_SOFTMAX_DIVIDE) != 0 ? x[j] / scale : x[j] * scale
                        return t + m
                    }
                    let rc0 = want.withUnsafeMutableBufferPointer { p in vmath_run(VMathOp.softmax.code, path.code, p.baseAddress, p.baseAddress, n) }
                    if rc0 != 0 { return } // path not available on this CPU
                    var got = [Float](repeating: .nan, count: n)
                    let rc = x.withUnsafeBufferPointer { xp in
                        mask.withUnsafeBufferPointer { mp in
                            got.withUnsafeMutableBufferPointer { yp in
                                vmath_softmax_scaled_row_on(path.code, xp.baseAddress, mask.isEmpty ? nil : mp.baseAddress, stride, scale,
                                                            Int32(flags), yp.baseAddress, n)
                            }
                        }
                    }
                    #expect(rc == 0)
                    #expect(got == want, "\(path) n \(n) flags \(flags) mask stride \(stride) (\(mask.isEmpty ? "none" : "given"))")
                }
            }
        }
    }
}

/// vmath_gelu_tanh on both paths against the formula in Double: within 2e-6 · max(1, |x|)
/// (float rounding of the cubic argument, ~4 ulp of sigmoid), over [-12, 12] and the extremes.
@Suite struct GeluTanhRowTests {
    @Test(arguments: VMathPath.allCases)
    func geluTanhMatchesFormula(_ path: VMathPath) throws {
        var xs: [Float] = (0...24001).map { -12 + 24 * Float($0) / 24001 }
        xs += [0, -0.0, 1e-30, -1e-30, 50, -50, 1e6, -1e6]
        var y = [Float](repeating: .nan, count: xs.count)
        let rc = xs.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { vmath_gelu_tanh_on(path.code, xp.baseAddress, $0.baseAddress, xs.count) } }
        if rc != 0 { return } // path not available on this CPU
        for (x, got) in zip(xs, y) {
            let d = Double(x)
            let want = 0.5 * d * (1 + Foundation.tanh((2 / Double.pi).squareRoot() * (d + 0.044715 * d * d * d)))
            #expect(abs(Double(got) - want) <= 2e-6 * max(1, abs(want)), "\(path) x \(x): \(got) vs \(want)")
        }
        // In place gives the same.
        var z = xs
        _ = z.withUnsafeMutableBufferPointer { vmath_gelu_tanh_on(path.code, $0.baseAddress, $0.baseAddress, $0.count) }
        #expect(z == y)
    }
}

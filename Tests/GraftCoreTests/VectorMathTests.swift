import CMath
import Foundation
import Testing

// CMath's array functions (Sources/CMath) on both paths — the AVX2+FMA one (skipped where the CPU
// lacks it) and the libm fallback — against Double-precision references computed here.
// Tolerances:
//   exp, sigmoid: |y - ref| <= 4 ulp of ref rounded to float (denormal results: 4 × 2^-149);
//   erf:          |y - ref| <= 2e-7 absolute;
//   GELU:         |y - ref| <= 1e-6 · max(1, |x|), and for x in [-13, 0) (the tail that erfc keeps
//                 accurate; normal results) |y - ref| <= 1e-6 · |ref| (measured: 4.8e-7 AVX2 on this grid,
//                 5.1e-7 over every float; 6e-8 scalar);
//   softmax row:  |y - ref| <= ref · (2e-6 + 1.2e-7 · |x - max|) + 1e-12: float row sums of up to
//                 1000 terms, and x - max rounded to float (half an ulp of |x - max| is an error
//                 of 2^-24·|x - max| relative in exp).

enum VMathPath: CaseIterable, CustomStringConvertible {
    case scalar, avx2
    var code: Int32 { self == .scalar ? Int32(GRAFT_VMATH_SCALAR) : Int32(GRAFT_VMATH_AVX2) }
    var description: String { self == .scalar ? "scalar" : "avx2" }
}

enum VMathOp: Int32 {
    case exp = 0, erf, gelu, sigmoid, softmax
    var code: Int32 { rawValue }
}

/// Runs `op` on `path`; nil when the path is not available on this CPU.
private func vrun(_ op: VMathOp, _ path: VMathPath, _ x: [Float]) -> [Float]? {
    var y = [Float](repeating: .nan, count: x.count)
    let rc = x.withUnsafeBufferPointer { xp in
        y.withUnsafeMutableBufferPointer { yp in vmath_run(op.code, path.code, xp.baseAddress, yp.baseAddress, x.count) }
    }
    return rc == 0 ? y : nil
}

private func ulpClose(_ y: Float, _ ref: Double, ulps: Double) -> Bool {
    let r = Float(ref)
    if ref.isNaN { return y.isNaN }
    if r.isInfinite { return y == r }
    if y.isNaN || y.isInfinite { return false }
    return abs(Double(y) - ref) <= ulps * Double(r.ulp)
}

private func gridPoints() -> [Float] {
    // ~1e6 points spread over [-20, 20] plus special values.
    let count = 1_000_000
    var xs = (0..<count).map { Float(-20 + 40 * Double($0) / Double(count - 1)) }
    xs += specials
    return xs
}

private let specials: [Float] = [
    0, -0.0, .leastNonzeroMagnitude, -.leastNonzeroMagnitude, .leastNormalMagnitude, -.leastNormalMagnitude,
    1e-30, -1e-30, 1e-8, -1e-8, 0.5, -0.5, 1, -1, 0.9999999, 1.0000001, 2.5, 3.9, 4, 4.0001, 5.5, 9.3, 10, -10,
    .infinity, -.infinity, .nan, 88.7, -88.7, 88.72283, 88.72284, 89, -87.33, -87.34, -100, -103.97, -104, 104, -104.5,
    .greatestFiniteMagnitude, -.greatestFiniteMagnitude,
]

@Suite struct VectorMathTests {
    @Test func activePathHonoursEnvironment() {
        let p = vmath_path()
        #expect(p == Int32(GRAFT_VMATH_SCALAR) || p == Int32(GRAFT_VMATH_AVX2))
        if ProcessInfo.processInfo.environment["GRAFT_VMATH"] == "scalar" { #expect(p == Int32(GRAFT_VMATH_SCALAR)) }
        #expect(vrun(.exp, .scalar, [0]) == [1])
        #expect(vmath_run(99, Int32(GRAFT_VMATH_SCALAR), nil, nil, 0) == -1)
    }

    @Test(arguments: VMathPath.allCases) func exp(_ path: VMathPath) throws {
        // The grid, then the whole float range where exp is neither 0 nor inf (denormals included).
        var xs = gridPoints()
        xs += (0...200_000).map { Float(-105 + 195 * Double($0) / 200_000) }
        guard let y = vrun(.exp, path, xs) else { return }
        var worst = 0.0, bad = 0
        for (x, v) in zip(xs, y) {
            let ref = Foundation.exp(Double(x))
            if !ulpClose(v, ref, ulps: 4) { bad += 1; if bad < 5 { print("exp[\(path)](\(x)) = \(v), want \(ref)") } }
            if ref.isFinite && ref > 0 && v.isFinite { worst = max(worst, abs(Double(v) - ref) / Double(Float(ref).ulp)) }
        }
        print("exp [\(path)]: max error \(worst) ulp over \(xs.count) points")
        #expect(bad == 0)
        let s = try #require(vrun(.exp, path, [.nan, .infinity, -.infinity, 0, -0.0, 89, 104, -104, -110]))
        #expect(s[0].isNaN && s[1] == .infinity && s[2] == 0 && s[3] == 1 && s[4] == 1)
        #expect(s[5] == .infinity && s[6] == .infinity && s[7] == 0 && s[8] == 0)
    }

    @Test(arguments: VMathPath.allCases) func erf(_ path: VMathPath) throws {
        let xs = gridPoints()
        guard let y = vrun(.erf, path, xs) else { return }
        var worst = 0.0, bad = 0
        for (x, v) in zip(xs, y) {
            let ref = Foundation.erf(Double(x))
            let ok = ref.isNaN ? v.isNaN : abs(Double(v) - ref) <= 2e-7
            if !ok { bad += 1; if bad < 5 { print("erf[\(path)](\(x)) = \(v), want \(ref)") } }
            if !ref.isNaN { worst = max(worst, abs(Double(v) - ref)) }
        }
        print("erf [\(path)]: max abs error \(worst) over \(xs.count) points")
        #expect(bad == 0)
        let s = try #require(vrun(.erf, path, [.nan, .infinity, -.infinity, 0, -0.0, 4, -4, 30, .leastNonzeroMagnitude]))
        #expect(s[0].isNaN && s[1] == 1 && s[2] == -1 && s[5] == 1 && s[6] == -1 && s[7] == 1)
        #expect(s[3] == 0 && s[3].sign == .plus && s[4] == 0 && s[4].sign == .minus)
        #expect(s[8] > 0 && s[8] < .leastNormalMagnitude) // 1.128 × 2^-149 rounds to a denormal
    }

    @Test(arguments: VMathPath.allCases) func gelu(_ path: VMathPath) throws {
        let xs = gridPoints()
        guard let y = vrun(.gelu, path, xs) else { return }
        var worst = 0.0, bad = 0
        for (x, v) in zip(xs, y) {
            let d = Double(x)
            let ref = 0.5 * d * (1 + Foundation.erf(d / 2.0.squareRoot()))
            if ref.isNaN { if !v.isNaN { bad += 1 }; continue }
            if ref.isInfinite { if v != Float(ref) { bad += 1 }; continue }
            let e = abs(Double(v) - ref) / max(1, abs(d))
            worst = max(worst, e)
            if !(e <= 1e-6) { bad += 1; if bad < 5 { print("gelu[\(path)](\(x)) = \(v), want \(ref)") } }
        }
        print("gelu [\(path)]: max error \(worst) × max(1,|x|) over \(xs.count) points")
        #expect(bad == 0)
        let s = try #require(vrun(.gelu, path, [.nan, .infinity, -20, 20, 0, -.infinity, -0.0, 14.5, -14.5]))
        #expect(s[0].isNaN && s[1] == .infinity && s[2] == 0 && s[3] == 20 && s[4] == 0)
        // -inf: -inf·0 = NaN, like the formula (and PyTorch); -0 keeps its sign.
        #expect(s[5].isNaN && s[6] == 0 && s[6].sign == .minus && s[7] == 14.5 && s[8] == 0)
    }

    /// GELU's negative tail in relative terms: 0.5·x·erfc(|x|/√2) falls to ~1e-38 at x = -13,
    /// and an error that is small next to max(1, |x|) can still be all of the value there.
    @Test(arguments: VMathPath.allCases) func geluNegativeTailRelative(_ path: VMathPath) throws {
        let count = 400_000
        let xs = (0..<count).map { Float(-13 * Double($0 + 1) / Double(count)) }
        guard let y = vrun(.gelu, path, xs) else { return }
        var worst = 0.0, bad = 0
        for (x, v) in zip(xs, y) {
            let d = Double(x)
            let ref = 0.5 * d * Foundation.erfc(-d / 2.0.squareRoot())
            let e = abs(Double(v) - ref) / abs(ref)
            worst = max(worst, e)
            if !(e <= 1e-6) { bad += 1; if bad < 5 { print("gelu[\(path)](\(x)) = \(v), want \(ref)") } }
        }
        print("gelu [\(path)]: max relative error \(worst) on [-13, 0)")
        #expect(bad == 0)
    }

    @Test(arguments: VMathPath.allCases) func sigmoid(_ path: VMathPath) throws {
        let xs = gridPoints() + (0...20_000).map { Float(-104 + 208 * Double($0) / 20_000) }
        guard let y = vrun(.sigmoid, path, xs) else { return }
        var bad = 0
        for (x, v) in zip(xs, y) {
            let ref = 1 / (1 + Foundation.exp(-Double(x)))
            if !ulpClose(v, ref, ulps: 4) { bad += 1; if bad < 5 { print("sigmoid[\(path)](\(x)) = \(v), want \(ref)") } }
        }
        #expect(bad == 0)
        let s = try #require(vrun(.sigmoid, path, [.nan, .infinity, -.infinity, 0]))
        #expect(s[0].isNaN && s[1] == 1 && s[2] == 0 && s[3] == 0.5)
    }

    /// Lengths 0...17 at every offset 0...7: each element equals the same element of one long call
    /// (no dependence on position or tail handling) and nothing past n is written.
    @Test(arguments: VMathPath.allCases) func tails(_ path: VMathPath) throws {
        let src: [Float] = (0..<40).map { Float($0) * 0.37 - 7.1 }
        for op in [VMathOp.exp, .erf, .gelu, .sigmoid] {
            guard let whole = vrun(op, path, src) else { return }
            for n in 0...17 {
                for off in 0...7 {
                    var out = [Float](repeating: 12345, count: 40)
                    src.withUnsafeBufferPointer { xp in
                        out.withUnsafeMutableBufferPointer { yp in
                            _ = vmath_run(op.code, path.code, xp.baseAddress! + off, yp.baseAddress! + off, n)
                        }
                    }
                    for i in 0..<40 {
                        let want = (i >= off && i < off + n) ? whole[i] : 12345
                        #expect(out[i] == want, "op \(op) n \(n) offset \(off) index \(i)")
                    }
                }
            }
            // In place.
            var inPlace = src
            inPlace.withUnsafeMutableBufferPointer { p in _ = vmath_run(op.code, path.code, p.baseAddress, p.baseAddress, p.count) }
            #expect(inPlace == whole)
        }
    }

    @Test(arguments: VMathPath.allCases) func softmaxRows(_ path: VMathPath) throws {
        var rng = SystemRandomNumberGenerator()
        var worst = 0.0
        for n in Array(0...17) + [31, 128, 384, 1000] {
            for scale: Float in [1, 10, 60] {
                var x = (0..<n).map { _ in Float.random(in: -scale...scale, using: &rng) }
                if n > 3 { x[1] = -.infinity } // a masked position
                guard let y = vrun(.softmax, path, x) else { return }
                let m = x.map(Double.init).max() ?? 0
                let e = x.map { Foundation.exp(Double($0) - m) }
                let s = e.reduce(0, +)
                for j in 0..<n {
                    let ref = e[j] / s
                    let err = abs(Double(y[j]) - ref)
                    let tol = ref * (2e-6 + 1.2e-7 * (x[j].isFinite ? abs(Double(x[j]) - m) : 0)) + 1e-12
                    worst = max(worst, err / tol)
                    #expect(err <= tol, "n \(n) j \(j): \(y[j]) vs \(ref)")
                }
                // In place gives the same.
                var z = x
                z.withUnsafeMutableBufferPointer { p in _ = vmath_run(VMathOp.softmax.code, path.code, p.baseAddress, p.baseAddress, p.count) }
                #expect(z == y)
            }
        }
        print("softmax [\(path)]: max error \(worst) of the tolerance")
        // Special rows, as the Swift softmax (and the formula): all -inf, +inf or NaN → NaN row;
        // -inf entries → 0 when something is finite.
        for n in [1, 5, 8, 13] {
            let allNegInf = [Float](repeating: -.infinity, count: n)
            #expect(try #require(vrun(.softmax, path, allNegInf)).allSatisfy(\.isNaN))
            var withInf = [Float](repeating: 1, count: n); withInf[n / 2] = .infinity
            #expect(try #require(vrun(.softmax, path, withInf)).allSatisfy(\.isNaN))
            var withNaN = [Float](repeating: 1, count: n); withNaN[n - 1] = .nan
            #expect(try #require(vrun(.softmax, path, withNaN)).allSatisfy(\.isNaN))
            var oneFinite = allNegInf; oneFinite[n - 1] = 3
            let y = try #require(vrun(.softmax, path, oneFinite))
            #expect(y[n - 1] == 1 && y.dropLast().allSatisfy { $0 == 0 })
        }
        #expect(vrun(.softmax, path, []) == [])
    }
}

import CKernels
import Foundation
import Testing
@testable import GraftCore

// Graft's decode GEMV (Sources/CKernels/gemv.c, `DecodeGemv`) against a straightforward loop in
// Double: y[j] = act(Σ_k x[k]·W[k, j] + bias[j]).
// Tolerance: |got - want| <= 1e-4 · (|bias_j| + Σ_k |x_k · W_kj|) + 1e-30, i.e. relative 1e-4 to
// the magnitude of the terms summed (float32 accumulation of up to 1000 terms in another order
// is far below that; a lost or doubled row, a wrong column or a missed partial is not). GELU is
// 1-Lipschitz up to 1.13, so the same bound holds after it.

fileprivate struct Case {
    let k: Int, n: Int
    let x: [Float], w: [Float], bias: [Float]
}

fileprivate func makeCase(k: Int, n: Int, seed: UInt64) -> Case {
    var rng = TestRandom(seed: seed)
    return Case(k: k, n: n, x: rng.floats(k, -1, 1), w: rng.floats(k * n, -1, 1), bias: rng.floats(n, -1, 1))
}

fileprivate func gelu(_ v: Double) -> Double { 0.5 * v * (1 + erf(v / 2.0.squareRoot())) }

/// (want, scale) per column: the Double result and the magnitude bound of the tolerance.
fileprivate func reference(_ c: Case, bias: Bool, gelu applyGelu: Bool) -> (want: [Double], scale: [Double]) {
    var want = [Double](repeating: 0, count: c.n), scale = [Double](repeating: 0, count: c.n)
    for kk in 0..<c.k {
        let xv = Double(c.x[kk])
        for j in 0..<c.n {
            let p = xv * Double(c.w[kk * c.n + j])
            want[j] += p
            scale[j] += abs(p)
        }
    }
    if bias { for j in 0..<c.n { want[j] += Double(c.bias[j]); scale[j] += abs(Double(c.bias[j])) } }
    if applyGelu { for j in 0..<c.n { want[j] = gelu(want[j]) } }
    return (want, scale)
}

/// Index of the first column outside the tolerance, or nil.
fileprivate func firstMiss(_ got: [Float], _ ref: (want: [Double], scale: [Double])) -> Int? {
    guard got.count == ref.want.count else { return 0 }
    return got.indices.first { !(abs(Double(got[$0]) - ref.want[$0]) <= 1e-4 * ref.scale[$0] + 1e-30) }
}

/// DecodeGemv.run in `parts` K blocks on `path`, then the MatMul epilogue (bias, GELU) as the
/// kernel applies it. y and the partials start as NaN: nothing may be read before it is written.
fileprivate func gemv(_ c: Case, parts: Int, path: PackedGemm.Path, bias: Bool, gelu: Bool) -> [Float] {
    var y = [Float](repeating: .nan, count: c.n)
    let partials = UnsafeMutablePointer<Float>.allocate(capacity: max((parts - 1) * c.n, 1))
    defer { partials.deallocate() }
    partials.update(repeating: .nan, count: max((parts - 1) * c.n, 1))
    c.x.withUnsafeBufferPointer { px in
        c.w.withUnsafeBufferPointer { pw in
            y.withUnsafeMutableBufferPointer { py in
                DecodeGemv.run(x: px.baseAddress!, w: pw.baseAddress!, ldw: c.n, y: py.baseAddress!, k: c.k, n: c.n,
                               parts: parts, partials: parts > 1 ? partials : nil, path: path)
                let epilogue = LinearKernels.Epilogue(bias: bias ? HostTensor(c.bias, shape: [c.n]) : nil,
                                                      activation: gelu ? .geluErf : nil)
                epilogue.finish(py.baseAddress!, ldc: c.n, rows: 0..<1, columns: 0..<c.n)
            }
        }
    }
    return y
}

fileprivate let sizes = [1, 3, 7, 64, 129, 768, 1000]

/// Every K × N of `sizes`, built once and shared by both paths' tests.
fileprivate let grid: [Case] = {
    var cases: [Case] = []
    for k in sizes { for n in sizes { cases.append(makeCase(k: k, n: n, seed: UInt64(k * 7919 + n))) } }
    return cases
}()

fileprivate func checkGrid(_ path: PackedGemm.Path) {
    for (i, c) in grid.enumerated() {
        // Bias and GELU rotate with the case so each meets small and large shapes.
        let bias = i % 2 == 0, act = i % 3 == 0
        let ref = reference(c, bias: bias, gelu: act)
        for parts in [1, 2] {
            let got = gemv(c, parts: parts, path: path, bias: bias, gelu: act)
            let miss = firstMiss(got, ref)
            #expect(miss == nil, "path \(path) K=\(c.k) N=\(c.n) parts=\(parts) bias=\(bias) gelu=\(act): column \(miss ?? -1) got \(miss.map { got[$0] } ?? 0) want \(miss.map { ref.want[$0] } ?? 0)")
        }
    }
}

@Suite struct DecodeGemvTests {
    @Test func portablePath() { checkGrid(.portable) }

    @Test(.enabled(if: PackedGemm.supported(.avx2), "CPU without AVX2+FMA")) func avx2Path() { checkGrid(.avx2) }

    /// The lm_head width once (N = 32000, 125 KiB of y, past L1), 1–3 parts on both paths.
    @Test func wideOutput() {
        let c = makeCase(k: 129, n: 32000, seed: 5)
        let ref = reference(c, bias: false, gelu: false)
        for path in [PackedGemm.Path.portable, .avx2] where PackedGemm.supported(path) {
            for parts in 1...3 {
                #expect(firstMiss(gemv(c, parts: parts, path: path, bias: false, gelu: false), ref) == nil, "path \(path) parts \(parts)")
            }
        }
    }

    /// W's rows farther apart than N (ldw > n: a column block of a wider matrix); the columns
    /// past N are never read into y, and y past N is never written.
    @Test func rowStride() {
        let (k, n, ldw) = (67, 45, 61)
        let c = makeCase(k: k, n: ldw, seed: 9)
        var narrow = [Float]()
        for kk in 0..<k { narrow += c.w[(kk * ldw)..<(kk * ldw + n)] }
        let ref = reference(Case(k: k, n: n, x: c.x, w: narrow, bias: []), bias: false, gelu: false)
        for path in [PackedGemm.Path.portable, .avx2] where PackedGemm.supported(path) {
            var y = [Float](repeating: -7, count: n + 8)
            c.x.withUnsafeBufferPointer { px in
                c.w.withUnsafeBufferPointer { pw in
                    y.withUnsafeMutableBufferPointer { py in
                        graft_gemv_rows(path.rawValue, k, n, px.baseAddress!, pw.baseAddress!, ldw, py.baseAddress!, 0)
                    }
                }
            }
            #expect(firstMiss(Array(y[0..<n]), ref) == nil, "path \(path)")
            #expect(y[n...].allSatisfy { $0 == -7 }, "path \(path)")
        }
    }

    /// accumulate = 1 adds to y; K = 0 writes zeros (accumulate = 0) or leaves y alone.
    @Test func accumulateAndEmptyK() {
        let c = makeCase(k: 9, n: 20, seed: 13)
        let ref = reference(c, bias: false, gelu: false)
        for path in [PackedGemm.Path.portable, .avx2] where PackedGemm.supported(path) {
            var y = [Float](repeating: 2, count: c.n)
            c.x.withUnsafeBufferPointer { px in
                c.w.withUnsafeBufferPointer { pw in
                    y.withUnsafeMutableBufferPointer { py in
                        graft_gemv_rows(path.rawValue, c.k, c.n, px.baseAddress!, pw.baseAddress!, c.n, py.baseAddress!, 1)
                    }
                }
            }
            #expect(firstMiss(y.map { $0 - 2 }, (ref.want, ref.scale.map { $0 + 2 })) == nil, "path \(path)")
            var z = [Float](repeating: .nan, count: 5)
            z.withUnsafeMutableBufferPointer { graft_gemv_rows(path.rawValue, 0, 5, nil, nil, 5, $0.baseAddress!, 0) }
            #expect(z == [0, 0, 0, 0, 0])
            var u: [Float] = [1, 2, 3]
            u.withUnsafeMutableBufferPointer { graft_gemv_rows(path.rawValue, 0, 3, nil, nil, 3, $0.baseAddress!, 1) }
            #expect(u == [1, 2, 3])
        }
    }

    /// graft_gemv_sum adds partials in order, on both paths, with a row stride.
    @Test func partialSum() {
        var rng = TestRandom(seed: 17)
        let (n, ldp, count) = (37, 40, 3)
        let y0 = rng.floats(n), parts = rng.floats(ldp * count)
        for path in [PackedGemm.Path.portable, .avx2] where PackedGemm.supported(path) {
            var y = y0
            y.withUnsafeMutableBufferPointer { py in
                parts.withUnsafeBufferPointer { graft_gemv_sum(path.rawValue, n, py.baseAddress!, $0.baseAddress!, ldp, count) }
            }
            let want = (0..<n).map { j in (0..<count).reduce(y0[j]) { $0 + parts[$1 * ldp + j] } }
            #expect(y == want, "path \(path)")
        }
    }

    /// Parts chosen for a session: one below 32 K weight floats or 2 × 64 rows, else up to the
    /// thread count with at least 64 rows each.
    @Test func partsRule() {
        #expect(DecodeGemv.parts(k: 768, n: 768, threads: 1) == 1)
        #expect(DecodeGemv.parts(k: 768, n: 768, threads: 2) == 2)
        #expect(DecodeGemv.parts(k: 768, n: 32, threads: 2) == 1)
        #expect(DecodeGemv.parts(k: 100, n: 1000, threads: 2) == 1)
        #expect(DecodeGemv.parts(k: 200, n: 1000, threads: 4) == 3)
    }

    // MARK: - Through a model

    /// x [1, 1, K] → MatMul W [K, N] → (+ b → Gelu): one-row products as a session runs them,
    /// fused epilogue included, at 1 and 2 threads; and MatMul with the weight as a graph input
    /// (not a constant), which takes the same kernel.
    @Test(arguments: [(768, 1000), (129, 7), (1000, 64), (64, 3)])
    func matMulGraph(_ shape: (Int, Int)) throws {
        let (k, n) = shape
        let c = makeCase(k: k, n: n, seed: UInt64(k + 31 * n))
        var m = OnnxModel(nodes: [OnnxNode(op: "MatMul", inputs: ["x", "w"], outputs: ["p"], name: "/mlp/MatMul"),
                                  OnnxNode(op: "Add", inputs: ["p", "b"], outputs: ["z"]),
                                  OnnxNode(op: "Gelu", inputs: ["z"], outputs: ["y"])],
                          inputs: [OnnxValue(name: "x", dims: [1, 1, k])],
                          outputs: [OnnxValue(name: "y"), OnnxValue(name: "p")],
                          initializers: [.floats("w", c.w, [Int64(k), Int64(n)]), .floats("b", c.bias, [Int64(n)])])
        m.opset = 20
        let bytes = m.encode()
        let model = try bytes.withUnsafeBytes { try CoreModel(bytes: $0, fuse: true) }
        let refY = reference(c, bias: true, gelu: true), refP = reference(c, bias: false, gelu: false)
        for threads in [1, 2] {
            let out = try CoreSession(model: model, threads: threads).run(["x": HostTensor(c.x, shape: [1, 1, k])])
            let y = try #require(out["y"]), p = try #require(out["p"])
            #expect(y.shape == [1, 1, n] && p.shape == [1, 1, n])
            #expect(firstMiss(y.floats(), refY) == nil, "y K=\(k) N=\(n) threads \(threads)")
            #expect(firstMiss(p.floats(), refP) == nil, "p K=\(k) N=\(n) threads \(threads)")
        }

        let dynamic = OnnxModel(nodes: [OnnxNode(op: "MatMul", inputs: ["x", "w"], outputs: ["p"])],
                                inputs: [OnnxValue(name: "x", dims: [1, k]), OnnxValue(name: "w", dims: [k, n])],
                                outputs: [OnnxValue(name: "p")])
        let dynBytes = dynamic.encode()
        let dynModel = try dynBytes.withUnsafeBytes { try CoreModel(bytes: $0, fuse: true) }
        for threads in [1, 2] {
            let out = try CoreSession(model: dynModel, threads: threads).run(["x": HostTensor(c.x, shape: [1, k]),
                                                                              "w": HostTensor(c.w, shape: [k, n])])
            let p = try #require(out["p"])
            #expect(firstMiss(p.floats(), refP) == nil, "weight as input K=\(k) N=\(n) threads \(threads)")
        }
    }
}

import CKernels
import Testing
@testable import GraftCore

// Graft's packed GEMM (Sources/CKernels) against a triple loop in Double.
// Tolerance: |got - want| <= 1e-5 · (|bias_j| + Σ_k |a_ik · b_kj|) + 1e-30, i.e. relative 1e-5
// to the magnitude of the terms summed (float32 accumulation of up to 385 terms in another order
// stays orders of magnitude below that; a wrong index or a lost term does not).

fileprivate struct Rng {
    var s: UInt64
    mutating func next() -> Float {
        s = s &* 6364136223846793005 &+ 1442695040888963407
        return Float(Int((s >> 33) % 2001) - 1000) / 1000
    }
    mutating func floats(_ n: Int) -> [Float] { (0..<n).map { _ in next() } }
}

/// want[i*n + j] = Σ_k a[i,k]·b[k,j] + bias[j] in Double, and the magnitude bound.
fileprivate func reference(_ a: [Float], _ b: [Float], bias: [Float]?, m: Int, n: Int, k: Int) -> (want: [Double], scale: [Double]) {
    var want = [Double](repeating: 0, count: m * n), scale = [Double](repeating: 0, count: m * n)
    for i in 0..<m {
        for j in 0..<n {
            var s = 0.0, mag = 0.0
            for kk in 0..<k {
                let p = Double(a[i * k + kk]) * Double(b[kk * n + j])
                s += p
                mag += abs(p)
            }
            if let bias { s += Double(bias[j]); mag += abs(Double(bias[j])) }
            want[i * n + j] = s
            scale[i * n + j] = mag
        }
    }
    return (want, scale)
}

fileprivate func agree(_ got: [Float], _ ref: (want: [Double], scale: [Double])) -> Bool {
    guard got.count == ref.want.count else { return false }
    for i in got.indices where !(abs(Double(got[i]) - ref.want[i]) <= 1e-5 * ref.scale[i] + 1e-30) { return false }
    return true
}

/// Runs the packed GEMM on one path for C = A·B (+bias), B given as [k, n] (packed either from
/// B itself or from its transpose, to cover Gemm's transB packing).
fileprivate func packedProduct(_ a: [Float], _ b: [Float], bias: [Float]?, m: Int, n: Int, k: Int, path: PackedGemm.Path,
                               threads: Int, split: PackedGemm.Split, transposedPacking: Bool) -> [Float] {
    let w: PackedWeight
    if transposedPacking {
        var bt = [Float](repeating: 0, count: k * n)   // [n, k]
        for kk in 0..<k { for j in 0..<n { bt[j * k + kk] = b[kk * n + j] } }
        w = PackedWeight(HostTensor(bt, shape: [n, k]), k: k, n: n, transposed: true)
    } else {
        w = PackedWeight(HostTensor(b, shape: [k, n]), k: k, n: n, transposed: false)
    }
    // C pre-filled with NaN: every element must be written (not accumulated into).
    var c = [Float](repeating: .nan, count: m * n)
    a.withUnsafeBufferPointer { pa in
        c.withUnsafeMutableBufferPointer { pc in
            if let bias {
                bias.withUnsafeBufferPointer { pb in
                    PackedGemm.run(w, a: pa.baseAddress!, lda: k, bias: pb.baseAddress, c: pc.baseAddress!, ldc: n, m: m,
                                   threads: threads, path: path, split: split)
                }
            } else {
                PackedGemm.run(w, a: pa.baseAddress!, lda: k, bias: nil, c: pc.baseAddress!, ldc: n, m: m,
                               threads: threads, path: path, split: split)
            }
        }
    }
    return c
}

fileprivate let ms = [1, 2, 3, 7, 64, 129]
fileprivate let ns = [1, 5, 16, 33, 384, 1536]
fileprivate let ks = [1, 7, 64, 385]

/// One case of the grid: operands, reference, and the variant it runs with. Bias, thread count,
/// split and packing layout rotate with the shape index so that each variant meets small and
/// large shapes alike.
fileprivate struct GridCase: Sendable {
    let m: Int, n: Int, k: Int
    let a: [Float], b: [Float], bias: [Float]?
    let ref: (want: [Double], scale: [Double])
    let threads: Int, split: PackedGemm.Split, transposedPacking: Bool
}

/// Built once (a lazily initialized global) and shared by every path's test.
fileprivate let grid: [GridCase] = {
    var rng = Rng(s: 42)
    var cases: [GridCase] = []
    for m in ms {
        for n in ns {
            for k in ks {
                let index = cases.count
                let a = rng.floats(m * k), b = rng.floats(k * n)
                let bias: [Float]? = index % 2 == 0 ? rng.floats(n) : nil
                cases.append(GridCase(m: m, n: n, k: k, a: a, b: b, bias: bias, ref: reference(a, b, bias: bias, m: m, n: n, k: k),
                                      threads: [1, 2, 3][index % 3], split: [.auto, .rows, .panels, .rows, .panels][index % 5],
                                      transposedPacking: index % 4 == 1))
            }
        }
    }
    return cases
}()

fileprivate func checkGrid(_ path: PackedGemm.Path) {
    for g in grid {
        let got = packedProduct(g.a, g.b, bias: g.bias, m: g.m, n: g.n, k: g.k, path: path, threads: g.threads, split: g.split,
                                transposedPacking: g.transposedPacking)
        #expect(agree(got, g.ref), "path \(path) M=\(g.m) N=\(g.n) K=\(g.k) bias=\(g.bias != nil) threads=\(g.threads) split=\(g.split)")
    }
}

@Suite struct PackedGemmTests {
    @Test func portablePath() { checkGrid(.portable) }

    @Test(.enabled(if: PackedGemm.supported(.avx2), "CPU without AVX2+FMA")) func avx2Path() { checkGrid(.avx2) }

    @Test(.enabled(if: PackedGemm.supported(.avx512), "CPU without AVX-512F")) func avx512Path() { checkGrid(.avx512) }

    /// Thread splits by rows and by panels, 1–4 threads, give the same result as one thread.
    /// (129, 96, 1100): more than four row tiles and K over two K blocks (KC = 512), so later
    /// blocks add to C; (30, 40, 1100): four row tiles or fewer stream K unblocked.
    @Test(arguments: [(129, 1536, 385), (64, 384, 64), (1, 1536, 385), (3, 33, 7), (129, 96, 1100), (30, 40, 1100)])
    func threadSplits(_ shape: (Int, Int, Int)) {
        let (m, n, k) = shape
        var rng = Rng(s: UInt64(m * 31 + n))
        let a = rng.floats(m * k), b = rng.floats(k * n), bias = rng.floats(n)
        let ref = reference(a, b, bias: bias, m: m, n: n, k: k)
        for threads in 1...4 {
            for split in [PackedGemm.Split.auto, .rows, .panels] {
                let got = packedProduct(a, b, bias: bias, m: m, n: n, k: k, path: .auto, threads: threads, split: split,
                                        transposedPacking: false)
                #expect(agree(got, ref), "M=\(m) N=\(n) K=\(k) threads=\(threads) split=\(split)")
            }
        }
    }

    /// Row stride and bias: rows of A and C farther apart than K and N (the driver's lda/ldc).
    @Test func strides() {
        let (m, n, k, lda, ldc) = (13, 37, 19, 23, 41)
        var rng = Rng(s: 7)
        let aWide = rng.floats(m * lda), b = rng.floats(k * n), bias = rng.floats(n)
        var a = [Float]()
        for i in 0..<m { a += aWide[(i * lda)..<(i * lda + k)] }
        let ref = reference(a, b, bias: bias, m: m, n: n, k: k)
        let w = PackedWeight(HostTensor(b, shape: [k, n]), k: k, n: n, transposed: false)
        for path in PackedGemm.Path.allCases where PackedGemm.supported(path) {
            var c = [Float](repeating: -7, count: m * ldc)
            aWide.withUnsafeBufferPointer { pa in
                c.withUnsafeMutableBufferPointer { pc in
                    bias.withUnsafeBufferPointer { pb in
                        PackedGemm.run(w, a: pa.baseAddress!, lda: lda, bias: pb.baseAddress, c: pc.baseAddress!, ldc: ldc,
                                       m: m, threads: 1, path: path)
                    }
                }
            }
            var got = [Float]()
            for i in 0..<m { got += c[(i * ldc)..<(i * ldc + n)] }
            #expect(agree(got, ref), "path \(path)")
            // Columns between N and ldc are untouched.
            #expect((0..<m).allSatisfy { i in (n..<ldc).allSatisfy { c[i * ldc + $0] == -7 } }, "path \(path)")
        }
    }

    /// MatMul with a constant weight runs packed; a different pointer in the weight slot at run
    /// time (what merged adapters do) must be honoured, not answered from the packed copy.
    @Test(arguments: [1, 2])
    func matmulKernelHonoursReplacedWeight(threads: Int) throws {
        let (m, n, k) = (5, 70, 33)
        var rng = Rng(s: 99)
        let a = rng.floats(2 * m * k), b = rng.floats(k * n), b2 = rng.floats(k * n)
        let at = HostTensor(a, shape: [2, m, k]), bt = HostTensor(b, shape: [k, n]), b2t = HostTensor(b2, shape: [k, n])
        let node = Node(name: "mm", opType: "MatMul", inputs: ["x", "w"], outputs: ["y"], attributes: [:])
        let kernel = try KernelRegistry.compile(node, inputTypes: [TensorType(.float32, [2, m, k]), TensorType(.float32, [k, n])],
                                                constants: [nil, bt], opset: 17, threads: threads)
        #expect(kernel.outputTypes == [TensorType(.float32, [2, m, n])])
        let out = HostTensor(zeros: .float32, shape: [2, m, n])
        func runWith(_ w: HostTensor) throws -> [Float] {
            let slots = UnsafeMutablePointer<UnsafeMutableRawPointer>.allocate(capacity: 3)
            defer { slots.deallocate() }
            slots[0] = at.raw; slots[1] = w.raw; slots[2] = out.raw
            let ins: [Int32] = [0, 1], outs: [Int32] = [2]
            try ins.withUnsafeBufferPointer { pi in
                try outs.withUnsafeBufferPointer { po in
                    try kernel.run(KernelIO(slots: slots, inputSlots: pi.baseAddress!, outputSlots: po.baseAddress!))
                }
            }
            return out.floats()
        }
        #expect(agree(try runWith(bt), reference(a, b, bias: nil, m: 2 * m, n: n, k: k)))
        #expect(agree(try runWith(b2t), reference(a, b2, bias: nil, m: 2 * m, n: n, k: k)))
        #expect(agree(try runWith(bt), reference(a, b, bias: nil, m: 2 * m, n: n, k: k)))
    }

    /// Gemm transB = 1 with a bias row: packed from [N, K] with the bias in the epilogue.
    @Test(arguments: [[37], [1, 37]])
    func gemmTransBWithBias(biasShape: [Int]) throws {
        let (m, n, k) = (9, 37, 21)
        var rng = Rng(s: 5)
        let a = rng.floats(m * k), b = rng.floats(k * n), bias = rng.floats(n)
        var bt = [Float](repeating: 0, count: k * n)
        for kk in 0..<k { for j in 0..<n { bt[j * k + kk] = b[kk * n + j] } }
        let node = Node(name: "g", opType: "Gemm", inputs: ["a", "b", "c"], outputs: ["y"], attributes: ["transB": .int(1)])
        for threads in [1, 2] {
            let y = try KernelRegistry.evaluate(node, inputs: [HostTensor(a, shape: [m, k]), HostTensor(bt, shape: [n, k]),
                                                               HostTensor(bias, shape: biasShape)], opset: 17, threads: threads)[0]
            #expect(y.shape == [m, n])
            #expect(agree(y.floats(), reference(a, b, bias: bias, m: m, n: n, k: k)))
        }
    }

    /// One packed copy per weight, shared by plans; freed with the last user.
    @Test func cacheSharesPackedWeights() {
        let w = HostTensor([Float](repeating: 1, count: 64 * 48), shape: [64, 48])
        let p1 = PackedWeightCache.packed(w, k: 64, n: 48, transposed: false)
        let p2 = PackedWeightCache.packed(w, k: 64, n: 48, transposed: false)
        #expect(p1 === p2)
        let p3 = PackedWeightCache.packed(w, k: 48, n: 64, transposed: true)
        #expect(p1 !== p3)
        #expect(graft_gemm_resolved_path() != 0)
    }
}

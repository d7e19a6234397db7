import Testing
@testable import GraftCore

// Float comparisons: |got - want| <= 1e-4 * max(1, |want|) (OpenBLAS sums in a different order
// than the plain-loop references below).



/// Deterministic values in [-1, 1).
fileprivate func random(_ shape: [Int], seed: UInt64) -> HostTensor {
    var s = seed &* 6364136223846793005 &+ 1442695040888963407
    let v = (0..<Shape.product(shape)).map { _ -> Float in
        s = s &* 6364136223846793005 &+ 1442695040888963407
        return Float(Int((s >> 33) % 2001) - 1000) / 1000
    }
    return HostTensor(v, shape: shape)
}

fileprivate func close(_ got: [Float], _ want: [Float], tol: Float = 1e-4) -> Bool {
    guard got.count == want.count else { return false }
    return zip(got, want).allSatisfy { abs($0 - $1) <= tol * max(1, abs($1)) }
}


/// numpy matmul by plain loops (1-D promotion, broadcast batch dims).
fileprivate func refMatMul(_ a: HostTensor, _ b: HostTensor) -> (shape: [Int], values: [Float]) {
    let ash = a.shape.count == 1 ? [1] + a.shape : a.shape
    let bsh = b.shape.count == 1 ? b.shape + [1] : b.shape
    let m = ash[ash.count - 2], k = ash[ash.count - 1], n = bsh[bsh.count - 1]
    let ba = Array(ash.dropLast(2)), bb = Array(bsh.dropLast(2))
    let r = max(ba.count, bb.count)
    let pa = [Int](repeating: 1, count: r - ba.count) + ba, pb = [Int](repeating: 1, count: r - bb.count) + bb
    let batch = (0..<r).map { max(pa[$0], pb[$0]) }
    let av = a.floats(), bv = b.floats()
    var out: [Float] = []
    for bi in 0..<Shape.product(batch) {
        let c = coords(bi, batch)
        var ia = 0, ib = 0
        for d in 0..<r {
            ia = ia * pa[d] + (pa[d] == 1 ? 0 : c[d])
            ib = ib * pb[d] + (pb[d] == 1 ? 0 : c[d])
        }
        for i in 0..<m {
            for j in 0..<n {
                var s: Float = 0
                for p in 0..<k { s += av[ia * m * k + i * k + p] * bv[ib * k * n + p * n + j] }
                out.append(s)
            }
        }
    }
    var shape = batch
    if a.shape.count > 1 { shape.append(m) }
    if b.shape.count > 1 { shape.append(n) }
    return (shape, out)
}

/// Direct nested-loop 2-D convolution (NCHW), explicit pads [top, left, bottom, right].
fileprivate func refConv(_ x: HostTensor, _ w: HostTensor, _ bias: HostTensor?, strides: [Int], pads: [Int],
                         dilations: [Int], group: Int) -> (shape: [Int], values: [Float]) {
    let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let (m, cg, kh, kw) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3])
    let oh = (h + pads[0] + pads[2] - dilations[0] * (kh - 1) - 1) / strides[0] + 1
    let ow = (wd + pads[1] + pads[3] - dilations[1] * (kw - 1) - 1) / strides[1] + 1
    let xv = x.floats(), wv = w.floats(), bv = bias?.floats()
    let mg = m / group
    var out = [Float](repeating: 0, count: n * m * oh * ow)
    for b in 0..<n {
        for oc in 0..<m {
            let g = oc / mg
            for y in 0..<oh {
                for xo in 0..<ow {
                    var s: Float = bv?[oc] ?? 0
                    for ci in 0..<cg {
                        for ky in 0..<kh {
                            for kx in 0..<kw {
                                let iy = y * strides[0] - pads[0] + ky * dilations[0]
                                let ix = xo * strides[1] - pads[1] + kx * dilations[1]
                                if iy < 0 || iy >= h || ix < 0 || ix >= wd { continue }
                                let cin = g * cg + ci
                                s += xv[((b * c + cin) * h + iy) * wd + ix] * wv[((oc * cg + ci) * kh + ky) * kw + kx]
                            }
                        }
                    }
                    out[((b * m + oc) * oh + y) * ow + xo] = s
                }
            }
        }
    }
    _ = c
    return ([n, m, oh, ow], out)
}

@Suite("Linear kernels")
struct LinearKernelTests {
    @Test func matmulSmallExact() throws {
        let a = HostTensor([Float](arrayLiteral: 1, 2, 3, 4, 5, 6), shape: [2, 3])
        let b = HostTensor([Float](arrayLiteral: 1, 0, 0, 1, 1, 1), shape: [3, 2])
        let y = try runNodeOutput("MatMul", [a, b])
        #expect(y.shape == [2, 2])
        #expect(close(y.floats(), [4, 5, 10, 11]))
    }

    @Test(arguments: [
        ([2, 3, 4], [4, 5]),          // B is a weight: batch folded into M (one sgemm)
        ([2, 1, 3, 4], [3, 4, 2]),    // broadcast batch dims
        ([3, 4], [2, 4, 5]),          // A broadcast over B's batch
        ([2, 3, 5, 4], [2, 3, 4, 5]), // attention QK^T-like, equal batch dims
        ([3, 1, 4], [3, 4, 5]),       // batched M == 1 (gemv per batch)
        ([3, 5, 4], [3, 4, 1]),       // batched N == 1
        ([4], [4, 5]),                // 1-D A
        ([2, 3, 4], [4]),             // 1-D B
        ([4], [4]),                   // 1-D x 1-D: scalar
        ([4], [2, 4, 3]),             // 1-D A against a batch
        ([1, 7], [7, 9]),             // M == 1 with 2-D B (gemv)
        ([13, 17], [17, 11]),         // odd sizes
        ([0, 4], [4, 5]),             // empty rows
        ([3, 0], [0, 2]),             // K == 0: zeros
    ])
    func matmulAgainstReference(_ sa: [Int], _ sb: [Int]) throws {
        let a = random(sa, seed: 1), b = random(sb, seed: 2)
        let want = refMatMul(a, b)
        for threads in [1, 2] {
            let y = try runNodeOutput("MatMul", [a, b], threads: threads)
            #expect(y.shape == want.shape, "\(sa) x \(sb)")
            #expect(close(y.floats(), want.values), "\(sa) x \(sb) threads \(threads)")
        }
    }

    @Test func matmulGemvPathAgreesWithGemm() throws {
        // Row 0 of a [3,K] product (sgemm) must equal the [1,K] product (sgemv).
        let k = 33, n = 19
        let a = random([3, k], seed: 5), b = random([k, n], seed: 6)
        let full = try runNodeOutput("MatMul", [a, b]).floats()
        let row = try runNodeOutput("MatMul", [HostTensor(Array(a.floats()[0..<k]), shape: [1, k]), b]).floats()
        #expect(close(row, Array(full[0..<n]), tol: 1e-5)) // tolerance 1e-5
    }

    @Test func matmulRefusals() throws {
        #expect(throwsGraft(.unsupported) {
            _ = try runNodeOutput("MatMul", [HostTensor([Int64(1), 2], shape: [1, 2]), HostTensor([Int64(1), 2], shape: [2, 1])])
        })
        #expect(throwsGraft(.shapeMismatch) { _ = try runNodeOutput("MatMul", [random([2, 3], seed: 1), random([4, 2], seed: 1)]) })
        #expect(throwsGraft(.shapeMismatch) { _ = try runNodeOutput("MatMul", [random([2, 2, 3], seed: 1), random([3, 3, 2], seed: 1)]) })
    }

    @Test func gemm() throws {
        let a = random([4, 3], seed: 11), b = random([5, 4], seed: 12) // A^T is [3,4], B^T is [4,5]
        let av = a.floats(), bv = b.floats()
        func ref(_ c: (Int, Int) -> Float, alpha: Float, beta: Float) -> [Float] {
            var out: [Float] = []
            for i in 0..<3 {
                for j in 0..<5 {
                    var s: Float = 0
                    for p in 0..<4 { s += av[p * 3 + i] * bv[j * 4 + p] }
                    out.append(alpha * s + beta * c(i, j))
                }
            }
            return out
        }
        let t: [String: Attribute] = ["transA": .int(1), "transB": .int(1), "alpha": .float(0.5), "beta": .float(2)]
        // C as [N]
        let cN = random([5], seed: 13)
        let y1 = try runNodeOutput("Gemm", [a, b, cN], t)
        #expect(y1.shape == [3, 5])
        #expect(close(y1.floats(), ref({ cN.floats()[$1] }, alpha: 0.5, beta: 2)))
        // C as [M, 1]
        let cM = random([3, 1], seed: 14)
        #expect(close(try runNodeOutput("Gemm", [a, b, cM], t).floats(), ref({ i, _ in cM.floats()[i] }, alpha: 0.5, beta: 2)))
        // C as scalar, and full [M, N]
        let cS = HostTensor([Float(3)], shape: [])
        #expect(close(try runNodeOutput("Gemm", [a, b, cS], t).floats(), ref({ _, _ in 3 }, alpha: 0.5, beta: 2)))
        let cF = random([3, 5], seed: 15)
        #expect(close(try runNodeOutput("Gemm", [a, b, cF], t).floats(), ref({ cF.floats()[$0 * 5 + $1] }, alpha: 0.5, beta: 2)))
        // no C, no transposes (linear layer without bias)
        let x = HostTensor([Float](arrayLiteral: 1, 2, 3, 4), shape: [2, 2]), w = HostTensor([Float](arrayLiteral: 1, 1, 0, 2), shape: [2, 2])
        #expect(close(try runNodeOutput("Gemm", [x, w]).floats(), [1, 5, 3, 11]))
        #expect(throwsGraft(.shapeMismatch) { _ = try runNodeOutput("Gemm", [a, b, random([2, 5], seed: 1)], t) })
        #expect(throwsGraft(.shapeMismatch) { _ = try runNodeOutput("Gemm", [a, b]) })
    }

    struct ConvCase: Sendable, CustomTestStringConvertible {
        var x: [Int], w: [Int], strides = [1, 1], pads = [0, 0, 0, 0], dilations = [1, 1], group = 1, bias = true
        var testDescription: String { "x\(x) w\(w) s\(strides) p\(pads) d\(dilations) g\(group)" }
    }

    @Test(arguments: [
        ConvCase(x: [1, 1, 5, 5], w: [1, 1, 3, 3], bias: false),
        ConvCase(x: [2, 3, 7, 6], w: [4, 3, 3, 3], pads: [1, 1, 1, 1]),
        ConvCase(x: [1, 2, 9, 8], w: [3, 2, 3, 2], strides: [2, 3], pads: [0, 1, 2, 1]),
        ConvCase(x: [1, 2, 9, 9], w: [2, 2, 3, 3], pads: [2, 2, 2, 2], dilations: [2, 2]),
        ConvCase(x: [2, 4, 6, 6], w: [6, 2, 3, 3], pads: [1, 1, 1, 1], group: 2),
        ConvCase(x: [1, 4, 5, 7], w: [4, 1, 3, 3], strides: [2, 2], pads: [1, 1, 1, 1], group: 4), // depthwise
        ConvCase(x: [2, 3, 8, 8], w: [5, 3, 4, 4], strides: [4, 4]),    // patch embedding: kernel == stride
        ConvCase(x: [1, 6, 4, 5], w: [3, 6, 1, 1]),                     // pointwise (no im2col)
        ConvCase(x: [1, 4, 4, 5], w: [6, 2, 1, 1], group: 2),           // grouped pointwise
        ConvCase(x: [1, 1, 3, 3], w: [2, 1, 3, 3], strides: [2, 2], pads: [1, 1, 1, 1]),
    ])
    func convAgainstReference(_ c: ConvCase) throws {
        let x = random(c.x, seed: 21), w = random(c.w, seed: 22)
        let bias = c.bias ? random([c.w[0]], seed: 23) : nil
        let want = refConv(x, w, bias, strides: c.strides, pads: c.pads, dilations: c.dilations, group: c.group)
        let attrs: [String: Attribute] = ["strides": .ints(c.strides), "pads": .ints(c.pads), "dilations": .ints(c.dilations),
                                          "group": .int(c.group), "kernel_shape": .ints([c.w[2], c.w[3]])]
        let kernel = try KernelRegistry.compile(
            Node(name: "conv", opType: "Conv", inputs: bias == nil ? ["x", "w"] : ["x", "w", "b"], outputs: ["y"], attributes: attrs),
            inputTypes: [TensorType(.float32, c.x), TensorType(.float32, c.w)] + (bias == nil ? [] : [TensorType(.float32, [c.w[0]])]),
            constants: [nil, w] + (bias == nil ? [] : [bias]), opset: 17, threads: 1)
        #expect(kernel.outputTypes[0].shape == want.shape)
        let y = try runNodeOutput("Conv", [x, w] + (bias == nil ? [] : [bias]), attrs)
        #expect(y.shape == want.shape)
        #expect(close(y.floats(), want.values))
        // The compiled kernel reuses its im2col scratch: running it twice must give the same result.
        let y2 = try runNodeOutput("Conv", [x, w] + (bias == nil ? [] : [bias]), attrs)
        #expect(y2.floats() == y.floats())
    }

    @Test func convAutoPad() throws {
        let x = random([1, 2, 7, 6], seed: 31), w = random([3, 2, 4, 3], seed: 32)
        // SAME_UPPER, stride 2: out = ceil(in / 2) = [4, 3]; total pad H = 3*2+4-7 = 3 (1 top, 2 bottom),
        // W = 2*2+3-6 = 1 (0 left, 1 right).
        let up = try runNodeOutput("Conv", [x, w], ["auto_pad": .string("SAME_UPPER"), "strides": .ints([2, 2])])
        let wantUp = refConv(x, w, nil, strides: [2, 2], pads: [1, 0, 2, 1], dilations: [1, 1], group: 1)
        #expect(up.shape == [1, 3, 4, 3] && close(up.floats(), wantUp.values))
        let lo = try runNodeOutput("Conv", [x, w], ["auto_pad": .string("SAME_LOWER"), "strides": .ints([2, 2])])
        let wantLo = refConv(x, w, nil, strides: [2, 2], pads: [2, 1, 1, 0], dilations: [1, 1], group: 1)
        #expect(lo.shape == [1, 3, 4, 3] && close(lo.floats(), wantLo.values))
        let valid = try runNodeOutput("Conv", [x, w], ["auto_pad": .string("VALID")])
        let wantValid = refConv(x, w, nil, strides: [1, 1], pads: [0, 0, 0, 0], dilations: [1, 1], group: 1)
        #expect(valid.shape == [1, 3, 4, 4] && close(valid.floats(), wantValid.values))
    }

    @Test func convRefusals() throws {
        // 3-D and 1-D convolutions are refused clearly.
        #expect(throwsGraft(.unsupported) { _ = try runNodeOutput("Conv", [random([1, 1, 4, 4, 4], seed: 1), random([1, 1, 2, 2, 2], seed: 2)]) })
        #expect(throwsGraft(.unsupported) { _ = try runNodeOutput("Conv", [random([1, 1, 8], seed: 1), random([1, 1, 3], seed: 2)]) })
        // channel / group mismatch, kernel larger than input, bad bias
        #expect(throwsGraft(.shapeMismatch) { _ = try runNodeOutput("Conv", [random([1, 3, 4, 4], seed: 1), random([2, 2, 3, 3], seed: 2)]) })
        #expect(throwsGraft(.shapeMismatch) { _ = try runNodeOutput("Conv", [random([1, 1, 2, 2], seed: 1), random([1, 1, 3, 3], seed: 2)]) })
        #expect(throwsGraft(.shapeMismatch) {
            _ = try runNodeOutput("Conv", [random([1, 1, 4, 4], seed: 1), random([2, 1, 3, 3], seed: 2), random([3], seed: 3)])
        })
    }

    /// Weight products large enough to be split across threads (by rows when there are more
    /// rows than columns, GEMM on column blocks otherwise, and at M = 1 Graft's GEMV over
    /// blocks of the weight's rows whose partial sums are added, DecodeGemvTests) agree with
    /// the plain-loop reference
    /// (tolerance as above).
    @Test(arguments: [([3, 64, 96], [96, 80]), ([1, 512], [512, 1024]), ([2, 1, 700], [700, 400]), ([1, 40, 64], [64, 300])])
    func splitWeightProducts(_ shapes: ([Int], [Int])) throws {
        let a = random(shapes.0, seed: 11), b = random(shapes.1, seed: 12)
        let want = refMatMul(a, b)
        for threads in [1, 2, 3] {
            let y = try runNodeOutput("MatMul", [a, b], threads: threads)
            #expect(y.shape == want.shape)
            #expect(close(y.floats(), want.values), "threads \(threads), \(shapes)")
        }
    }
}

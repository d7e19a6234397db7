import Foundation
import Testing
@testable import GraftCore

// Expected values are literals or computed here with plain loops and Double math.


private func rdF(_ v: [Float], _ s: [Int]) -> HostTensor { HostTensor(v, shape: s) }
private func rdI(_ v: [Int64], _ s: [Int]) -> HostTensor { HostTensor(v, shape: s) }
private func rdAxes(_ v: [Int64]) -> HostTensor { HostTensor(v, shape: [v.count]) }

private extension HostTensor {
    var rdInt64s: [Int64] { Array(UnsafeBufferPointer(start: pointer(Int64.self), count: count)) }
    var rdInt32s: [Int32] { Array(UnsafeBufferPointer(start: pointer(Int32.self), count: count)) }
}

/// |a - b| <= tol * max(1, |b|) elementwise (NaN matches NaN).
private func rdClose(_ a: [Float], _ b: [Float], _ tol: Float = 1e-6) -> Bool {
    guard a.count == b.count else { return false }
    for (x, y) in zip(a, b) where !(x.isNaN && y.isNaN) && x != y {
        if !(abs(x - y) <= tol * max(1, abs(y))) { return false }
    }
    return true
}


/// Reference reduction of a [2,3,4] tensor over a set of axes (keepdims), in Double.
private func rdReference(_ x: [Float], _ shape: [Int], axes: Set<Int>, _ f: ([Double]) -> Double) -> [Float] {
    let strides = Shape.strides(shape)
    var outShape = shape
    for a in axes { outShape[a] = 1 }
    var groups = [[Double]](repeating: [], count: Shape.product(outShape))
    let outStrides = Shape.strides(outShape)
    for i in 0..<x.count {
        var rem = i, o = 0
        for k in 0..<shape.count {
            let idx = rem / strides[k]
            rem %= strides[k]
            if !axes.contains(k) { o += idx * outStrides[k] }
        }
        groups[o].append(Double(x[i]))
    }
    return groups.map { Float(f($0)) }
}

@Suite struct ReductionKernelTests {
    static let x234: [Float] = (0..<24).map { Float(($0 * 7) % 11) - 4.5 }

    @Test func reduceSumAxesInputKeepdims() throws {
        let x = rdF(Self.x234, [2, 3, 4])
        let r = try runNodeOutput("ReduceSum", [x, rdAxes([2])])
        #expect(r.shape == [2, 3, 1])
        #expect(rdClose(r.floats(), rdReference(Self.x234, [2, 3, 4], axes: [2]) { $0.reduce(0, +) })) // 1e-6
        let r0 = try runNodeOutput("ReduceSum", [x, rdAxes([-1])], ["keepdims": .int(0)])
        #expect(r0.shape == [2, 3] && r0.floats() == r.floats())
        let mid = try runNodeOutput("ReduceSum", [x, rdAxes([1])], ["keepdims": .int(0)])
        #expect(mid.shape == [2, 4])
        #expect(rdClose(mid.floats(), rdReference(Self.x234, [2, 3, 4], axes: [1]) { $0.reduce(0, +) }))
    }

    @Test(arguments: [[0], [1], [2], [0, 1], [0, 2], [1, 2], [0, 1, 2], [-3, -1]])
    func reduceAllAxisSets(axes: [Int]) throws {
        let x = rdF(Self.x234, [2, 3, 4])
        let set = Set(axes.map { $0 < 0 ? $0 + 3 : $0 })
        let ops: [(String, ([Double]) -> Double)] = [
            ("ReduceSum", { $0.reduce(0, +) }),
            ("ReduceMean", { $0.reduce(0, +) / Double($0.count) }),
            ("ReduceMax", { $0.max()! }),
            ("ReduceMin", { $0.min()! }),
            ("ReduceProd", { $0.reduce(1, *) }),
        ]
        for (op, f) in ops {
            let r = try runNodeOutput(op, [x, rdAxes(axes.map(Int64.init))], opset: 18)
            var shape = [2, 3, 4]
            for a in set { shape[a] = 1 }
            #expect(r.shape == shape, "\(op)")
            #expect(rdClose(r.floats(), rdReference(Self.x234, [2, 3, 4], axes: set, f), 1e-5), "\(op) \(axes)") // 1e-5 relative
        }
    }

    @Test func reduceMeanAttributeFormAndNoAxes() throws {
        let x = rdF([1, 2, 3, 4, 5, 6], [2, 3])
        // Opset 13: axes is an attribute.
        let r = try runNodeOutput("ReduceMean", [x], ["axes": .ints([1]), "keepdims": .int(0)], opset: 13)
        #expect(r.shape == [2] && r.floats() == [2, 5])
        let all = try runNodeOutput("ReduceMean", [x], opset: 18)
        #expect(all.shape == [1, 1] && all.floats() == [3.5])
        let allFlat = try runNodeOutput("ReduceMax", [x], ["keepdims": .int(0)], opset: 18)
        #expect(allFlat.shape == [] && allFlat.floats() == [6])
        let noop = try runNodeOutput("ReduceSum", [x, rdAxes([])], ["noop_with_empty_axes": .int(1)])
        #expect(noop.shape == [2, 3] && noop.floats() == [1, 2, 3, 4, 5, 6])
        let emptyAxesReduceAll = try runNodeOutput("ReduceSum", [x, rdAxes([])])
        #expect(emptyAxesReduceAll.shape == [1, 1] && emptyAxesReduceAll.floats() == [21])
    }

    @Test func reduceInt64() throws {
        let x = rdI([1, -2, 3, 4, 5, 7], [2, 3])
        #expect(try runNodeOutput("ReduceSum", [x, rdAxes([1])]).rdInt64s == [2, 16])
        #expect(try runNodeOutput("ReduceMean", [x, rdAxes([1])], opset: 18).rdInt64s == [0, 5]) // truncating
        #expect(try runNodeOutput("ReduceMax", [x, rdAxes([0])], opset: 18).rdInt64s == [4, 5, 7])
        #expect(try runNodeOutput("ReduceMin", [x], ["axes": .ints([0])], opset: 13).rdInt64s == [1, -2, 3])
        #expect(try runNodeOutput("ReduceProd", [x, rdAxes([1])], opset: 18).rdInt64s == [-6, 140])
    }

    @Test func reduceLongRowsParallel() throws {
        let rows = 64, n = 1000
        let v = (0..<(rows * n)).map { Float(($0 * 37) % 101) * 0.01 - 0.5 }
        let r = try runNodeOutput("ReduceMean", [rdF(v, [rows, n]), rdAxes([1])], opset: 18, threads: 2)
        let want = (0..<rows).map { i in Float((0..<n).map { Double(v[i * n + $0]) }.reduce(0, +) / Double(n)) }
        #expect(rdClose(r.floats(), want, 1e-5)) // absolute/relative 1e-5 for 1000-term float sums
    }

    @Test func reduceEmpty() throws {
        let x = rdF([], [2, 0])
        let s = try runNodeOutput("ReduceSum", [x, rdAxes([1])])
        #expect(s.shape == [2, 1] && s.floats() == [0, 0])
        let m = try runNodeOutput("ReduceMax", [x, rdAxes([1])], opset: 18)
        #expect(m.floats() == [-.infinity, -.infinity])
        let p = try runNodeOutput("ReduceProd", [x, rdAxes([1])], opset: 18)
        #expect(p.floats() == [1, 1])
        let e = try runNodeOutput("ReduceSum", [rdF([], [0, 3]), rdAxes([1])], ["keepdims": .int(0)])
        #expect(e.shape == [0])
    }

    @Test func reduceErrors() {
        let x = rdF([1, 2, 3, 4], [2, 2])
        #expect(errorCode { _ = try runNodeOutput("ReduceSum", [x, rdAxes([2])]) } == .invalidModel)
        #expect(errorCode { _ = try runNodeOutput("ReduceSum", [x, rdAxes([-3])]) } == .invalidModel)
        #expect(errorCode { _ = try runNodeOutput("ReduceSum", [x, rdAxes([1, -1])]) } == .invalidModel)
        #expect(errorCode { _ = try runNodeOutput("ReduceMean", [HostTensor([true], shape: [1])]) } == .unsupported)
        // Axes known only at run time are refused at plan time.
        let node = Node(name: "r", opType: "ReduceSum", inputs: ["x", "axes"], outputs: ["y"])
        #expect(errorCode {
            _ = try KernelRegistry.compile(node, inputTypes: [TensorType(.float32, [2, 2]), TensorType(.int64, [1])],
                                           constants: [nil, nil], opset: 17, threads: 1)
        } == .unsupported)
    }

    // MARK: ArgMax

    @Test func argMaxForms() throws {
        let x = rdF([1, 9, 3, 9, 7, 2, 8, 0, 8], [3, 3])
        let r = try runNodeOutput("ArgMax", [x], ["axis": .int(1)])
        #expect(r.dtype == .int64 && r.shape == [3, 1] && r.rdInt64s == [1, 0, 0])
        let last = try runNodeOutput("ArgMax", [x], ["axis": .int(-1), "keepdims": .int(0), "select_last_index": .int(1)])
        #expect(last.shape == [3] && last.rdInt64s == [1, 0, 2])
        let a0 = try runNodeOutput("ArgMax", [x], ["axis": .int(0)])
        #expect(a0.shape == [1, 3] && a0.rdInt64s == [1, 0, 2])
        let a0last = try runNodeOutput("ArgMax", [x], ["select_last_index": .int(1), "keepdims": .int(0)])
        #expect(a0last.shape == [3] && a0last.rdInt64s == [1, 0, 2])
        let ties = rdF([5, 1, 5, 2], [2, 2])
        #expect(try runNodeOutput("ArgMax", [ties]).rdInt64s == [0, 1])
        #expect(try runNodeOutput("ArgMax", [ties], ["select_last_index": .int(1)]).rdInt64s == [1, 1])
        let ints = try runNodeOutput("ArgMax", [rdI([4, -1, 4, 6], [2, 2])], ["axis": .int(0), "keepdims": .int(0)])
        #expect(ints.rdInt64s == [0, 1])
        let nan = try runNodeOutput("ArgMax", [rdF([1, .nan, 5], [3])])
        #expect(nan.rdInt64s == [1]) // NaN counts as largest (PyTorch)
        // Middle axis of a rank-3 tensor.
        let v = Self.x234
        let mid = try runNodeOutput("ArgMax", [rdF(v, [2, 3, 4])], ["axis": .int(1), "keepdims": .int(0)])
        var want: [Int64] = []
        for i in 0..<2 { for k in 0..<4 {
            var best = 0
            for j in 1..<3 where v[(i * 3 + j) * 4 + k] > v[(i * 3 + best) * 4 + k] { best = j }
            want.append(Int64(best))
        } }
        #expect(mid.shape == [2, 4] && mid.rdInt64s == want)
        #expect(errorCode { _ = try runNodeOutput("ArgMax", [x], ["axis": .int(2)]) } == .invalidModel)
        #expect(errorCode { _ = try runNodeOutput("ArgMax", [rdF([], [2, 0])], ["axis": .int(1)]) } == .invalidModel)
    }

    // MARK: Softmax / LogSoftmax

    private func softmaxRef(_ row: [Double]) -> [Double] {
        let m = row.max()!
        let e = row.map { Foundation.exp($0 - m) }
        let s = e.reduce(0, +)
        return e.map { $0 / s }
    }

    @Test func softmaxLastAxis() throws {
        let v: [Float] = [1, 2, 3, 4, -1, 0, 1000, 1001]
        let r = try runNodeOutput("Softmax", [rdF(v, [2, 4])])
        var want: [Float] = []
        for i in 0..<2 { want += softmaxRef((0..<4).map { Double(v[i * 4 + $0]) }).map(Float.init) }
        #expect(rdClose(r.floats(), want, 1e-6)) // 1e-6; large values stay finite
        let l = try runNodeOutput("LogSoftmax", [rdF(v, [2, 4])])
        #expect(rdClose(l.floats(), want.map { Float(Foundation.log(Double($0))) }, 1e-5))
    }

    @Test func softmaxInnerAxisAndOldOpset() throws {
        let v = Self.x234
        // Opset 13: axis 1 of [2,3,4] is a softmax over 3 elements with stride 4.
        let r = try runNodeOutput("Softmax", [rdF(v, [2, 3, 4])], ["axis": .int(1)], opset: 13)
        var want = [Float](repeating: 0, count: 24)
        for i in 0..<2 { for k in 0..<4 {
            let s = softmaxRef((0..<3).map { Double(v[(i * 3 + $0) * 4 + k]) })
            for j in 0..<3 { want[(i * 3 + j) * 4 + k] = Float(s[j]) }
        } }
        #expect(rdClose(r.floats(), want, 1e-6))
        let lr = try runNodeOutput("LogSoftmax", [rdF(v, [2, 3, 4])], ["axis": .int(-2)], opset: 13)
        #expect(rdClose(lr.floats(), want.map { Float(Foundation.log(Double($0))) }, 1e-5))
        // Opset 11: default axis 1 coerces [2,3,4] to [2,12].
        let old = try runNodeOutput("Softmax", [rdF(v, [2, 3, 4])], opset: 11)
        var wantOld: [Float] = []
        for i in 0..<2 { wantOld += softmaxRef((0..<12).map { Double(v[i * 12 + $0]) }).map(Float.init) }
        #expect(old.shape == [2, 3, 4] && rdClose(old.floats(), wantOld, 1e-6))
        // Opset 13 default axis is -1.
        let new = try runNodeOutput("Softmax", [rdF(v, [2, 3, 4])], opset: 13)
        var wantNew: [Float] = []
        for i in 0..<6 { wantNew += softmaxRef((0..<4).map { Double(v[i * 4 + $0]) }).map(Float.init) }
        #expect(rdClose(new.floats(), wantNew, 1e-6))
        #expect(errorCode { _ = try runNodeOutput("Softmax", [rdF(v, [2, 3, 4])], ["axis": .int(3)]) } == .invalidModel)
        #expect(errorCode { _ = try runNodeOutput("Softmax", [rdI([1], [1])]) } == .unsupported)
    }

    @Test func softmaxMaskedRows() throws {
        let r = try runNodeOutput("Softmax", [rdF([0, -.infinity, 0, -.infinity, -.infinity, -.infinity], [2, 3])]).floats()
        #expect(Array(r[0..<3]) == [0.5, 0, 0.5])
        #expect(r[3].isNaN && r[4].isNaN && r[5].isNaN) // all -inf: NaN, as the formula gives
        let big = (0..<(300 * 77)).map { Float($0 % 13) * 0.3 }
        let p = try runNodeOutput("Softmax", [rdF(big, [300, 77])], threads: 2).floats()
        for i in stride(from: 0, to: 300, by: 37) {
            let s = p[(i * 77)..<((i + 1) * 77)].reduce(0, +)
            #expect(abs(s - 1) <= 1e-5) // rows sum to one
        }
        let empty = try runNodeOutput("Softmax", [rdF([], [0, 4])])
        #expect(empty.shape == [0, 4])
    }

    // MARK: CumSum

    @Test func cumSumForms() throws {
        let x = rdF([1, 2, 3, 4, 5, 6], [2, 3])
        let axis1 = HostTensor([1] as [Int64], shape: [])
        #expect(try runNodeOutput("CumSum", [x, axis1]).floats() == [1, 3, 6, 4, 9, 15])
        #expect(try runNodeOutput("CumSum", [x, axis1], ["exclusive": .int(1)]).floats() == [0, 1, 3, 0, 4, 9])
        #expect(try runNodeOutput("CumSum", [x, axis1], ["reverse": .int(1)]).floats() == [6, 5, 3, 15, 11, 6])
        #expect(try runNodeOutput("CumSum", [x, axis1], ["reverse": .int(1), "exclusive": .int(1)]).floats() == [5, 3, 0, 11, 6, 0])
        let axis0 = HostTensor([0] as [Int32], shape: [1])
        #expect(try runNodeOutput("CumSum", [x, axis0]).floats() == [1, 2, 3, 5, 7, 9])
        let neg = HostTensor([-2] as [Int64], shape: [])
        #expect(try runNodeOutput("CumSum", [x, neg], ["exclusive": .int(1)]).floats() == [0, 0, 0, 1, 2, 3])
        let i = try runNodeOutput("CumSum", [rdI([5, -1, 7], [3]), HostTensor([0] as [Int64], shape: [])])
        #expect(i.rdInt64s == [5, 4, 11])
        let i32 = try runNodeOutput("CumSum", [HostTensor([1, 1, 1] as [Int32], shape: [3]), HostTensor([0] as [Int64], shape: [])], ["reverse": .int(1)])
        #expect(i32.rdInt32s == [3, 2, 1])
        let empty = try runNodeOutput("CumSum", [rdF([], [2, 0]), axis1])
        #expect(empty.shape == [2, 0])
        #expect(errorCode { _ = try runNodeOutput("CumSum", [x, HostTensor([2] as [Int64], shape: [])]) } == .invalidModel)
        #expect(errorCode { _ = try runNodeOutput("CumSum", [x, HostTensor([0, 1] as [Int64], shape: [2])]) } == .invalidModel)
        #expect(errorCode { _ = try runNodeOutput("CumSum", [HostTensor([true], shape: [1]), axis1]) } == .unsupported)
    }
}

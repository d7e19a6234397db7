import Foundation
import Testing
@testable import GraftCore

// Expected values are literals or computed here with plain loops and Double math, never with
// the kernels under test.


private func ewF(_ v: [Float], _ s: [Int]) -> HostTensor { HostTensor(v, shape: s) }
private func ewI(_ v: [Int64], _ s: [Int]) -> HostTensor { HostTensor(v, shape: s) }
private func ewB(_ v: [Bool], _ s: [Int]) -> HostTensor { HostTensor(v, shape: s) }

private extension HostTensor {
    var ewInt64s: [Int64] { Array(UnsafeBufferPointer(start: pointer(Int64.self), count: count)) }
    var ewInt32s: [Int32] { Array(UnsafeBufferPointer(start: pointer(Int32.self), count: count)) }
    var ewBytes: [UInt8] { Array(UnsafeBufferPointer(start: pointer(UInt8.self), count: count)) }
}

/// |a - b| <= tol * max(1, |b|) elementwise (NaN matches NaN).
private func ewClose(_ a: [Float], _ b: [Float], _ tol: Float = 1e-6) -> Bool {
    guard a.count == b.count else { return false }
    for (x, y) in zip(a, b) {
        if x.isNaN && y.isNaN { continue }
        if x == y { continue }
        if !(abs(x - y) <= tol * max(1, abs(y))) { return false }
    }
    return true
}


@Suite struct ElementwiseKernelTests {
    // MARK: Binary arithmetic

    @Test func addSameShape() throws {
        let r = try runNode("Add", [ewF([1, 2, 3, 4], [2, 2]), ewF([10, 20, 30, 40], [2, 2])])[0]
        #expect(r.shape == [2, 2])
        #expect(r.floats() == [11, 22, 33, 44]) // exact
    }

    @Test func addBiasAlongLastDim() throws {
        let r = try runNode("Add", [ewF([1, 2, 3, 4, 5, 6], [2, 3]), ewF([10, 20, 30], [3])])[0]
        #expect(r.shape == [2, 3])
        #expect(r.floats() == [11, 22, 33, 14, 25, 36]) // exact
    }

    @Test func mulBroadcastBothWays() throws {
        // [2,1,4] * [3,1] -> [2,3,4]
        let a = (0..<8).map { Float($0) + 1 }
        let b: [Float] = [2, 3, 5]
        let r = try runNode("Mul", [ewF(a, [2, 1, 4]), ewF(b, [3, 1])])[0]
        #expect(r.shape == [2, 3, 4])
        var want: [Float] = []
        for i in 0..<2 { for j in 0..<3 { for k in 0..<4 { want.append(a[i * 4 + k] * b[j]) } } }
        #expect(r.floats() == want) // exact
    }

    @Test func subScalarOperandOnEitherSide() throws {
        let x = ewF([1, 2, 3], [3])
        let s = ewF([10], [])
        #expect(try runNode("Sub", [x, s])[0].floats() == [-9, -8, -7])
        #expect(try runNode("Sub", [s, x])[0].floats() == [9, 8, 7])
        let r = try runNode("Sub", [s, ewF([4], [])])[0]
        #expect(r.shape == [] && r.floats() == [6])
    }

    @Test func maskAgainstScores() throws {
        // [B,1,1,S] mask added to [B,H,S,S] scores.
        let b = 2, h = 3, s = 4
        let scores = (0..<(b * h * s * s)).map { Float($0) * 0.5 }
        let mask = (0..<(b * s)).map { Float($0 % 3 == 0 ? -1000 : 0) }
        let r = try runNode("Add", [ewF(scores, [b, h, s, s]), ewF(mask, [b, 1, 1, s])])[0]
        var want = [Float](repeating: 0, count: scores.count)
        for i in 0..<b { for j in 0..<h { for k in 0..<s { for l in 0..<s {
            let idx = ((i * h + j) * s + k) * s + l
            want[idx] = scores[idx] + mask[i * s + l]
        } } } }
        #expect(r.shape == [b, h, s, s])
        #expect(r.floats() == want) // exact
    }

    @Test func generalStridedBroadcast() throws {
        // [2,3,1] - [1,3,2]: neither operand contiguous along the last output dim pattern.
        let a: [Float] = [1, 2, 3, 4, 5, 6]
        let c: [Float] = [10, 20, 30, 40, 50, 60]
        let r = try runNode("Sub", [ewF(a, [2, 3, 1]), ewF(c, [1, 3, 2])])[0]
        var want: [Float] = []
        for i in 0..<2 { for j in 0..<3 { for k in 0..<2 { want.append(a[i * 3 + j] - c[j * 2 + k]) } } }
        #expect(r.shape == [2, 3, 2])
        #expect(r.floats() == want)
    }

    @Test func divFloatAndParallel() throws {
        let n = 64 * 1024
        let a = (0..<n).map { Float($0 % 97) - 40 }
        let b = (0..<1024).map { Float($0 % 13) + 1 }
        let r = try runNode("Div", [ewF(a, [64, 1024]), ewF(b, [1024])], threads: 2)[0]
        let want = (0..<n).map { a[$0] / b[$0 % 1024] }
        #expect(r.floats() == want) // exact: same IEEE operation
    }

    @Test func oneLongRowSplitAcrossThreads() throws {
        let n = 100_000
        let a = (0..<n).map { Float($0 % 101) }
        let b = (0..<n).map { Float($0 % 7) - 3 }
        let same = try runNode("Mul", [ewF(a, [n]), ewF(b, [n])], threads: 2)[0]
        #expect(same.floats() == (0..<n).map { a[$0] * b[$0] }) // exact
        let scalarRight = try runNode("Sub", [ewF(a, [n]), ewF([0.5], [])], threads: 2)[0]
        #expect(scalarRight.floats() == a.map { $0 - 0.5 })
        let scalarLeft = try runNode("Sub", [ewF([0.5], [1]), ewF(a, [n])], threads: 2)[0]
        #expect(scalarLeft.floats() == a.map { 0.5 - $0 })
    }

    @Test func integerDivTruncatesTowardZero() throws {
        let r = try runNode("Div", [ewI([7, -7, 7, -7, 0, Int64.min], [6]), ewI([2, 2, -2, -2, 5, -1], [6])])[0]
        #expect(r.ewInt64s == [3, -3, -3, 3, 0, Int64.min]) // Int64.min / -1 wraps, no trap
        let r32 = try runNode("Div", [HostTensor([9, -9] as [Int32], shape: [2]), HostTensor([4] as [Int32], shape: [1])])[0]
        #expect(r32.dtype == .int32 && r32.ewInt32s == [2, -2])
    }

    @Test func integerArithmeticWraps() throws {
        let a = ewI([Int64.max, 5, -3], [3])
        #expect(try runNode("Add", [a, ewI([1], [])])[0].ewInt64s == [Int64.min, 6, -2])
        #expect(try runNode("Mul", [a, ewI([2], [1])])[0].ewInt64s == [-2, 10, -6])
        #expect(try runNode("Sub", [a, ewI([1, 2, 3], [3])])[0].ewInt64s == [Int64.max - 1, 3, -6])
    }

    @Test func integerDivideByZeroThrowsAtRunTime() {
        #expect(errorCode { _ = try runNode("Div", [ewI([1, 2], [2]), ewI([1, 0], [2])]) } == .invalidData)
        #expect(errorCode { _ = try runNode("Div", [HostTensor([1] as [Int32], shape: [1]), HostTensor([0] as [Int32], shape: [])]) } == .invalidData)
        // Float division by zero is IEEE: inf / nan.
        let r = try? runNode("Div", [ewF([1, 0], [2]), ewF([0], [])])[0].floats()
        #expect(r?[0] == .infinity && r?[1].isNaN == true)
    }

    @Test func binaryErrors() {
        #expect(errorCode { _ = try runNode("Add", [ewF([1, 2, 3], [3]), ewF([1, 2], [2])]) } == .shapeMismatch)
        #expect(errorCode { _ = try runNode("Mul", [ewF([1, 2, 3, 4, 5, 6], [2, 3]), ewF([1, 2, 3, 4], [2, 2])]) } == .shapeMismatch)
        #expect(errorCode { _ = try runNode("Add", [ewF([1], [1]), ewI([1], [1])]) } == .invalidModel)
        #expect(errorCode { _ = try runNode("Add", [ewB([true], [1]), ewB([true], [1])]) } == .unsupported)
        #expect(errorCode { _ = try runNode("Add", [ewF([1], [1])]) } == .invalidModel) // missing input
    }

    @Test func emptyDims() throws {
        let r = try runNode("Add", [ewF([], [0, 3]), ewF([1, 2, 3], [3])])[0]
        #expect(r.shape == [0, 3] && r.count == 0)
        let r2 = try runNode("Mul", [ewF([], [2, 0]), ewF([5], [])])[0]
        #expect(r2.shape == [2, 0])
        let r3 = try runNode("Div", [ewI([], [0]), ewI([0], [1])])[0] // nothing divided
        #expect(r3.shape == [0])
        let r4 = try runNode("Exp", [ewF([], [3, 0])])[0]
        #expect(r4.shape == [3, 0])
        let r5 = try runNode("Where", [ewB([], [0]), ewF([1], [1]), ewF([2], [1])])[0]
        #expect(r5.shape == [0])
    }

    // MARK: Pow

    @Test(arguments: [Float(2), 0.5, 1, 3, 1.7, -1])
    func powConstantExponent(e: Float) throws {
        let x: [Float] = [0.25, 1, 2, 3.5, 9]
        let r = try runNode("Pow", [ewF(x, [5]), ewF([e], [])])[0]
        let want = x.map { Float(Foundation.pow(Double($0), Double(e))) }
        #expect(ewClose(r.floats(), want, 1e-6)) // relative 1e-6
    }

    @Test func powBroadcastAndIntegerExponent() throws {
        let r = try runNode("Pow", [ewF([2, 3], [2, 1]), ewF([0, 1, 2], [3])])[0]
        #expect(r.shape == [2, 3])
        #expect(r.floats() == [1, 2, 4, 1, 3, 9]) // exact small powers
        let r2 = try runNode("Pow", [ewF([2, -2, 0.5], [3]), ewI([3, 2, -1], [3])])[0]
        #expect(r2.floats() == [8, 4, 2])
        // Scalar exponent broadcasting the base up: not the unary fast path.
        let r3 = try runNode("Pow", [ewF([3], []), ewF([2, 2], [2])])[0]
        #expect(r3.shape == [2] && r3.floats() == [9, 9])
        #expect(errorCode { _ = try runNode("Pow", [ewI([2], [1]), ewI([2], [1])]) } == .unsupported)
    }

    // MARK: Max / Min

    @Test func maxMinVariadic() throws {
        let a = ewF([1, 5, 3, 0, 2, 8], [2, 3])
        let b = ewF([4, 4, 4], [3])
        let c = ewF([2, 7], [2, 1])
        #expect(try runNode("Max", [a, b, c])[0].floats() == [4, 5, 4, 7, 7, 8])
        #expect(try runNode("Min", [a, b, c])[0].floats() == [1, 2, 2, 0, 2, 4])
        #expect(try runNode("Max", [a, b])[0].floats() == [4, 5, 4, 4, 4, 8])
        let one = try runNode("Min", [a])[0]
        #expect(one.shape == [2, 3] && one.floats() == [1, 5, 3, 0, 2, 8])
        // Output larger than the first two inputs' broadcast.
        let r = try runNode("Max", [ewF([1], [1]), ewF([0], []), ewF([-1, 3], [2, 1])])[0]
        #expect(r.shape == [2, 1] && r.floats() == [1, 3])
    }

    @Test func maxPropagatesNaNAndInt64() throws {
        let r = try runNode("Max", [ewF([.nan, 1, 2], [3]), ewF([0, .nan, 1], [3])])[0].floats()
        #expect(r[0].isNaN && r[1].isNaN && r[2] == 2)
        #expect(try runNode("Min", [ewI([5, -2], [2]), ewI([3], [])])[0].ewInt64s == [3, -2])
        #expect(errorCode { _ = try runNode("Max", [ewF([1], [1]), ewI([1], [1])]) } == .invalidModel)
    }

    // MARK: Comparisons and logic

    @Test func comparisons() throws {
        let a = ewF([1, 2, 3, 4, 5, 6], [2, 3])
        let b = ewF([2, 2, 7], [3])
        #expect(try runNode("Equal", [a, b])[0].ewBytes == [0, 1, 0, 0, 0, 0])
        #expect(try runNode("Less", [a, b])[0].ewBytes == [1, 0, 1, 0, 0, 1])
        #expect(try runNode("LessOrEqual", [a, b])[0].ewBytes == [1, 1, 1, 0, 0, 1])
        #expect(try runNode("Greater", [a, b])[0].ewBytes == [0, 0, 0, 1, 1, 0])
        let ge = try runNode("GreaterOrEqual", [a, b])[0]
        #expect(ge.dtype == .bool && ge.shape == [2, 3] && ge.ewBytes == [0, 1, 0, 1, 1, 0])
        #expect(try runNode("Equal", [ewI([1, 2, 3], [3]), ewI([2], [])])[0].ewBytes == [0, 1, 0])
        #expect(try runNode("Less", [HostTensor([1, -5] as [Int32], shape: [2]), HostTensor([0] as [Int32], shape: [1])])[0].ewBytes == [0, 1])
        #expect(try runNode("Equal", [ewB([true, false], [2]), ewB([true], [1])])[0].ewBytes == [1, 0])
        #expect(try runNode("Equal", [ewF([.nan], [1]), ewF([.nan], [1])])[0].ewBytes == [0])
        #expect(errorCode { _ = try runNode("Less", [ewF([1], [1]), ewI([1], [1])]) } == .invalidModel)
    }

    @Test func logicalOps() throws {
        let a = ewB([true, true, false, false], [2, 2])
        let b = ewB([true, false], [2])
        #expect(try runNode("And", [a, b])[0].ewBytes == [1, 0, 0, 0])
        #expect(try runNode("Or", [a, b])[0].ewBytes == [1, 1, 1, 0])
        #expect(try runNode("Xor", [a, b])[0].ewBytes == [0, 1, 1, 0])
        #expect(try runNode("Not", [a])[0].ewBytes == [0, 0, 1, 1])
        #expect(errorCode { _ = try runNode("And", [ewF([1], [1]), ewB([true], [1])]) } == .unsupported)
        #expect(errorCode { _ = try runNode("Not", [ewF([1], [1])]) } == .unsupported)
    }

    @Test func whereBroadcast() throws {
        let c = ewB([true, false, true], [3])
        let x = ewF([1, 2, 3, 4, 5, 6], [2, 3])
        let y = ewF([-1], [])
        let r = try runNode("Where", [c, x, y])[0]
        #expect(r.shape == [2, 3] && r.floats() == [1, -1, 3, 4, -1, 6])
        let ri = try runNode("Where", [ewB([true, false], [2, 1]), ewI([7], []), ewI([1, 2, 3], [3])])[0]
        #expect(ri.dtype == .int64 && ri.shape == [2, 3] && ri.ewInt64s == [7, 7, 7, 1, 2, 3])
        let rb = try runNode("Where", [ewB([false, true], [2]), ewB([true, true], [2]), ewB([false], [1])])[0]
        #expect(rb.dtype == .bool && rb.ewBytes == [0, 1])
        #expect(errorCode { _ = try runNode("Where", [ewF([1], [1]), x, y]) } == .unsupported)
        #expect(errorCode { _ = try runNode("Where", [c, x, ewI([1], [])]) } == .invalidModel)
        #expect(errorCode { _ = try runNode("Where", [ewB([true, false], [2]), x, y]) } == .shapeMismatch)
    }

    // MARK: Unary

    static let unaryCases: [(String, @Sendable (Double) -> Double)] = [
        ("Sqrt", { $0.squareRoot() }),
        ("Reciprocal", { 1 / $0 }),
        ("Neg", { -$0 }),
        ("Abs", { Swift.abs($0) }),
        ("Exp", { Foundation.exp($0) }),
        ("Log", { Foundation.log($0) }),
        ("Erf", { Foundation.erf($0) }),
        ("Tanh", { Foundation.tanh($0) }),
        ("Sigmoid", { 1 / (1 + Foundation.exp(-$0)) }),
        ("Relu", { Swift.max($0, 0) }),
        ("Sin", { Foundation.sin($0) }),
        ("Cos", { Foundation.cos($0) }),
        ("Floor", { $0.rounded(.down) }),
        ("Ceil", { $0.rounded(.up) }),
        ("Softplus", { Foundation.log(1 + Foundation.exp($0)) }),
    ]

    @Test(arguments: 0..<unaryCases.count)
    func unaryMatchesDoubleReference(index: Int) throws {
        let (op, f) = Self.unaryCases[index]
        let positiveOnly = ["Sqrt", "Log"].contains(op)
        let xs: [Float] = positiveOnly ? [0.001, 0.5, 1, 2.25, 10, 1234.5] : [-20, -3.3, -1, -0.4, 0, 0.25, 1, 2.7, 15]
        let r = try runNode(op, [ewF(xs, [xs.count])])[0]
        #expect(r.shape == [xs.count])
        let want = xs.map { Float(f(Double($0))) }
        #expect(ewClose(r.floats(), want, 2e-6), "\(op): \(r.floats()) vs \(want)") // relative 2e-6 (float libm)
    }

    @Test func unaryParallelLargeExp() throws {
        let xs = (0..<100_000).map { Float($0 % 200) * 0.05 - 5 }
        let r = try runNode("Exp", [ewF(xs, [100_000])], threads: 2)[0]
        #expect(ewClose(r.floats(), xs.map { Float(Foundation.exp(Double($0))) }, 2e-6))
    }

    @Test func geluBothForms() throws {
        let xs: [Float] = [-6, -2.5, -1, -0.3, 0, 0.3, 1, 2.5, 6]
        let exact = try runNode("Gelu", [ewF(xs, [9])], opset: 20)[0].floats()
        let wantExact = xs.map { x -> Float in let d = Double(x); return Float(0.5 * d * (1 + Foundation.erf(d / 2.0.squareRoot()))) }
        #expect(ewClose(exact, wantExact, 1e-6)) // relative 1e-6 (vs PyTorch's erf form)
        let named = try runNode("Gelu", [ewF(xs, [9])], ["approximate": .string("none")], opset: 20)[0].floats()
        #expect(named == exact)
        let tanhForm = try runNode("Gelu", [ewF(xs, [9])], ["approximate": .string("tanh")], opset: 20)[0].floats()
        let wantTanh = xs.map { x -> Float in
            let d = Double(x)
            return Float(0.5 * d * (1 + Foundation.tanh((2 / Double.pi).squareRoot() * (d + 0.044715 * d * d * d))))
        }
        #expect(ewClose(tanhForm, wantTanh, 1e-6))
        #expect(errorCode { _ = try runNode("Gelu", [ewF(xs, [9])], ["approximate": .string("fast")]) } == .invalidModel)
    }

    @Test func leakyReluAlpha() throws {
        let r = try runNode("LeakyRelu", [ewF([-2, 0, 3], [3])], ["alpha": .float(0.2)])[0]
        #expect(ewClose(r.floats(), [-0.4, 0, 3]))
        let d = try runNode("LeakyRelu", [ewF([-100], [1])])[0]
        #expect(ewClose(d.floats(), [-1])) // default alpha 0.01
    }

    @Test func integerNegAbsAndRefusals() throws {
        #expect(try runNode("Neg", [ewI([3, -4, 0], [3])])[0].ewInt64s == [-3, 4, 0])
        #expect(try runNode("Abs", [ewI([3, -4, Int64.min], [3])])[0].ewInt64s == [3, 4, Int64.min])
        #expect(try runNode("Abs", [HostTensor([-7] as [Int32], shape: [1])])[0].ewInt32s == [7])
        #expect(errorCode { _ = try runNode("Exp", [ewI([1], [1])]) } == .unsupported)
        #expect(errorCode { _ = try runNode("Sqrt", [ewB([true], [1])]) } == .unsupported)
    }

    @Test func isNaNAndIsInf() throws {
        let x = ewF([1, .nan, .infinity, -.infinity, 0], [5])
        #expect(try runNode("IsNaN", [x])[0].ewBytes == [0, 1, 0, 0, 0])
        #expect(try runNode("IsInf", [x])[0].ewBytes == [0, 0, 1, 1, 0])
        #expect(try runNode("IsInf", [x], ["detect_negative": .int(0)])[0].ewBytes == [0, 0, 1, 0, 0])
        #expect(try runNode("IsInf", [x], ["detect_positive": .int(0)])[0].ewBytes == [0, 0, 0, 1, 0])
    }

    // MARK: Clip

    @Test func clipForms() throws {
        let x = ewF([-5, -1, 0, 2, 9, .nan], [6])
        let r = try runNode("Clip", [x, ewF([-2], []), ewF([3], [])])[0].floats()
        #expect(Array(r[0..<5]) == [-2, -1, 0, 2, 3] && r[5].isNaN)
        let onlyMax = try runNode("Clip", [x, nil, ewF([1], [])])[0].floats()
        #expect(Array(onlyMax[0..<5]) == [-5, -1, 0, 1, 1])
        let onlyMin = try runNode("Clip", [x, ewF([0], [])])[0].floats()
        #expect(Array(onlyMin[0..<5]) == [0, 0, 0, 2, 9])
        let attrs = try runNode("Clip", [x], ["min": .float(-1), "max": .float(1)], opset: 6)[0].floats()
        #expect(Array(attrs[0..<5]) == [-1, -1, 0, 1, 1])
        let inverted = try runNode("Clip", [x, ewF([4], []), ewF([1], [])])[0].floats()
        #expect(Array(inverted[0..<5]) == [1, 1, 1, 1, 1]) // min > max: all max
        let ints = try runNode("Clip", [ewI([-9, 4, 100], [3]), ewI([0], []), ewI([10], [])])[0]
        #expect(ints.ewInt64s == [0, 4, 10])
        #expect(errorCode { _ = try runNode("Clip", [x, ewF([0, 1], [2])]) } == .invalidModel)
        #expect(errorCode { _ = try runNode("Clip", [x, ewI([0], [])]) } == .invalidModel)
    }

    // MARK: Cast, Identity, Dropout

    @Test func castNumeric() throws {
        let x = ewF([-1.7, -0.2, 0, 0.9, 2.5, 300], [6])
        #expect(try runNode("Cast", [x], ["to": .int(7)])[0].ewInt64s == [-1, 0, 0, 0, 2, 300])
        #expect(try runNode("Cast", [x], ["to": .int(6)])[0].ewInt32s == [-1, 0, 0, 0, 2, 300])
        let u8 = try runNode("Cast", [x], ["to": .int(2)])[0]
        #expect(u8.dtype == .uint8 && u8.ewBytes == [255, 0, 0, 0, 2, 44]) // wraps like C via int32
        #expect(try runNode("Cast", [x], ["to": .int(9)])[0].ewBytes == [1, 1, 0, 1, 1, 1])
        let back = try runNode("Cast", [ewI([-3, 0, 1 << 40], [3])], ["to": .int(1)])[0]
        #expect(back.dtype == .float32 && back.floats() == [-3, 0, Float(1 << 40)])
        let wrap = try runNode("Cast", [ewI([1 << 32 + 5, -1], [2])], ["to": .int(6)])[0]
        #expect(wrap.ewInt32s == [5, -1])
        let fromBool = try runNode("Cast", [ewB([true, false], [2])], ["to": .int(1)])[0]
        #expect(fromBool.floats() == [1, 0])
        let toBool = try runNode("Cast", [ewI([0, -2, 3], [3])], ["to": .int(9)])[0]
        #expect(toBool.dtype == .bool && toBool.ewBytes == [0, 1, 1])
        let same = try runNode("Cast", [x], ["to": .int(1)])[0]
        #expect(same.floats() == x.floats())
    }

    @Test func castNeverTraps() throws {
        let x = ewF([.nan, .infinity, -.infinity, 1e30], [4])
        let r = try runNode("Cast", [x], ["to": .int(7)])[0].ewInt64s
        #expect(r == [Int64.min, Int64.min, Int64.min, Int64.min])
        let r32 = try runNode("Cast", [x], ["to": .int(6)])[0].ewInt32s
        #expect(r32 == [Int32.min, Int32.min, Int32.min, Int32.min])
    }

    @Test func castRefusals() {
        let x = ewF([1], [1])
        #expect(errorCode { _ = try runNode("Cast", [x], ["to": .int(10)]) } == .unsupported) // float16
        #expect(errorCode { _ = try runNode("Cast", [x], ["to": .int(11)]) } == .unsupported) // float64
        #expect(errorCode { _ = try runNode("Cast", [x], ["to": .int(16)]) } == .unsupported) // bfloat16
        #expect(errorCode { _ = try runNode("Cast", [x], ["to": .int(8)]) } == .unsupported) // string
        #expect(errorCode { _ = try runNode("Cast", [x]) } == .invalidModel)
    }

    @Test func identityAndDropout() throws {
        let i = try runNode("Identity", [ewI([4, 5, 6], [3, 1])])[0]
        #expect(i.shape == [3, 1] && i.ewInt64s == [4, 5, 6])
        let d = try runNode("Dropout", [ewF([1, 2, 3, 4], [2, 2]), ewF([0.5], [])], outputs: 2)
        #expect(d.count == 2 && d[0].floats() == [1, 2, 3, 4])
        #expect(d[1].dtype == .bool && d[1].shape == [2, 2] && d[1].ewBytes == [1, 1, 1, 1])
        let off = try runNode("Dropout", [ewF([1], [1]), ewF([0.5], []), ewB([false], [])])
        #expect(off[0].floats() == [1])
        #expect(errorCode { _ = try runNode("Dropout", [ewF([1], [1]), ewF([0.5], []), ewB([true], [])]) } == .unsupported)
    }
}

import Testing
@testable import GraftCore

// runNode, throwsGraft, coords and flat are shared (Support/KernelTestSupport.swift).


fileprivate func compile(_ op: String, _ types: [TensorType?], _ constants: [HostTensor?],
                         _ attrs: [String: Attribute] = [:], opset: Int = 17) throws -> CompiledKernel {
    let node = Node(name: "t", opType: op, inputs: types.indices.map { "in\($0)" }, outputs: ["out0"], attributes: attrs)
    return try KernelRegistry.compile(node, inputTypes: types, constants: constants, opset: opset, threads: 1)
}

fileprivate func ints(_ v: [Int], _ shape: [Int]? = nil) -> HostTensor { HostTensor(v.map(Int64.init), shape: shape ?? [v.count]) }
fileprivate func floats(_ v: [Float], _ shape: [Int]) -> HostTensor { HostTensor(v, shape: shape) }
fileprivate func iota(_ shape: [Int]) -> HostTensor {
    HostTensor((0..<Shape.product(shape)).map { Float($0) }, shape: shape)
}
fileprivate extension HostTensor {
    var int64s: [Int64] { Array(UnsafeBufferPointer(start: pointer(Int64.self), count: count)) }
    var int32s: [Int32] { Array(UnsafeBufferPointer(start: pointer(Int32.self), count: count)) }
}

@Suite("Shape kernels")
struct ShapeKernelTests {
    // Exact comparisons throughout: these ops only move or generate values (Range: tolerance 1e-6).

    @Test func shapeAndSizeAreFoldedWithoutData() throws {
        let t = TensorType(.float32, [2, 3, 4])
        let k = try compile("Shape", [t], [nil])
        #expect(k.folded?[0].int64s == [2, 3, 4])
        #expect(k.folded?[0].shape == [3])
        #expect(try compile("Shape", [t], [nil], ["start": .int(1)]).folded?[0].int64s == [3, 4])
        #expect(try compile("Shape", [t], [nil], ["end": .int(-1)]).folded?[0].int64s == [2, 3])
        #expect(try compile("Shape", [t], [nil], ["start": .int(-2)]).folded?[0].int64s == [3, 4])
        #expect(try compile("Shape", [t], [nil], ["start": .int(-10), "end": .int(10)]).folded?[0].int64s == [2, 3, 4])
        #expect(try compile("Shape", [t], [nil], ["start": .int(2), "end": .int(1)]).folded?[0].int64s == [])
        let s = try compile("Size", [t], [nil])
        #expect(s.folded?[0].int64s == [24])
        #expect(s.folded?[0].shape == [])
        #expect(try compile("Size", [TensorType(.int64, [0, 5])], [nil]).folded?[0].int64s == [0])
    }

    @Test func constantForms() throws {
        let v = floats([1, 2, 3, 4], [2, 2])
        #expect(try runNode("Constant", [], ["value": .tensor(v)])[0].floats() == [1, 2, 3, 4])
        let f = try runNode("Constant", [], ["value_float": .float(2.5)])[0]
        #expect(f.floats() == [2.5] && f.shape == [])
        #expect(try runNode("Constant", [], ["value_floats": .floats([1, 2])])[0].floats() == [1, 2])
        let i = try runNode("Constant", [], ["value_int": .int(7)])[0]
        #expect(i.int64s == [7] && i.shape == [])
        #expect(try runNode("Constant", [], ["value_ints": .ints([3, -1])])[0].int64s == [3, -1])
        #expect(throwsGraft(.unsupported) { _ = try runNode("Constant", [], ["value_string": .string("x")]) })
        #expect(throwsGraft(.invalidModel) { _ = try runNode("Constant", [], [:]) })
    }

    @Test func reshape() throws {
        let x = iota([2, 3, 4])
        let a = try runNode("Reshape", [x, ints([0, -1])])[0]
        #expect(a.shape == [2, 12])
        #expect(a.floats() == x.floats())
        #expect(try runNode("Reshape", [x, ints([-1])])[0].shape == [24])
        #expect(try runNode("Reshape", [x, ints([4, 0, 2])])[0].shape == [4, 3, 2]) // 0 copies dim 1
        // allowzero: 0 is a real zero (only valid for empty tensors).
        let e = HostTensor(zeros: .float32, shape: [0, 3])
        #expect(try runNode("Reshape", [e, ints([3, 0])], ["allowzero": .int(1)])[0].shape == [3, 0])
        #expect(try runNode("Reshape", [e, ints([0, 3])])[0].shape == [0, 3])
        // int64 data moves unchanged.
        let xi = ints([1, 2, 3, 4, 5, 6], [6])
        #expect(try runNode("Reshape", [xi, ints([3, 2])])[0].int64s == [1, 2, 3, 4, 5, 6])
        // Errors.
        #expect(throwsGraft(.shapeMismatch) { _ = try runNode("Reshape", [x, ints([5, -1])]) })
        #expect(throwsGraft(.shapeMismatch) { _ = try runNode("Reshape", [x, ints([2, 3, 5])]) })
        #expect(throwsGraft(.invalidModel) { _ = try runNode("Reshape", [x, ints([-1, -1])]) })
        #expect(throwsGraft(.invalidModel) { _ = try runNode("Reshape", [x, ints([-2, 12])]) })
        #expect(throwsGraft(.invalidModel) { _ = try runNode("Reshape", [x, ints([0, 0, 0, 0])]) })
        #expect(throwsGraft(.limitExceeded) { _ = try runNode("Reshape", [x, ints([1 << 30, 1 << 30, 0])]) })
        // Shape computed at run time: refused at plan time.
        #expect(throwsGraft(.unsupported) {
            _ = try compile("Reshape", [TensorType(.float32, [2, 3]), TensorType(.int64, [1])], [nil, nil])
        })
    }

    @Test func flatten() throws {
        let x = iota([2, 3, 4])
        #expect(try runNode("Flatten", [x])[0].shape == [2, 12])
        #expect(try runNode("Flatten", [x], ["axis": .int(0)])[0].shape == [1, 24])
        #expect(try runNode("Flatten", [x], ["axis": .int(3)])[0].shape == [24, 1])
        #expect(try runNode("Flatten", [x], ["axis": .int(-1)])[0].shape == [6, 4])
        #expect(try runNode("Flatten", [x], ["axis": .int(2)])[0].floats() == x.floats())
        #expect(throwsGraft(.invalidModel) { _ = try runNode("Flatten", [x], ["axis": .int(4)]) })
    }

    @Test func squeezeOpsetForms() throws {
        let x = iota([1, 3, 1, 2])
        // opset 13+: axes input
        let a = try runNode("Squeeze", [x, ints([0, -2])])[0]
        #expect(a.shape == [3, 2] && a.floats() == x.floats())
        #expect(try runNode("Squeeze", [x, ints([2])])[0].shape == [1, 3, 2])
        // no axes: every 1-dim
        #expect(try runNode("Squeeze", [x])[0].shape == [3, 2])
        // opset 11: attribute
        #expect(try runNode("Squeeze", [x], ["axes": .ints([0])], opset: 11)[0].shape == [3, 1, 2])
        #expect(try runNode("Squeeze", [x], [:], opset: 11)[0].shape == [3, 2])
        // squeezing a non-1 axis, out-of-range axis
        #expect(throwsGraft(.shapeMismatch) { _ = try runNode("Squeeze", [x, ints([1])]) })
        #expect(throwsGraft(.invalidModel) { _ = try runNode("Squeeze", [x, ints([4])]) })
    }

    @Test func unsqueezeOpsetForms() throws {
        let x = iota([3])
        #expect(try runNode("Unsqueeze", [x, ints([0, -1])])[0].shape == [1, 3, 1])
        #expect(try runNode("Unsqueeze", [x, ints([1])])[0].shape == [3, 1])
        #expect(try runNode("Unsqueeze", [iota([2, 3]), ints([-1, 1])])[0].shape == [2, 1, 3, 1])
        #expect(try runNode("Unsqueeze", [x], ["axes": .ints([0, 2])], opset: 11)[0].shape == [1, 3, 1])
        let s = try runNode("Unsqueeze", [HostTensor([Int64(5)], shape: []), ints([0])])[0]
        #expect(s.shape == [1] && s.int64s == [5])
        #expect(throwsGraft(.invalidModel) { _ = try runNode("Unsqueeze", [x, ints([0, 0])]) })
        #expect(throwsGraft(.invalidModel) { _ = try runNode("Unsqueeze", [x, ints([3])]) })
    }

    @Test func expand() throws {
        // [3,1] -> [2,3,4]: out[b][i][j] = x[i]
        let x = floats([1, 2, 3], [3, 1])
        let y = try runNode("Expand", [x, ints([2, 1, 4])])[0]
        #expect(y.shape == [2, 3, 4])
        var expected: [Float] = []
        for _ in 0..<2 { for i in 0..<3 { for _ in 0..<4 { expected.append(Float(i + 1)) } } }
        #expect(y.floats() == expected)
        // shape smaller than input (bidirectional): [2,3] with [1] stays [2,3]
        let z = try runNode("Expand", [iota([2, 3]), ints([1])])[0]
        #expect(z.shape == [2, 3] && z.floats() == [0, 1, 2, 3, 4, 5])
        // middle broadcast, int64
        let xi = ints([1, 2, 3, 4], [2, 1, 2])
        let yi = try runNode("Expand", [xi, ints([2, 3, 2])])[0]
        #expect(yi.int64s == [1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4])
        // empty result
        #expect(try runNode("Expand", [iota([1, 3]), ints([0, 3])])[0].shape == [0, 3])
        // incompatible
        #expect(throwsGraft(.shapeMismatch) { _ = try runNode("Expand", [iota([2, 3]), ints([4, 3])]) })
        #expect(throwsGraft(.invalidModel) { _ = try runNode("Expand", [iota([2, 3]), ints([-2, 3])]) })
    }

    @Test func constantOfShape() throws {
        let a = try runNode("ConstantOfShape", [ints([2, 3])])[0]
        #expect(a.dtype == .float32 && a.shape == [2, 3] && a.floats() == [Float](repeating: 0, count: 6))
        let b = try runNode("ConstantOfShape", [ints([4])], ["value": .tensor(HostTensor([Int64(7)], shape: [1]))])[0]
        #expect(b.dtype == .int64 && b.int64s == [7, 7, 7, 7])
        let c = try runNode("ConstantOfShape", [ints([2])], ["value": .tensor(HostTensor([Float(1.5)], shape: [1]))])[0]
        #expect(c.floats() == [1.5, 1.5])
        let d = try runNode("ConstantOfShape", [ints([3])], ["value": .tensor(HostTensor([true], shape: [1]))])[0]
        #expect(d.dtype == .bool && Array(UnsafeBufferPointer(start: d.pointer(UInt8.self), count: 3)) == [1, 1, 1])
        let s = try runNode("ConstantOfShape", [ints([], [0])])[0]
        #expect(s.shape == [] && s.floats() == [0])
        #expect(try runNode("ConstantOfShape", [ints([0, 5])])[0].count == 0)
        #expect(throwsGraft(.invalidModel) { _ = try runNode("ConstantOfShape", [ints([-1])]) })
        #expect(throwsGraft(.invalidModel) {
            _ = try runNode("ConstantOfShape", [ints([2])], ["value": .tensor(HostTensor([Float(1), 2], shape: [2]))])
        })
    }

    @Test func range() throws {
        func f(_ v: Float) -> HostTensor { HostTensor([v], shape: []) }
        func i(_ v: Int64) -> HostTensor { HostTensor([v], shape: []) }
        let a = try runNode("Range", [f(0), f(1), f(0.3)])[0]
        #expect(a.shape == [4])
        let expected: [Float] = [0, 0.3, 0.6, 0.9]
        for (x, e) in zip(a.floats(), expected) { #expect(abs(x - e) <= 1e-6) } // tolerance 1e-6
        #expect(try runNode("Range", [i(10), i(4), i(-3)])[0].int64s == [10, 7])
        #expect(try runNode("Range", [i(1), i(5), i(2)])[0].int64s == [1, 3])
        #expect(try runNode("Range", [i(5), i(1), i(1)])[0].int64s == [])
        let r32 = try runNode("Range", [HostTensor([Int32(-2)], shape: []), HostTensor([Int32(2)], shape: []), HostTensor([Int32(1)], shape: [])])[0]
        #expect(r32.dtype == .int32 && r32.int32s == [-2, -1, 0, 1])
        #expect(try runNode("Range", [i(0), i(10), i(3)]).first?.int64s == [0, 3, 6, 9])
        #expect(try compile("Range", [TensorType(.int64, []), TensorType(.int64, []), TensorType(.int64, [])],
                            [i(0), i(3), i(1)]).folded != nil)
        #expect(throwsGraft(.invalidModel) { _ = try runNode("Range", [i(0), i(3), i(0)]) })
        #expect(throwsGraft(.limitExceeded) { _ = try runNode("Range", [i(0), i(Int64.max), i(1)]) })
        #expect(throwsGraft(.limitExceeded) { _ = try runNode("Range", [i(0), i(Int64.min), i(-1)]) })
        #expect(throwsGraft(.limitExceeded) { _ = try runNode("Range", [i(-5), i(Int64.max), i(1)]) })
        #expect(throwsGraft(.limitExceeded) { _ = try runNode("Range", [f(0), f(1e20), f(1)]) })
        #expect(throwsGraft(.unsupported) {
            _ = try compile("Range", [TensorType(.int64, []), TensorType(.int64, []), TensorType(.int64, [])], [i(0), nil, i(1)])
        })
    }
}

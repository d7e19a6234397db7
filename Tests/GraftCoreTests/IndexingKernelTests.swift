import Testing
@testable import GraftCore

// Data-movement ops are compared exactly (tolerance 0): they copy values bit for bit.


fileprivate func ints(_ v: [Int], _ shape: [Int]? = nil) -> HostTensor { HostTensor(v.map(Int64.init), shape: shape ?? [v.count]) }
fileprivate func floats(_ v: [Float], _ shape: [Int]) -> HostTensor { HostTensor(v, shape: shape) }
fileprivate func iota(_ shape: [Int]) -> HostTensor { HostTensor((0..<Shape.product(shape)).map { Float($0) }, shape: shape) }
fileprivate extension HostTensor {
    var int64s: [Int64] { Array(UnsafeBufferPointer(start: pointer(Int64.self), count: count)) }
    var bytes: [UInt8] { Array(UnsafeBufferPointer(start: pointer(UInt8.self), count: count)) }
}




/// Reference transpose by coordinates.
fileprivate func refTranspose(_ x: [Float], _ shape: [Int], _ perm: [Int]) -> [Float] {
    let out = perm.map { shape[$0] }
    return (0..<x.count).map { i in
        let oc = coords(i, out)
        var ic = [Int](repeating: 0, count: shape.count)
        for d in 0..<perm.count { ic[perm[d]] = oc[d] }
        return x[flat(ic, shape)]
    }
}

@Suite("Indexing kernels")
struct IndexingKernelTests {
    @Test func gather() throws {
        let x = floats([1, 2, 3, 4, 5, 6], [3, 2])
        // axis 0, 2-D int64 indices with a negative one.
        let a = try runNode("Gather", [x, ints([0, 2, -1, 1], [2, 2])])[0]
        #expect(a.shape == [2, 2, 2])
        #expect(a.floats() == [1, 2, 5, 6, 5, 6, 3, 4])
        // axis 1 with int32 indices.
        let b = try runNode("Gather", [x, HostTensor([Int32(1), 0, 1], shape: [3])], ["axis": .int(1)])[0]
        #expect(b.shape == [3, 3] && b.floats() == [2, 1, 2, 4, 3, 4, 6, 5, 6])
        // scalar index removes the axis; negative axis.
        let c = try runNode("Gather", [x, HostTensor([Int64(1)], shape: [])], ["axis": .int(-1)])[0]
        #expect(c.shape == [3] && c.floats() == [2, 4, 6])
        // int64 data (shape vectors) and bool data.
        #expect(try runNode("Gather", [ints([7, 8, 9]), ints([2, 0])])[0].int64s == [9, 7])
        #expect(try runNode("Gather", [HostTensor([true, false, true], shape: [3]), ints([1, 2])])[0].bytes == [0, 1])
        // embedding-style: [vocab, dim] with [batch, seq] ids.
        let emb = iota([5, 3])
        let e = try runNode("Gather", [emb, ints([4, 0, 2, 2], [2, 2])])[0]
        #expect(e.shape == [2, 2, 3])
        #expect(e.floats() == [12, 13, 14, 0, 1, 2, 6, 7, 8, 6, 7, 8])
        // empty indices
        #expect(try runNode("Gather", [x, ints([], [0])])[0].shape == [0, 2])
        // out of range at run time
        #expect(throwsGraft(.invalidData) { _ = try runNode("Gather", [x, ints([3])]) })
        #expect(throwsGraft(.invalidData) { _ = try runNode("Gather", [x, ints([-4])]) })
        #expect(throwsGraft(.invalidModel) { _ = try runNode("Gather", [x, ints([0])], ["axis": .int(2)]) })
    }

    @Test func gatherElements() throws {
        // ONNX spec examples.
        let a = try runNode("GatherElements", [floats([1, 2, 3, 4], [2, 2]), ints([0, 0, 1, 0], [2, 2])], ["axis": .int(1)])[0]
        #expect(a.floats() == [1, 1, 4, 3])
        let data = floats([1, 2, 3, 4, 5, 6, 7, 8, 9], [3, 3])
        let b = try runNode("GatherElements", [data, ints([1, 2, 0, 2, 0, 0], [2, 3])])[0]
        #expect(b.shape == [2, 3] && b.floats() == [4, 8, 3, 7, 2, 3])
        // negative indices and a negative axis
        let c = try runNode("GatherElements", [data, ints([-1, 0, -3, 1], [2, 2])], ["axis": .int(-1)])[0]
        #expect(c.floats() == [3, 1, 4, 5])
        // 3-D against a loop reference, axis 1, indices smaller than data on other axes.
        let x = iota([2, 4, 3])
        let idxShape = [2, 5, 2]
        let idx = (0..<20).map { ($0 * 7) % 4 }
        let r = try runNode("GatherElements", [x, ints(idx, idxShape)], ["axis": .int(1)])[0]
        let xv = x.floats()
        let expected = (0..<20).map { i -> Float in
            let cc = coords(i, idxShape)
            return xv[flat([cc[0], idx[i], cc[2]], [2, 4, 3])]
        }
        #expect(r.floats() == expected)
        #expect(throwsGraft(.invalidData) { _ = try runNode("GatherElements", [data, ints([3, 0, 0], [1, 3])]) })
    }

    @Test func gatherND() throws {
        // ONNX spec examples.
        let d1 = ints([0, 1, 2, 3], [2, 2])
        #expect(try runNode("GatherND", [d1, ints([0, 0, 1, 1], [2, 2])])[0].int64s == [0, 3])
        let r2 = try runNode("GatherND", [d1, ints([1, 0], [2, 1])])[0]
        #expect(r2.shape == [2, 2] && r2.int64s == [2, 3, 0, 1])
        let d3 = ints(Array(0..<8), [2, 2, 2])
        let r3 = try runNode("GatherND", [d3, ints([0, 1, 1, 0], [2, 2])])[0]
        #expect(r3.shape == [2, 2] && r3.int64s == [2, 3, 4, 5])
        let r4 = try runNode("GatherND", [d3, ints([0, 1, 1, 0], [2, 1, 2])])[0]
        #expect(r4.shape == [2, 1, 2] && r4.int64s == [2, 3, 4, 5])
        // batch_dims = 1
        let r5 = try runNode("GatherND", [d3, ints([1, 0], [2, 1])], ["batch_dims": .int(1)])[0]
        #expect(r5.shape == [2, 2] && r5.int64s == [2, 3, 4, 5])
        // negative index wraps
        #expect(try runNode("GatherND", [d1, ints([-1, -2], [1, 2])])[0].int64s == [2])
        #expect(throwsGraft(.invalidData) { _ = try runNode("GatherND", [d1, ints([2, 0], [1, 2])]) })
        #expect(throwsGraft(.invalidModel) { _ = try runNode("GatherND", [d1, ints([0, 0, 0], [1, 3])]) })
    }

    @Test func slice() throws {
        let x = floats([1, 2, 3, 4, 5, 6, 7, 8], [2, 4])
        // ONNX spec example 1: steps
        let a = try runNode("Slice", [x, ints([1, 0]), ints([2, 3]), ints([0, 1]), ints([1, 2])])[0]
        #expect(a.shape == [1, 2] && a.floats() == [5, 7])
        // spec example 2: negative end, huge end, axes omitted
        let b = try runNode("Slice", [x, ints([0, 1]), ints([-1, 1000])])[0]
        #expect(b.shape == [1, 3] && b.floats() == [2, 3, 4])
        let v = iota([10])
        func s1(_ s: Int, _ e: Int, _ st: Int) throws -> [Float] {
            try runNode("Slice", [v, ints([s]), ints([e]), ints([0]), ints([st])])[0].floats()
        }
        // reverse everything: INT64_MIN end with step -1
        #expect(try s1(-1, Int(Int64.min), -1) == [9, 8, 7, 6, 5, 4, 3, 2, 1, 0])
        #expect(try s1(8, 1, -3) == [8, 5, 2])
        #expect(try s1(2, Int(Int64.max), 1) == [2, 3, 4, 5, 6, 7, 8, 9])
        #expect(try s1(Int(Int64.max), 0, -2) == [9, 7, 5, 3, 1])
        #expect(try s1(-100, 3, 1) == [0, 1, 2])
        #expect(try s1(12, 20, 1) == [])
        #expect(try s1(5, 5, 1) == [])
        #expect(try s1(3, 7, -1) == [])
        // extreme steps must not overflow
        #expect(try s1(1, 10, Int(Int64.max)) == [1])
        #expect(try s1(-1, Int(Int64.min), Int(Int64.min)) == [9])
        // negative axis, 3-D, against a loop reference: x[:, 3:0:-2, 1:]
        let y = iota([2, 5, 3])
        let r = try runNode("Slice", [y, ints([3, 1]), ints([0, 100]), ints([-2, -1]), ints([-2, 1])])[0]
        #expect(r.shape == [2, 2, 2])
        var expected: [Float] = []
        for i in 0..<2 { for j in [3, 1] { for k in 1..<3 { expected.append(Float(i * 15 + j * 3 + k)) } } }
        #expect(r.floats() == expected)
        // int64 data, opset 9 attribute form
        let z = try runNode("Slice", [ints([1, 2, 3, 4])], ["starts": .ints([1]), "ends": .ints([3])], opset: 9)[0]
        #expect(z.int64s == [2, 3])
        #expect(throwsGraft(.invalidModel) { _ = try runNode("Slice", [v, ints([0]), ints([3]), ints([0]), ints([0])]) })
        #expect(throwsGraft(.invalidModel) { _ = try runNode("Slice", [x, ints([0, 0]), ints([1, 1]), ints([1, 1])]) })
    }

    @Test func concat() throws {
        let a = floats([1, 2], [2, 1]), b = floats([3, 4, 5, 6], [2, 2])
        let r = try runNode("Concat", [a, b], ["axis": .int(1)])[0]
        #expect(r.shape == [2, 3] && r.floats() == [1, 3, 4, 2, 5, 6])
        let r2 = try runNode("Concat", [b, b], ["axis": .int(-2)])[0]
        #expect(r2.shape == [4, 2] && r2.floats() == [3, 4, 5, 6, 3, 4, 5, 6])
        // zero-size inputs in the middle
        let e = HostTensor(zeros: .float32, shape: [2, 0])
        let r3 = try runNode("Concat", [a, e, b], ["axis": .int(1)])[0]
        #expect(r3.floats() == [1, 3, 4, 2, 5, 6])
        // int64 shape vectors, one empty
        #expect(try runNode("Concat", [ints([1, 2]), ints([]), ints([3])], ["axis": .int(0)])[0].int64s == [1, 2, 3])
        #expect(throwsGraft(.shapeMismatch) { _ = try runNode("Concat", [a, floats([1, 2, 3], [3, 1])], ["axis": .int(1)]) })
        #expect(throwsGraft(.invalidModel) { _ = try runNode("Concat", [a, ints([1, 2], [2, 1])], ["axis": .int(1)]) })
    }

    @Test func splitOpsetForms() throws {
        let x = iota([2, 6])
        // opset 13+: split input
        let a = try runNode("Split", [x, ints([1, 2, 3])], ["axis": .int(1)], outputs: 3)
        #expect(a.map(\.shape) == [[2, 1], [2, 2], [2, 3]])
        #expect(a[0].floats() == [0, 6])
        #expect(a[1].floats() == [1, 2, 7, 8])
        #expect(a[2].floats() == [3, 4, 5, 9, 10, 11])
        // equal split by output count, negative axis
        let b = try runNode("Split", [x], ["axis": .int(-1)], outputs: 2)
        #expect(b[0].floats() == [0, 1, 2, 6, 7, 8] && b[1].floats() == [3, 4, 5, 9, 10, 11])
        // axis 0
        let c = try runNode("Split", [x], [:], outputs: 2)
        #expect(c[0].floats() == [0, 1, 2, 3, 4, 5] && c[1].shape == [1, 6])
        // opset 11: split attribute
        let d = try runNode("Split", [x], ["axis": .int(1), "split": .ints([4, 2])], outputs: 2, opset: 11)
        #expect(d[0].shape == [2, 4] && d[1].floats() == [4, 5, 10, 11])
        // opset 18: num_outputs, last chunk smaller
        let e = try runNode("Split", [iota([7])], ["num_outputs": .int(3)], outputs: 3, opset: 18)
        #expect(e.map { $0.floats() } == [[0, 1, 2], [3, 4, 5], [6]])
        // zero-size piece
        let f = try runNode("Split", [x, ints([0, 6])], ["axis": .int(1)], outputs: 2)
        #expect(f[0].shape == [2, 0] && f[1].floats() == x.floats())
        #expect(throwsGraft(.shapeMismatch) { _ = try runNode("Split", [iota([7])], [:], outputs: 3) })
        #expect(throwsGraft(.invalidModel) { _ = try runNode("Split", [iota([6])], ["num_outputs": .int(3)], outputs: 2, opset: 18) })
        #expect(throwsGraft(.shapeMismatch) { _ = try runNode("Split", [x, ints([1, 2])], ["axis": .int(1)], outputs: 2) })
    }

    @Test func transpose() throws {
        let a = try runNode("Transpose", [iota([2, 3])])[0]
        #expect(a.shape == [3, 2] && a.floats() == [0, 3, 1, 4, 2, 5])
        // attention permutation [B,S,H,D] -> [B,H,S,D]
        for (shape, perm) in [([2, 3, 4, 5], [0, 2, 1, 3]), ([2, 37, 45], [0, 2, 1]), ([3, 4, 5], [2, 0, 1]),
                              ([2, 3, 4, 5], [0, 2, 3, 1]), ([1, 7, 1, 9], [3, 1, 2, 0]), ([40, 33], [1, 0]),
                              ([2, 1, 3], [1, 0, 2]), ([0, 3], [1, 0])] {
            let x = iota(shape)
            let y = try runNode("Transpose", [x], ["perm": .ints(perm)])[0]
            #expect(y.shape == perm.map { shape[$0] })
            #expect(y.floats() == refTranspose(x.floats(), shape, perm), "shape \(shape) perm \(perm)")
        }
        // 8-byte and 1-byte elements through the tiled path
        let xi = ints(Array(0..<30), [5, 6])
        let yi = try runNode("Transpose", [xi], ["perm": .ints([1, 0])])[0]
        #expect(yi.int64s.map { Float($0) } == refTranspose((0..<30).map(Float.init), [5, 6], [1, 0]))
        let bools = (0..<30).map { $0 % 3 == 0 }
        let yb = try runNode("Transpose", [HostTensor(bools, shape: [5, 6])])[0]
        #expect(yb.bytes.map { Float($0) } == refTranspose(bools.map { $0 ? 1 : 0 }, [5, 6], [1, 0]))
        #expect(throwsGraft(.invalidModel) { _ = try runNode("Transpose", [iota([2, 3])], ["perm": .ints([0, 0])]) })
    }

    @Test func trilu() throws {
        let x = iota([3, 4]) // 0...11
        let up = try runNode("Trilu", [x])[0].floats()
        #expect(up == [0, 1, 2, 3, 0, 5, 6, 7, 0, 0, 10, 11])
        let up1 = try runNode("Trilu", [x, HostTensor([Int64(1)], shape: [])])[0].floats()
        #expect(up1 == [0, 1, 2, 3, 0, 0, 6, 7, 0, 0, 0, 11])
        let upm1 = try runNode("Trilu", [x, HostTensor([Int64(-1)], shape: [])])[0].floats()
        #expect(upm1 == [0, 1, 2, 3, 4, 5, 6, 7, 0, 9, 10, 11])
        let lo = try runNode("Trilu", [x], ["upper": .int(0)])[0].floats()
        #expect(lo == [0, 0, 0, 0, 4, 5, 0, 0, 8, 9, 10, 0])
        let lo2 = try runNode("Trilu", [x, HostTensor([Int64(-2)], shape: [])], ["upper": .int(0)])[0].floats()
        #expect(lo2 == [0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0])
        let big = try runNode("Trilu", [x, HostTensor([Int64(100)], shape: [])], ["upper": .int(0)])[0].floats()
        #expect(big == x.floats())
        // batched, loop reference
        let b = iota([2, 3, 3])
        let rb = try runNode("Trilu", [b])[0].floats()
        let expected = (0..<18).map { i -> Float in
            let c = coords(i, [2, 3, 3]); return c[2] >= c[1] ? Float(i) : 0
        }
        #expect(rb == expected)
        // bool and int64 (causal mask)
        let ones = HostTensor([Bool](repeating: true, count: 9), shape: [3, 3])
        #expect(try runNode("Trilu", [ones], ["upper": .int(0)])[0].bytes == [1, 0, 0, 1, 1, 0, 1, 1, 1])
        #expect(try runNode("Trilu", [ints([1, 2, 3, 4], [2, 2])])[0].int64s == [1, 2, 0, 4])
    }

    @Test func tile() throws {
        let x = floats([1, 2, 3, 4], [2, 2])
        let a = try runNode("Tile", [x, ints([1, 2])])[0]
        #expect(a.shape == [2, 4] && a.floats() == [1, 2, 1, 2, 3, 4, 3, 4])
        let b = try runNode("Tile", [x, ints([2, 1])])[0]
        #expect(b.floats() == [1, 2, 3, 4, 1, 2, 3, 4])
        // loop reference, 3-D
        let y = iota([2, 1, 3])
        let reps = [2, 3, 2]
        let r = try runNode("Tile", [y, ints(reps)])[0]
        let outShape = [4, 3, 6]
        #expect(r.shape == outShape)
        let expected = (0..<Shape.product(outShape)).map { i -> Float in
            let c = coords(i, outShape)
            return Float(flat([c[0] % 2, c[1] % 1, c[2] % 3], [2, 1, 3]))
        }
        #expect(r.floats() == expected)
        #expect(try runNode("Tile", [x, ints([0, 3])])[0].shape == [0, 6])
        #expect(throwsGraft(.invalidModel) { _ = try runNode("Tile", [x, ints([2])]) })
    }

    @Test func pad() throws {
        let x = floats([1, 2, 3, 4], [2, 2])
        // constant, pads = [begin0, begin1, end0, end1]
        let a = try runNode("Pad", [x, ints([1, 0, 0, 2])])[0]
        #expect(a.shape == [3, 4] && a.floats() == [0, 0, 0, 0, 1, 2, 0, 0, 3, 4, 0, 0])
        // constant_value input
        let b = try runNode("Pad", [x, ints([0, 1, 0, 1]), HostTensor([Float(9)], shape: [])])[0]
        #expect(b.floats() == [9, 1, 2, 9, 9, 3, 4, 9])
        // negative pads crop
        let c = try runNode("Pad", [iota([3, 3]), ints([-1, 1, 0, -1])])[0]
        #expect(c.shape == [2, 3] && c.floats() == [0, 3, 4, 0, 6, 7])
        // edge and reflect on 1-D rows (ONNX spec style)
        let v = floats([1, 2, 3], [1, 3])
        let e = try runNode("Pad", [v, ints([0, 2, 0, 2])], ["mode": .string("edge")])[0]
        #expect(e.floats() == [1, 1, 1, 2, 3, 3, 3])
        let rf = try runNode("Pad", [v, ints([0, 2, 0, 2])], ["mode": .string("reflect")])[0]
        #expect(rf.floats() == [3, 2, 1, 2, 3, 2, 1])
        let e2 = try runNode("Pad", [x, ints([1, 0, 1, 0])], ["mode": .string("edge")])[0]
        #expect(e2.floats() == [1, 2, 1, 2, 3, 4, 3, 4])
        // opset 18 axes input
        let f = try runNode("Pad", [x, ints([1, 1]), nil, ints([-1])], opset: 18)[0]
        #expect(f.shape == [2, 4] && f.floats() == [0, 1, 2, 0, 0, 3, 4, 0])
        #expect(throwsGraft(.unsupported) { _ = try runNode("Pad", [x, ints([0, 0, 0, 0])], ["mode": .string("wrap")]) })
        #expect(throwsGraft(.invalidModel) { _ = try runNode("Pad", [x, ints([0, 0])]) })
        #expect(throwsGraft(.invalidModel) { _ = try runNode("Pad", [x, ints([0, -3, 0, 0])]) })
        #expect(throwsGraft(.limitExceeded) { _ = try runNode("Pad", [x, ints([0, Int(Int64.max), 0, 1])]) })
        #expect(try runNode("Pad", [x, ints([0, 0, -2, 5])])[0].shape == [0, 7])
    }
}

/// Runs a compiled kernel with outputs pre-filled with 0xFF bytes (NaN / -1), as the executor's
/// reused buffers may be, and with `threads` threads; returns the outputs.
fileprivate func runDirty(_ node: Node, _ inputs: [HostTensor?], opset: Int = 17, threads: Int) throws -> [HostTensor] {
    let kernel = try KernelRegistry.compile(node, inputTypes: inputs.map { $0.map { TensorType($0.dtype, $0.shape) } },
                                            constants: inputs, opset: opset, threads: threads)
    if let folded = kernel.folded { return folded }
    let outputs = kernel.outputTypes.map { t -> HostTensor in
        let h = HostTensor(zeros: t.dtype, shape: t.shape)
        h.raw.initializeMemory(as: UInt8.self, repeating: 0xFF, count: t.byteCount)
        return h
    }
    let slots = UnsafeMutablePointer<UnsafeMutableRawPointer>.allocate(capacity: inputs.count + outputs.count)
    defer { slots.deallocate() }
    var inSlots = [Int32](repeating: -1, count: inputs.count)
    for (i, t) in inputs.enumerated() {
        slots[i] = t?.raw ?? UnsafeMutableRawPointer(bitPattern: 64)!
        if t != nil { inSlots[i] = Int32(i) }
    }
    for (j, t) in outputs.enumerated() { slots[inputs.count + j] = t.raw }
    let outSlots = (0..<outputs.count).map { Int32(inputs.count + $0) }
    try inSlots.withUnsafeBufferPointer { ins in
        try outSlots.withUnsafeBufferPointer { outs in
            try withExtendedLifetime(inputs) {
                try kernel.run(KernelIO(slots: slots, inputSlots: ins.baseAddress!, outputSlots: outs.baseAddress!))
            }
        }
    }
    return outputs
}

@Suite("Kernels write every output element")
struct DirtyOutputTests {
    // Exact byte comparison (tolerance 0) against `evaluate`, which hands kernels zeroed outputs.
    static let cases: [(String, [HostTensor?], [String: Attribute], Int)] = [
        ("Reshape", [iota([2, 3, 4]), ints([4, -1])], [:], 1),
        ("Expand", [iota([3, 1]), ints([2, 3, 5])], [:], 1),
        ("ConstantOfShape", [ints([3, 2])], [:], 1),
        ("Gather", [iota([5, 3]), ints([4, 0, 2])], [:], 1),
        ("GatherElements", [iota([3, 3]), ints([1, 2, 0, 2, 0, 0], [2, 3])], [:], 1),
        ("GatherND", [ints(Array(0..<8), [2, 2, 2]), ints([1, 0], [2, 1])], ["batch_dims": .int(1)], 1),
        ("Slice", [iota([4, 5]), ints([3, 0]), ints([0, 5]), ints([0, 1]), ints([-1, 2])], [:], 1),
        ("Concat", [iota([2, 1]), iota([2, 3])], ["axis": .int(1)], 1),
        ("Split", [iota([2, 5])], ["axis": .int(1), "num_outputs": .int(2)], 2),
        ("Transpose", [iota([64, 64, 32])], ["perm": .ints([0, 2, 1])], 1), // 512 KB: parallel path
        ("Transpose", [iota([16, 32, 8, 16])], ["perm": .ints([0, 2, 1, 3])], 1),
        ("Expand", [iota([1, 256]), ints([512, 256])], [:], 1),             // 512 KB broadcast
        ("Trilu", [iota([3, 4])], ["upper": .int(0)], 1),
        ("Tile", [iota([2, 3]), ints([2, 2])], [:], 1),
        ("Pad", [iota([2, 3]), ints([1, 1, 1, 1])], [:], 1),
        ("Pad", [iota([2, 3]), ints([0, 2, 0, 2])], ["mode": .string("reflect")], 1),
        ("MatMul", [iota([1, 5]), iota([5, 3])], [:], 1),                   // gemv, M == 1
        ("MatMul", [iota([4, 5]), iota([5])], [:], 1),                      // gemv, N == 1
        ("MatMul", [iota([3, 1, 5]), iota([3, 5, 2])], [:], 1),
        ("MatMul", [iota([3, 0]), iota([0, 2])], [:], 1),                   // K == 0
        ("Gemm", [iota([2, 3]), iota([3, 4]), iota([4])], ["beta": .float(0.5)], 1),
        ("Gemm", [iota([2, 0]), iota([0, 4])], [:], 1),
        ("Conv", [iota([1, 2, 5, 5]), iota([3, 2, 3, 3]), iota([3])], ["pads": .ints([1, 0, 2, 1]), "strides": .ints([2, 1])], 1),
    ]

    @Test func outputsAreFullyWritten() throws {
        for (op, inputs, attrs, outs) in Self.cases {
            let node = Node(name: "t", opType: op, inputs: inputs.indices.map { "in\($0)" },
                            outputs: (0..<outs).map { "out\($0)" }, attributes: attrs)
            let want = try KernelRegistry.evaluate(node, inputs: inputs, opset: 18)
            for threads in [1, 2] {
                let got = try runDirty(node, inputs, opset: 18, threads: threads)
                #expect(got.count == want.count)
                for (g, w) in zip(got, want) {
                    let same = g.shape == w.shape && g.dtype == w.dtype
                        && Array(UnsafeRawBufferPointer(start: g.raw, count: g.byteCount)) == Array(UnsafeRawBufferPointer(start: w.raw, count: w.byteCount))
                    #expect(same, "\(op) \(inputs.map { $0?.shape ?? [] }) threads \(threads)")
                }
            }
        }
    }
}

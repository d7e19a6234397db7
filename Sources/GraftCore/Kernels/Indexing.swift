#if canImport(Glibc)
import Glibc
#endif

/// Indexing and data-movement ops: Gather, GatherElements, GatherND, Slice, Concat, Split,
/// Transpose, Trilu, Tile, Pad. All of them move `dtype.byteSize`-wide elements and so work
/// on any dtype (except Trilu and Pad, which also only copy or fill bytes).
package enum IndexingKernels {
    package static let entries: [(String, KernelFactory)] = [
        ("Gather", gather),
        ("GatherElements", gatherElements),
        ("GatherND", gatherND),
        ("Slice", slice),
        ("Concat", concat),
        ("Split", split),
        ("Transpose", transpose),
        ("Trilu", trilu),
        ("Tile", tile),
        ("Pad", pad),
    ]

    /// Copies one element (or a run) of `bytes` bytes; typed loads for the common sizes.
    @inline(__always)
    static func copyBytes(_ dst: UnsafeMutableRawPointer, _ src: UnsafeRawPointer, _ bytes: Int) {
        switch bytes {
        case 4: dst.storeBytes(of: src.loadUnaligned(as: UInt32.self), as: UInt32.self)
        case 8: dst.storeBytes(of: src.loadUnaligned(as: UInt64.self), as: UInt64.self)
        case 1: dst.storeBytes(of: src.load(as: UInt8.self), as: UInt8.self)
        case 2: dst.storeBytes(of: src.loadUnaligned(as: UInt16.self), as: UInt16.self)
        default: dst.copyMemory(from: src, byteCount: bytes)
        }
    }

    /// Reads index `j` of an int64 or int32 indices buffer.
    @inline(__always)
    static func index(_ p: UnsafeRawPointer, _ j: Int, _ is64: Bool) -> Int {
        is64 ? Int(p.load(fromByteOffset: j &* 8, as: Int64.self)) : Int(p.load(fromByteOffset: j &* 4, as: Int32.self))
    }

    // MARK: - Gather

    static func gather(_ ctx: KernelContext) throws -> CompiledKernel {
        let x = try ctx.input(0)
        let idx = try ctx.require(1, [.int64, .int32])
        let r = x.shape.count
        guard r >= 1 else { throw ctx.fail(.invalidModel, "data must have rank >= 1, it is a scalar") }
        let axis = try Shape.axis(ctx.node.int("axis", default: 0), rank: r, op: ctx.node.label)
        let outShape = Array(x.shape[..<axis]) + idx.shape + Array(x.shape[(axis + 1)...])
        try ShapeKernels.checked(outShape, ctx)
        let outer = Shape.product(Array(x.shape[..<axis]))
        let n = x.shape[axis]
        let innerBytes = Shape.product(Array(x.shape[(axis + 1)...])) * x.dtype.byteSize
        let m = idx.count
        let is64 = idx.dtype == .int64
        let label = ctx.node.label
        let total = Shape.product(outShape)
        return CompiledKernel(outputs: [TensorType(x.dtype, outShape)]) { io in
            guard total > 0 else { return }
            let src = io.raw(input: 0)
            let ip = io.raw(input: 1)
            // Validate every index first so that the copy loop is branch-free of checks.
            for j in 0..<m {
                let k = index(ip, j, is64)
                guard k >= -n, k < n else {
                    throw GraftError(.invalidData, "\(label): index \(k) is out of range for axis \(axis) of size \(n)")
                }
            }
            var dst = io.raw(output: 0)
            for o in 0..<outer {
                let base = src + o * n * innerBytes
                for j in 0..<m {
                    var k = index(ip, j, is64)
                    if k < 0 { k += n }
                    copyBytes(dst, base + k * innerBytes, innerBytes)
                    dst += innerBytes
                }
            }
        }
    }

    // MARK: - GatherElements

    static func gatherElements(_ ctx: KernelContext) throws -> CompiledKernel {
        let x = try ctx.input(0)
        let idx = try ctx.require(1, [.int64, .int32])
        let r = x.shape.count
        guard r >= 1, idx.shape.count == r else {
            throw ctx.fail(.shapeMismatch, "indices \(idx.shape) must have the same rank as data \(x.shape) (>= 1)")
        }
        let axis = try Shape.axis(ctx.node.int("axis", default: 0), rank: r, op: ctx.node.label)
        for i in 0..<r where i != axis && idx.shape[i] > x.shape[i] {
            throw ctx.fail(.shapeMismatch, "indices \(idx.shape) exceed data \(x.shape) on axis \(i)")
        }
        let elem = x.dtype.byteSize
        let ds = Shape.strides(x.shape)
        let outer = Shape.product(Array(idx.shape[..<axis]))
        let a = idx.shape[axis]
        let inner = Shape.product(Array(idx.shape[(axis + 1)...]))
        // Data offsets (elements) of each outer and inner coordinate of the indices tensor.
        func offsets(_ dims: ArraySlice<Int>, _ strides: ArraySlice<Int>) -> [Int] {
            var out = [0]
            for (d, s) in zip(dims, strides) {
                out = out.flatMap { base in (0..<d).map { base + $0 * s } }
            }
            return out
        }
        let outerOff = outer == 0 ? [] : offsets(idx.shape[..<axis], ds[..<axis])
        let innerOff = inner == 0 ? [] : offsets(idx.shape[(axis + 1)...], ds[(axis + 1)...])
        let n = x.shape[axis]
        let axisStride = ds[axis]
        let is64 = idx.dtype == .int64
        let label = ctx.node.label
        return CompiledKernel(outputs: [TensorType(x.dtype, idx.shape)]) { io in
            let src = io.raw(input: 0)
            let ip = io.raw(input: 1)
            let dst = io.raw(output: 0)
            var j = 0
            for o in 0..<outer {
                let ob = outerOff[o]
                for _ in 0..<a {
                    for i in 0..<inner {
                        var k = index(ip, j, is64)
                        if k < 0 { k += n }
                        guard k >= 0, k < n else {
                            throw GraftError(.invalidData, "\(label): index \(index(ip, j, is64)) is out of range for axis \(axis) of size \(n)")
                        }
                        copyBytes(dst + j * elem, src + (ob + k * axisStride + innerOff[i]) * elem, elem)
                        j += 1
                    }
                }
            }
        }
    }

    // MARK: - GatherND

    static func gatherND(_ ctx: KernelContext) throws -> CompiledKernel {
        let x = try ctx.input(0)
        let idx = try ctx.require(1, [.int64])
        let r = x.shape.count, q = idx.shape.count
        let b = ctx.node.int("batch_dims", default: 0)
        guard r >= 1, q >= 1 else { throw ctx.fail(.invalidModel, "data and indices must have rank >= 1") }
        guard b >= 0, b < min(q, r) else { throw ctx.fail(.invalidModel, "batch_dims \(b) must be in [0, \(min(q, r)))") }
        guard Array(x.shape[..<b]) == Array(idx.shape[..<b]) else {
            throw ctx.fail(.shapeMismatch, "the first \(b) (batch) dims of data \(x.shape) and indices \(idx.shape) differ")
        }
        let m = idx.shape[q - 1]
        guard m >= 1, m <= r - b else {
            throw ctx.fail(.invalidModel, "the last dim of indices (\(m)) must be in [1, \(r - b)]")
        }
        let outShape = Array(idx.shape[..<(q - 1)]) + Array(x.shape[(b + m)...])
        try ShapeKernels.checked(outShape, ctx)
        let elem = x.dtype.byteSize
        let batch = Shape.product(Array(x.shape[..<b]))
        let tuples = Shape.product(Array(idx.shape[b..<(q - 1)]))
        let sliceBytes = Shape.product(Array(x.shape[(b + m)...])) * elem
        let batchStride = Shape.product(Array(x.shape[b...]))
        let ds = Shape.strides(x.shape)
        let dims = Array(x.shape[b..<(b + m)])
        let strides = Array(ds[b..<(b + m)])
        let label = ctx.node.label
        let total = Shape.product(outShape)
        return CompiledKernel(outputs: [TensorType(x.dtype, outShape)]) { io in
            guard total > 0 else { return }
            let src = io.raw(input: 0)
            let ip = io.input(1, Int64.self)
            var dst = io.raw(output: 0)
            var t = 0
            for bi in 0..<batch {
                for _ in 0..<tuples {
                    var off = bi * batchStride
                    for j in 0..<m {
                        var k = Int(ip[t * m + j])
                        let d = dims[j]
                        if k < 0 { k += d }
                        guard k >= 0, k < d else {
                            throw GraftError(.invalidData, "\(label): index \(ip[t * m + j]) is out of range for data dim \(b + j) of size \(d)")
                        }
                        off += k * strides[j]
                    }
                    copyBytes(dst, src + off * elem, sliceBytes)
                    dst += sliceBytes
                    t += 1
                }
            }
        }
    }

    // MARK: - Slice

    static func slice(_ ctx: KernelContext) throws -> CompiledKernel {
        let x = try ctx.input(0)
        let r = x.shape.count
        var starts: [Int], ends: [Int], axes: [Int]?, steps: [Int]?
        if ctx.opset >= 10 {
            guard let s = try ctx.constantInts(1, "starts"), let e = try ctx.constantInts(2, "ends") else {
                throw ctx.fail(.invalidModel, "Slice needs starts and ends inputs")
            }
            starts = s
            ends = e
            axes = try ctx.constantInts(3, "axes")
            steps = try ctx.constantInts(4, "steps")
        } else {
            guard let s = ctx.node.ints("starts"), let e = ctx.node.ints("ends") else {
                throw ctx.fail(.invalidModel, "Slice needs starts and ends attributes")
            }
            starts = s
            ends = e
            axes = ctx.node.ints("axes")
            steps = nil
        }
        let ax = try ShapeKernels.normalizedAxes(axes ?? Array(0..<starts.count), rank: r, ctx)
        let st = steps ?? [Int](repeating: 1, count: starts.count)
        guard ends.count == starts.count, ax.count == starts.count, st.count == starts.count else {
            throw ctx.fail(.invalidModel, "starts (\(starts.count)), ends (\(ends.count)), axes (\(ax.count)) and steps (\(st.count)) must have the same length")
        }
        var outShape = x.shape
        var first = [Int](repeating: 0, count: r)
        var step = [Int](repeating: 1, count: r)
        for (i, a) in ax.enumerated() {
            let d = x.shape[a]
            let s = st[i]
            guard s != 0 else { throw ctx.fail(.invalidModel, "step for axis \(a) is 0") }
            var b = starts[i], e = ends[i]
            // Int64 extremes stay safe: adding d to a negative value cannot overflow.
            if b < 0 { b += d }
            if e < 0 { e += d }
            let n: Int
            // Counts written so that huge steps (INT64_MAX, INT64_MIN) cannot overflow.
            if s > 0 {
                b = min(max(b, 0), d)
                e = min(max(e, 0), d)
                n = e > b ? (e - b - 1) / s + 1 : 0
            } else {
                b = min(max(b, 0), d - 1)
                e = min(max(e, -1), d - 1)
                n = b > e ? (s == Int.min ? 1 : (b - e - 1) / (-s) + 1) : 0
            }
            outShape[a] = n
            first[a] = n > 0 ? b : 0
            step[a] = s
        }
        let xs = Shape.strides(x.shape)
        let offset = zip(first, xs).reduce(0) { $0 + $1.0 * $1.1 }
        let plan = StridedCopy(outShape: outShape, srcStrides: (0..<r).map { xs[$0] * step[$0] }, srcOffset: offset,
                               elementSize: x.dtype.byteSize)
        let threads = ctx.threads
        return CompiledKernel(outputs: [TensorType(x.dtype, outShape)]) { io in
            plan.run(src: io.raw(input: 0), dst: io.raw(output: 0), threads: threads)
        }
    }

    // MARK: - Concat, Split

    static func concat(_ ctx: KernelContext) throws -> CompiledKernel {
        guard ctx.inputCount >= 1 else { throw ctx.fail(.invalidModel, "Concat needs at least one input") }
        let types = try (0..<ctx.inputCount).map { try ctx.input($0) }
        let first = types[0]
        let r = first.shape.count
        guard r >= 1 else { throw ctx.fail(.invalidModel, "cannot concatenate scalars") }
        guard let a0 = ctx.node.int("axis") else { throw ctx.fail(.invalidModel, "Concat needs an axis attribute") }
        let axis = try Shape.axis(a0, rank: r, op: ctx.node.label)
        var outShape = first.shape
        outShape[axis] = 0
        for (i, t) in types.enumerated() {
            guard t.dtype == first.dtype else {
                throw ctx.fail(.invalidModel, "input \(i) has type \(t.dtype), input 0 has \(first.dtype)")
            }
            guard t.shape.count == r, (0..<r).allSatisfy({ $0 == axis || t.shape[$0] == first.shape[$0] }) else {
                throw ctx.fail(.shapeMismatch, "input \(i) has shape \(t.shape), incompatible with \(first.shape) on axis \(axis)")
            }
            outShape[axis] += t.shape[axis]
        }
        try ShapeKernels.checked(outShape, ctx)
        let elem = first.dtype.byteSize
        let outer = Shape.product(Array(first.shape[..<axis]))
        let innerRow = Shape.product(Array(first.shape[(axis + 1)...])) * elem
        let chunks = types.map { $0.shape[axis] * innerRow }
        let inputs = types.count
        return CompiledKernel(outputs: [TensorType(first.dtype, outShape)]) { io in
            var dst = io.raw(output: 0)
            for o in 0..<outer {
                for i in 0..<inputs {
                    let c = chunks[i]
                    if c > 0 {
                        dst.copyMemory(from: io.raw(input: i) + o * c, byteCount: c)
                        dst += c
                    }
                }
            }
        }
    }

    static func split(_ ctx: KernelContext) throws -> CompiledKernel {
        let x = try ctx.input(0)
        let r = x.shape.count
        guard r >= 1 else { throw ctx.fail(.invalidModel, "cannot split a scalar") }
        let axis = try Shape.axis(ctx.node.int("axis", default: 0), rank: r, op: ctx.node.label)
        let d = x.shape[axis]
        let given: [Int]? = ctx.opset >= 13 ? try ctx.constantInts(1, "split") : ctx.node.ints("split")
        let numOutputs = ctx.opset >= 18 ? ctx.node.int("num_outputs") : nil
        if let numOutputs, numOutputs != ctx.node.outputs.count {
            throw ctx.fail(.invalidModel, "num_outputs is \(numOutputs) but the node has \(ctx.node.outputs.count) outputs")
        }
        let outputs = numOutputs ?? ctx.node.outputs.count
        guard outputs >= 1 else { throw ctx.fail(.invalidModel, "Split needs at least one output") }
        var sizes: [Int]
        if let given {
            guard given.count == outputs else {
                throw ctx.fail(.invalidModel, "split has \(given.count) sizes for \(outputs) outputs")
            }
            guard given.allSatisfy({ $0 >= 0 }), given.reduce(0, +) == d else {
                throw ctx.fail(.shapeMismatch, "split sizes \(given) do not add up to dimension \(d) of axis \(axis)")
            }
            sizes = given
        } else if d % outputs == 0 {
            sizes = [Int](repeating: d / outputs, count: outputs)
        } else if ctx.opset >= 18 {
            let chunk = (d + outputs - 1) / outputs
            let last = d - chunk * (outputs - 1)
            guard last >= 0 else {
                throw ctx.fail(.shapeMismatch, "axis \(axis) of size \(d) cannot be split into \(outputs) chunks")
            }
            sizes = [Int](repeating: chunk, count: outputs - 1) + [last]
        } else {
            throw ctx.fail(.shapeMismatch, "axis \(axis) of size \(d) cannot be split evenly into \(outputs) outputs")
        }
        let elem = x.dtype.byteSize
        let outer = Shape.product(Array(x.shape[..<axis]))
        let innerRow = Shape.product(Array(x.shape[(axis + 1)...])) * elem
        let chunks = sizes.map { $0 * innerRow }
        let types = sizes.map { s -> TensorType in
            var shape = x.shape
            shape[axis] = s
            return TensorType(x.dtype, shape)
        }
        let n = sizes.count
        return CompiledKernel(outputs: types) { io in
            var src = io.raw(input: 0)
            for o in 0..<outer {
                for j in 0..<n {
                    let c = chunks[j]
                    if c > 0 {
                        (io.raw(output: j) + o * c).copyMemory(from: src, byteCount: c)
                        src += c
                    }
                }
            }
        }
    }

    // MARK: - Transpose, Tile

    static func transpose(_ ctx: KernelContext) throws -> CompiledKernel {
        let x = try ctx.input(0)
        let r = x.shape.count
        let perm = ctx.node.ints("perm") ?? Array((0..<r).reversed())
        guard perm.count == r, Set(perm) == Set(0..<r) else {
            throw ctx.fail(.invalidModel, "perm \(perm) is not a permutation of 0..<\(r)")
        }
        let xs = Shape.strides(x.shape)
        let outShape = perm.map { x.shape[$0] }
        let plan = StridedCopy(outShape: outShape, srcStrides: perm.map { xs[$0] }, srcOffset: 0, elementSize: x.dtype.byteSize)
        let threads = ctx.threads
        return CompiledKernel(outputs: [TensorType(x.dtype, outShape)]) { io in
            plan.run(src: io.raw(input: 0), dst: io.raw(output: 0), threads: threads)
        }
    }

    static func tile(_ ctx: KernelContext) throws -> CompiledKernel {
        let x = try ctx.input(0)
        let r = x.shape.count
        guard let reps = try ctx.constantInts(1, "repeats") else { throw ctx.fail(.invalidModel, "Tile needs repeats") }
        guard reps.count == r, reps.allSatisfy({ $0 >= 0 }) else {
            throw ctx.fail(.invalidModel, "repeats \(reps) must have one non-negative value per input dim (\(r))")
        }
        var outShape: [Int] = []
        for i in 0..<r {
            let (p, o) = x.shape[i].multipliedReportingOverflow(by: reps[i])
            guard !o else { throw ctx.fail(.limitExceeded, "tiling \(x.shape) by \(reps) overflows") }
            outShape.append(p)
        }
        try ShapeKernels.checked(outShape, ctx)
        // Output viewed as [rep0, d0, rep1, d1, ...]: repeats read with stride 0.
        let xs = Shape.strides(x.shape)
        var dims: [Int] = [], strides: [Int] = []
        for i in 0..<r {
            dims += [reps[i], x.shape[i]]
            strides += [0, xs[i]]
        }
        let plan = StridedCopy(outShape: dims, srcStrides: strides, srcOffset: 0, elementSize: x.dtype.byteSize)
        let threads = ctx.threads
        return CompiledKernel(outputs: [TensorType(x.dtype, outShape)]) { io in
            plan.run(src: io.raw(input: 0), dst: io.raw(output: 0), threads: threads)
        }
    }

    // MARK: - Trilu

    static func trilu(_ ctx: KernelContext) throws -> CompiledKernel {
        let x = try ctx.input(0)
        guard x.shape.count >= 2 else { throw ctx.fail(.invalidModel, "input must have rank >= 2, it has shape \(x.shape)") }
        var k = 0
        if let kv = try ctx.constantInts(1, "k") {
            guard kv.count == 1 else { throw ctx.fail(.invalidModel, "k must be a scalar") }
            k = kv[0]
        }
        let upper = ctx.node.int("upper", default: 1) != 0
        let rows = x.shape[x.shape.count - 2], cols = x.shape[x.shape.count - 1]
        let batch = Shape.product(Array(x.shape.dropLast(2)))
        let elem = x.dtype.byteSize
        let rowBytes = cols * elem
        // Per row i: elements [keepLo, keepHi) are kept, the rest zeroed.
        let bounds: [(Int, Int)] = (0..<rows).map { i in
            // Clamp i + k without overflow for huge k.
            let ik = k > 0 ? (i > Int.max - k ? Int.max : i + k) : (i < Int.min - k ? Int.min : i + k)
            if upper { return (min(max(ik, 0), cols), cols) }
            return (0, ik >= cols ? cols : max(ik + 1, 0))
        }
        return CompiledKernel(outputs: [x]) { io in
            var src = io.raw(input: 0)
            var dst = io.raw(output: 0)
            for _ in 0..<batch {
                for i in 0..<rows {
                    let (lo, hi) = bounds[i]
                    if lo > 0 { memset(dst, 0, lo * elem) }
                    if hi > lo { (dst + lo * elem).copyMemory(from: src + lo * elem, byteCount: (hi - lo) * elem) }
                    if hi < cols { memset(dst + max(hi, lo) * elem, 0, (cols - max(hi, lo)) * elem) }
                    src += rowBytes
                    dst += rowBytes
                }
            }
        }
    }

    // MARK: - Pad

    static func pad(_ ctx: KernelContext) throws -> CompiledKernel {
        let x = try ctx.input(0)
        let r = x.shape.count
        let mode = ctx.node.string("mode") ?? "constant"
        guard ["constant", "reflect", "edge"].contains(mode) else {
            throw ctx.fail(.unsupported, "pad mode '\(mode)' is not supported (constant, reflect, edge are)")
        }
        let elem = x.dtype.byteSize
        var pads: [Int]
        var attrValue: UInt64 = 0
        var valueFromInput = false
        if ctx.opset >= 11 {
            guard let p = try ctx.constantInts(1, "pads") else { throw ctx.fail(.invalidModel, "Pad needs pads") }
            pads = p
            if ctx.has(2) {
                let v = try ctx.input(2)
                guard v.dtype == x.dtype, v.count == 1 else {
                    throw ctx.fail(.invalidModel, "constant_value must be one \(x.dtype) element, it is \(v)")
                }
                valueFromInput = true
            }
            if let axes = try ctx.constantInts(3, "axes") {
                let ax = try ShapeKernels.normalizedAxes(axes, rank: r, ctx)
                guard pads.count == 2 * ax.count else {
                    throw ctx.fail(.invalidModel, "pads has \(pads.count) values for \(ax.count) axes")
                }
                var full = [Int](repeating: 0, count: 2 * r)
                for (i, a) in ax.enumerated() {
                    full[a] = pads[i]
                    full[r + a] = pads[ax.count + i]
                }
                pads = full
            }
        } else {
            guard let p = ctx.node.ints("pads") else { throw ctx.fail(.invalidModel, "Pad needs a pads attribute") }
            pads = p
            let v = ctx.node.float("value", default: 0)
            guard x.dtype == .float32 else { throw ctx.fail(.unsupported, "Pad before opset 11 supports float32 only") }
            attrValue = UInt64(v.bitPattern)
        }
        guard pads.count == 2 * r else { throw ctx.fail(.invalidModel, "pads has \(pads.count) values for rank \(r)") }
        var outShape = x.shape
        for i in 0..<r {
            let (a, o1) = x.shape[i].addingReportingOverflow(pads[i])
            let (b, o2) = a.addingReportingOverflow(pads[r + i])
            guard !o1, !o2 else { throw ctx.fail(.limitExceeded, "pads \(pads) overflow") }
            outShape[i] = b
        }
        guard outShape.allSatisfy({ $0 >= 0 }) else {
            throw ctx.fail(.invalidModel, "pads \(pads) remove more than input \(x.shape) holds")
        }
        let total = try ShapeKernels.checked(outShape, ctx)
        // Nothing is allocated before the output's size is known to be allowed.
        try Shape.checkAllocation(total * elem, "\(ctx.node.label): output \(x.dtype)\(outShape)")
        if total == 0 { return CompiledKernel(outputs: [TensorType(x.dtype, outShape)]) { _ in } }
        // Per level: the output positions [lo, hi) that copy the input in order; the rest are
        // padding, whose source index `PadPlan.source` computes (nothing is sized by the dims
        // here: a pad of 2^28 along one axis costs no plan-time memory or time).
        var lo: [Int] = [], hi: [Int] = []
        for i in 0..<r {
            let n = x.shape[i], before = pads[i], o = outShape[i]
            if mode != "constant", n == 0, o > 0 {
                throw ctx.fail(.invalidModel, "cannot pad an empty axis \(i) in \(mode) mode")
            }
            lo.append(min(max(before, 0), o))
            hi.append(max(min(before + n, o), min(max(before, 0), o)))
        }
        let inStrides = Shape.strides(x.shape).map { $0 * elem }
        let outStrides = Shape.strides(outShape).map { $0 * elem }
        let padMode: PadPlan.Mode = mode == "edge" ? .edge : mode == "reflect" ? .reflect : .constant
        let plan = PadPlan(rank: r, outShape: outShape, inShape: x.shape, before: Array(pads[0..<r]), mode: padMode, lo: lo, hi: hi,
                           inStrides: inStrides, outStrides: outStrides, elem: elem)
        let fixed = attrValue
        return CompiledKernel(outputs: [TensorType(x.dtype, outShape)]) { [valueFromInput] io in
            guard total > 0 else { return }
            var bits = fixed
            if valueFromInput {
                withUnsafeMutableBytes(of: &bits) { $0.baseAddress!.copyMemory(from: io.raw(input: 2), byteCount: elem) }
            }
            if r == 0 {
                io.raw(output: 0).copyMemory(from: io.raw(input: 0), byteCount: elem)
                return
            }
            plan.walk(level: 0, src: io.raw(input: 0), dst: io.raw(output: 0), bits: bits)
        }
    }

    struct PadPlan: Sendable {
        enum Mode { case constant, edge, reflect }
        let rank: Int
        let outShape: [Int], inShape: [Int], before: [Int]
        let mode: Mode
        let lo: [Int], hi: [Int]
        let inStrides: [Int], outStrides: [Int]
        let elem: Int

        /// Input index that output position `j` of axis `level` reads, or -1 for the constant.
        @inline(__always)
        func source(_ level: Int, _ j: Int) -> Int {
            let n = inShape[level]
            var s = j - before[level]
            if s >= 0 && s < n { return s }
            switch mode {
            case .constant: return -1
            case .edge: s = min(max(s, 0), n - 1)
            case .reflect:
                if n == 1 { return 0 }
                let period = 2 * (n - 1)
                s = ((s % period) + period) % period
                if s >= n { s = period - s }
            }
            return s
        }

        func walk(level: Int, src: UnsafeRawPointer, dst: UnsafeMutableRawPointer, bits: UInt64) {
            let o = outShape[level]
            if level == rank - 1 {
                let l = lo[level], h = hi[level]
                for j in 0..<l { edgeElement(j, level, src, dst, bits) }
                if h > l { (dst + l * elem).copyMemory(from: src + source(level, l) * elem, byteCount: (h - l) * elem) }
                for j in h..<o { edgeElement(j, level, src, dst, bits) }
                return
            }
            let os = outStrides[level], ins = inStrides[level]
            for j in 0..<o {
                let s = source(level, j)
                if s < 0 {
                    ShapeKernels.fill(dst + j * os, count: os / elem, elementSize: elem, bits: bits)
                } else {
                    walk(level: level + 1, src: src + s * ins, dst: dst + j * os, bits: bits)
                }
            }
        }

        @inline(__always)
        private func edgeElement(_ j: Int, _ level: Int, _ src: UnsafeRawPointer, _ dst: UnsafeMutableRawPointer, _ bits: UInt64) {
            let s = source(level, j)
            if s < 0 {
                ShapeKernels.fill(dst + j * elem, count: 1, elementSize: elem, bits: bits)
            } else {
                copyBytes(dst + j * elem, src + s * elem, elem)
            }
        }
    }
}

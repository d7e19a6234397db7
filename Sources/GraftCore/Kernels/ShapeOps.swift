#if canImport(Glibc)
import Glibc
#endif

/// Shape-only and data-movement ops: Shape, Size, Constant, Reshape, Flatten, Squeeze,
/// Unsqueeze, Expand, ConstantOfShape, Range. Also home of `StridedCopy`, the strided gather
/// that Expand, Slice, Transpose and Tile share.
package enum ShapeKernels {
    package static let entries: [(String, KernelFactory)] = [
        ("Shape", shape),
        ("Size", size),
        ("Constant", constant),
        ("Reshape", reshape),
        ("Flatten", flatten),
        ("Squeeze", squeeze),
        ("Unsqueeze", unsqueeze),
        ("Expand", expand),
        ("ConstantOfShape", constantOfShape),
        ("Range", range),
    ]

    // MARK: - Shared helpers

    /// A kernel that copies input 0's bytes unchanged into an output of type `out` (same count).
    package static func copyKernel(_ out: TensorType) -> CompiledKernel {
        let bytes = out.byteCount
        return CompiledKernel(outputs: [out]) { io in
            if bytes > 0 { io.raw(output: 0).copyMemory(from: io.raw(input: 0), byteCount: bytes) }
        }
    }

    /// Validates a shape computed by a kernel (non-negative dims, count within limits).
    @discardableResult
    package static func checked(_ shape: [Int], _ ctx: KernelContext, _ what: String = "output") throws -> Int {
        let n = try Shape.count(shape, what: "\(ctx.node.label): \(what)")
        // At least one byte per element: refuse here, before a factory sizes helper tables
        // (Pad's index maps, Conv's im2col buffer) by these dims.
        try ctx.limits.check(.tensorBytes, n, "\(ctx.node.label): \(what) \(shape)", verb: "has", unit: "elements (at least as many bytes)")
        return n
    }

    /// Normalises a list of axes against `rank`, refusing out-of-range and repeated axes.
    package static func normalizedAxes(_ axes: [Int], rank: Int, _ ctx: KernelContext) throws -> [Int] {
        var out: [Int] = []
        for a in axes {
            let n = a < 0 ? a + rank : a
            guard n >= 0, n < rank else { throw ctx.fail(.invalidModel, "axis \(a) is out of range for rank \(rank)") }
            guard !out.contains(n) else { throw ctx.fail(.invalidModel, "axis \(a) is repeated in \(axes)") }
            out.append(n)
        }
        return out
    }

    /// Axes given by input `i` from opset `inputFrom` on, by the `axes` attribute before.
    package static func axesInputOrAttribute(_ ctx: KernelContext, input i: Int, inputFrom: Int) throws -> [Int]? {
        if ctx.opset >= inputFrom {
            return try ctx.constantInts(i, "axes")
        }
        return ctx.node.ints("axes")
    }

    // MARK: - Shape, Size, Constant (folded)

    static func shape(_ ctx: KernelContext) throws -> CompiledKernel {
        let t = try ctx.input(0)
        let r = t.shape.count
        func clamp(_ v: Int) -> Int { min(max(v < 0 ? v + r : v, 0), r) }
        let start = clamp(ctx.node.int("start", default: 0))
        let end = clamp(ctx.node.int("end", default: r))
        let dims = start < end ? Array(t.shape[start..<end]) : []
        return CompiledKernel(folded: [HostTensor(dims.map(Int64.init), shape: [dims.count])])
    }

    static func size(_ ctx: KernelContext) throws -> CompiledKernel {
        let t = try ctx.input(0)
        return CompiledKernel(folded: [HostTensor([Int64(t.count)], shape: [])])
    }

    static func constant(_ ctx: KernelContext) throws -> CompiledKernel {
        let node = ctx.node
        for key in ["value_string", "value_strings"] where node.attributes[key] != nil {
            throw ctx.fail(.unsupported, "string constants (\(key)) are not supported")
        }
        if node.attributes["sparse_value"] != nil {
            throw ctx.fail(.unsupported, "sparse constants (sparse_value) are not supported")
        }
        if let t = node.tensor("value") {
            guard t.dtype.isComputeType else {
                throw ctx.fail(.unsupported, "constant of type \(t.dtype) is not supported")
            }
            return CompiledKernel(folded: [t])
        }
        if case .float(let v)? = node.attributes["value_float"] {
            return CompiledKernel(folded: [HostTensor([v], shape: [])])
        }
        if let v = node.floats("value_floats") {
            return CompiledKernel(folded: [HostTensor(v, shape: [v.count])])
        }
        if let v = node.int("value_int") {
            return CompiledKernel(folded: [HostTensor([Int64(v)], shape: [])])
        }
        if let v = node.ints("value_ints") {
            return CompiledKernel(folded: [HostTensor(v.map(Int64.init), shape: [v.count])])
        }
        throw ctx.fail(.invalidModel, "Constant has no value attribute")
    }

    // MARK: - Reshape family (pure copies)

    static func reshape(_ ctx: KernelContext) throws -> CompiledKernel {
        let x = try ctx.input(0)
        guard let spec = try ctx.constantInts(1, "shape") else {
            throw ctx.fail(.invalidModel, "Reshape needs a shape input")
        }
        let allowZero = ctx.node.int("allowzero", default: 0) != 0
        var out = [Int](repeating: 0, count: spec.count)
        var inferAt: Int? = nil
        var known = 1
        for (i, s) in spec.enumerated() {
            switch s {
            case -1:
                guard inferAt == nil else { throw ctx.fail(.invalidModel, "shape \(spec) has more than one -1") }
                inferAt = i
                continue
            case 0 where !allowZero:
                guard i < x.shape.count else {
                    throw ctx.fail(.invalidModel, "shape \(spec) copies dimension \(i) (0) but the input \(x.shape) has rank \(x.shape.count)")
                }
                out[i] = x.shape[i]
            case ..<0:
                throw ctx.fail(.invalidModel, "shape \(spec) has an invalid dimension \(s)")
            default:
                out[i] = s
            }
            let (p, o) = known.multipliedReportingOverflow(by: out[i])
            guard !o, p <= Shape.maxElements else {
                throw ctx.fail(.limitExceeded, "shape \(spec) has more than 2^40 elements")
            }
            known = p
        }
        if allowZero, inferAt != nil, spec.contains(0) {
            throw ctx.fail(.invalidModel, "shape \(spec) has both -1 and 0 with allowzero=1")
        }
        if let k = inferAt {
            guard known != 0 else {
                throw ctx.fail(.shapeMismatch, "cannot infer the -1 in shape \(spec) for input \(x.shape): the other dimensions multiply to 0")
            }
            guard x.count % known == 0 else {
                throw ctx.fail(.shapeMismatch, "cannot reshape input \(x.shape) (\(x.count) elements) to \(spec)")
            }
            out[k] = x.count / known
        }
        guard try checked(out, ctx) == x.count else {
            throw ctx.fail(.shapeMismatch, "cannot reshape input \(x.shape) (\(x.count) elements) to \(out) (\(Shape.product(out)) elements)")
        }
        return copyKernel(TensorType(x.dtype, out))
    }

    static func flatten(_ ctx: KernelContext) throws -> CompiledKernel {
        let x = try ctx.input(0)
        let r = x.shape.count
        let a0 = ctx.node.int("axis", default: 1)
        let a = a0 < 0 ? a0 + r : a0
        guard a >= 0, a <= r else { throw ctx.fail(.invalidModel, "axis \(a0) is out of range for rank \(r)") }
        let out = [Shape.product(Array(x.shape[..<a])), Shape.product(Array(x.shape[a...]))]
        return copyKernel(TensorType(x.dtype, out))
    }

    static func squeeze(_ ctx: KernelContext) throws -> CompiledKernel {
        let x = try ctx.input(0)
        let r = x.shape.count
        var out: [Int] = []
        if let axes = try axesInputOrAttribute(ctx, input: 1, inputFrom: 13), !axes.isEmpty {
            let norm = try normalizedAxes(axes, rank: r, ctx)
            for a in norm where x.shape[a] != 1 {
                throw ctx.fail(.shapeMismatch, "cannot squeeze axis \(a) of input \(x.shape): its size is \(x.shape[a]), not 1")
            }
            for (i, d) in x.shape.enumerated() where !norm.contains(i) { out.append(d) }
        } else {
            out = x.shape.filter { $0 != 1 }
        }
        return copyKernel(TensorType(x.dtype, out))
    }

    static func unsqueeze(_ ctx: KernelContext) throws -> CompiledKernel {
        let x = try ctx.input(0)
        guard let axes = try axesInputOrAttribute(ctx, input: 1, inputFrom: 13) else {
            throw ctx.fail(.invalidModel, "Unsqueeze needs axes")
        }
        let r = x.shape.count + axes.count
        let norm = try normalizedAxes(axes, rank: r, ctx)
        var out: [Int] = []
        var next = 0
        for i in 0..<r {
            if norm.contains(i) { out.append(1) } else { out.append(x.shape[next]); next += 1 }
        }
        return copyKernel(TensorType(x.dtype, out))
    }

    // MARK: - Expand

    static func expand(_ ctx: KernelContext) throws -> CompiledKernel {
        let x = try ctx.input(0)
        guard let spec = try ctx.constantInts(1, "shape") else { throw ctx.fail(.invalidModel, "Expand needs a shape input") }
        try checked(spec, ctx, "shape")
        let out: [Int]
        do { out = try Shape.broadcast(x.shape, spec) } catch {
            throw ctx.fail(.shapeMismatch, "input \(x.shape) cannot be expanded to \(spec)")
        }
        try checked(out, ctx)
        let plan = StridedCopy(outShape: out, srcStrides: Shape.broadcastStrides(x.shape, to: out), srcOffset: 0,
                               elementSize: x.dtype.byteSize)
        let threads = ctx.threads
        return CompiledKernel(outputs: [TensorType(x.dtype, out)]) { io in
            plan.run(src: io.raw(input: 0), dst: io.raw(output: 0), threads: threads)
        }
    }

    // MARK: - ConstantOfShape, Range

    static func constantOfShape(_ ctx: KernelContext) throws -> CompiledKernel {
        guard let shape = try ctx.constantInts(0, "shape") else { throw ctx.fail(.invalidModel, "ConstantOfShape needs a shape input") }
        try checked(shape, ctx)
        var dtype = DType.float32
        var pattern: UInt64 = 0
        if let v = ctx.node.tensor("value") {
            guard v.count == 1 else { throw ctx.fail(.invalidModel, "value must have exactly one element, it has \(v.count)") }
            guard v.dtype.isComputeType else { throw ctx.fail(.unsupported, "value of type \(v.dtype) is not supported") }
            dtype = v.dtype
            withUnsafeMutableBytes(of: &pattern) { $0.baseAddress!.copyMemory(from: v.raw, byteCount: v.dtype.byteSize) }
        }
        let out = TensorType(dtype, shape)
        let n = out.count
        let elem = dtype.byteSize
        let bits = pattern
        return CompiledKernel(outputs: [out]) { io in
            fill(io.raw(output: 0), count: n, elementSize: elem, bits: bits)
        }
    }

    /// Fills `count` elements of `elementSize` bytes with the low bytes of `bits`.
    @inline(__always)
    package static func fill(_ dst: UnsafeMutableRawPointer, count n: Int, elementSize: Int, bits: UInt64) {
        guard n > 0 else { return }
        if bits == 0 { memset(dst, 0, n * elementSize); return }
        switch elementSize {
        case 1: memset(dst, Int32(bits & 0xff), n)
        case 2: dst.assumingMemoryBound(to: UInt16.self).update(repeating: UInt16(truncatingIfNeeded: bits), count: n)
        case 4: dst.assumingMemoryBound(to: UInt32.self).update(repeating: UInt32(truncatingIfNeeded: bits), count: n)
        default: dst.assumingMemoryBound(to: UInt64.self).update(repeating: bits, count: n)
        }
    }

    static func range(_ ctx: KernelContext) throws -> CompiledKernel {
        let t = try ctx.require(0, [.float32, .int64, .int32])
        for i in 1...2 {
            guard try ctx.input(i).dtype == t.dtype else {
                throw ctx.fail(.invalidModel, "start, limit and delta must have the same type")
            }
        }
        let names = ["start", "limit", "delta"]
        let values = try (0..<3).map { i -> HostTensor in
            let v = try ctx.constant(i, names[i])
            guard v.count == 1 else { throw ctx.fail(.invalidModel, "\(names[i]) must be a scalar, it has shape \(v.shape)") }
            return v
        }
        func count(_ start: Double, _ limit: Double, _ delta: Double) throws -> Int {
            guard delta != 0 else { throw ctx.fail(.invalidModel, "delta is 0") }
            let c = ((limit - start) / delta).rounded(.up)
            guard !c.isNaN else { throw ctx.fail(.invalidModel, "Range(\(start), \(limit), \(delta)) has no defined length") }
            if c <= 0 { return 0 }
            guard c <= Double(Shape.maxElements) else { throw ctx.fail(.limitExceeded, "Range(\(start), \(limit), \(delta)) has more than 2^40 elements") }
            try ctx.checkAllocation(Int(c) * t.dtype.byteSize, "\(ctx.node.label): Range(\(start), \(limit), \(delta)) of \(t.dtype)")
            return Int(c)
        }
        switch t.dtype {
        case .float32:
            let (s, l, d) = (values[0].pointer(Float.self)[0], values[1].pointer(Float.self)[0], values[2].pointer(Float.self)[0])
            let n = try count(Double(s), Double(l), Double(d))
            let out = HostTensor(zeros: .float32, shape: [n])
            let p = out.pointer(Float.self)
            for i in 0..<n { p[i] = s + Float(i) * d }
            return CompiledKernel(folded: [out])
        case .int64:
            let (s, l, d) = (values[0].pointer(Int64.self)[0], values[1].pointer(Int64.self)[0], values[2].pointer(Int64.self)[0])
            let n = try intRangeCount(Int(s), Int(l), Int(d), ctx)
            try ctx.checkAllocation(n * 8, "\(ctx.node.label): Range(\(s), \(l), \(d)) of int64")
            let out = HostTensor(zeros: .int64, shape: [n])
            let p = out.pointer(Int64.self)
            for i in 0..<n { p[i] = s &+ Int64(i) &* d }
            return CompiledKernel(folded: [out])
        default:
            let (s, l, d) = (values[0].pointer(Int32.self)[0], values[1].pointer(Int32.self)[0], values[2].pointer(Int32.self)[0])
            let n = try intRangeCount(Int(s), Int(l), Int(d), ctx)
            try ctx.checkAllocation(n * 4, "\(ctx.node.label): Range(\(s), \(l), \(d)) of int32")
            let out = HostTensor(zeros: .int32, shape: [n])
            let p = out.pointer(Int32.self)
            for i in 0..<n { p[i] = s &+ Int32(truncatingIfNeeded: i) &* d }
            return CompiledKernel(folded: [out])
        }
    }

    /// `max(ceil((limit - start) / delta), 0)` in exact integer arithmetic.
    static func intRangeCount(_ s: Int, _ l: Int, _ d: Int, _ ctx: KernelContext) throws -> Int {
        guard d != 0 else { throw ctx.fail(.invalidModel, "delta is 0") }
        let (span, o) = l.subtractingReportingOverflow(s)
        guard !o else { throw ctx.fail(.limitExceeded, "Range(\(s), \(l), \(d)) is too long") }
        // ceil(span / d) for any signs.
        let (q0, o2) = span.dividedReportingOverflow(by: d)
        guard !o2 else { throw ctx.fail(.limitExceeded, "Range(\(s), \(l), \(d)) is too long") }
        var q = q0
        if span % d != 0, (span > 0) == (d > 0) { q += 1 }
        let n = max(q, 0)
        guard n <= Shape.maxElements else { throw ctx.fail(.limitExceeded, "Range(\(s), \(l), \(d)) has more than 2^40 elements") }
        return n
    }
}

// MARK: - StridedCopy

/// Copies a strided view of a source tensor into a dense row-major output: the output element
/// at coordinates `c` comes from byte `srcOffset + sum(c[i] * srcStrides[i])` of the source.
/// Strides may be 0 (broadcast) or negative (reversed slices). Everything is precomputed at
/// plan time; `run` allocates nothing. Dims are coalesced (size-1 dims dropped, adjacent dims
/// merged when the source is contiguous across them) so that the innermost level is as long
/// as possible, then the innermost level is one of:
///  - a contiguous run → one memcpy (Reshape-like moves, Slice of rows, the attention
///    permutation (0,2,1,3), Concat-like Tile);
///  - a broadcast → fill with one element (Expand);
///  - a 2-D transpose (the source is contiguous along the second-to-last output dim) →
///    cache-blocked tile transpose (last-two-dim swaps);
///  - otherwise an element-by-element gather.
package struct StridedCopy: Sendable {
    enum Inner: Sendable { case contiguous, broadcast, transpose, gather }

    let dims: [Int]
    let strides: [Int] // bytes
    let offset: Int // bytes
    let elem: Int
    let total: Int
    let inner: Inner
    /// Number of leading levels walked by the recursion (the rest are handled by `inner`).
    let outerLevels: Int

    package init(outShape: [Int], srcStrides: [Int], srcOffset: Int, elementSize: Int) {
        precondition(outShape.count == srcStrides.count)
        elem = elementSize
        total = Shape.product(outShape)
        offset = srcOffset * elementSize
        // Coalesce from the innermost dim outwards.
        var d: [Int] = []
        var s: [Int] = []
        for i in stride(from: outShape.count - 1, through: 0, by: -1) where outShape[i] != 1 {
            let stride = srcStrides[i] * elementSize
            if let ld = d.last, let ls = s.last, stride == ls * ld {
                d[d.count - 1] = ld * outShape[i]
            } else {
                d.append(outShape[i])
                s.append(stride)
            }
        }
        if d.isEmpty {
            d = [1]
            s = [elementSize]
        }
        d.reverse()
        s.reverse()
        dims = d
        strides = s
        let k = d.count
        if s[k - 1] == elementSize {
            inner = .contiguous
            outerLevels = k - 1
        } else if s[k - 1] == 0 {
            inner = .broadcast
            outerLevels = k - 1
        } else if k >= 2, s[k - 2] == elementSize, d[k - 1] >= 4, d[k - 2] >= 4, [1, 2, 4, 8].contains(elementSize) {
            inner = .transpose
            outerLevels = k - 2
        } else {
            inner = .gather
            outerLevels = k - 1
        }
    }

    /// Bytes below which a copy stays on one thread (dispatch costs more than it saves).
    static let parallelBytes = 256 * 1024

    /// Copies the view of `src` into `dst` (which receives `total` elements). With
    /// `threads > 1`, large copies split the outermost level across threads.
    package func run(src: UnsafeRawPointer, dst: UnsafeMutableRawPointer, threads: Int = 1) {
        guard total > 0 else { return }
        dims.withUnsafeBufferPointer { d in
            strides.withUnsafeBufferPointer { s in
                let d = d.baseAddress!, s = s.baseAddress!
                let base = src + offset
                if threads > 1, outerLevels >= 1, total * elem >= Self.parallelBytes, d[0] >= 2 {
                    let block = total / d[0] * elem
                    parallelFor(d[0], threads: threads) { range in
                        for i in range {
                            _ = walk(level: 1, src: base + i * s[0], dst: dst + i * block, d: d, s: s)
                        }
                    }
                } else {
                    _ = walk(level: 0, src: base, dst: dst, d: d, s: s)
                }
            }
        }
    }

    private func walk(level: Int, src: UnsafeRawPointer, dst: UnsafeMutableRawPointer,
                      d: UnsafePointer<Int>, s: UnsafePointer<Int>) -> UnsafeMutableRawPointer {
        if level < outerLevels {
            var out = dst
            var p = src
            let n = d[level], st = s[level]
            for _ in 0..<n {
                out = walk(level: level + 1, src: p, dst: out, d: d, s: s)
                p += st
            }
            return out
        }
        let n = d[level]
        switch inner {
        case .contiguous:
            let bytes = n * elem
            dst.copyMemory(from: src, byteCount: bytes)
            return dst + bytes
        case .broadcast:
            switch elem {
            case 1: memset(dst, Int32(src.load(as: UInt8.self)), n)
            case 2: dst.assumingMemoryBound(to: UInt16.self).update(repeating: src.loadUnaligned(as: UInt16.self), count: n)
            case 4: dst.assumingMemoryBound(to: UInt32.self).update(repeating: src.loadUnaligned(as: UInt32.self), count: n)
            case 8: dst.assumingMemoryBound(to: UInt64.self).update(repeating: src.loadUnaligned(as: UInt64.self), count: n)
            default: for i in 0..<n { (dst + i * elem).copyMemory(from: src, byteCount: elem) }
            }
            return dst + n * elem
        case .gather:
            let st = s[level]
            switch elem {
            case 1: Self.gather(UInt8.self, src, st, dst, n)
            case 2: Self.gather(UInt16.self, src, st, dst, n)
            case 4: Self.gather(UInt32.self, src, st, dst, n)
            case 8: Self.gather(UInt64.self, src, st, dst, n)
            default: for i in 0..<n { (dst + i * elem).copyMemory(from: src + i * st, byteCount: elem) }
            }
            return dst + n * elem
        case .transpose:
            let rows = n, cols = d[level + 1], ld = s[level + 1]
            switch elem {
            case 1: Self.transpose(UInt8.self, src, ld, dst, rows, cols)
            case 2: Self.transpose(UInt16.self, src, ld, dst, rows, cols)
            case 4: Self.transpose(UInt32.self, src, ld, dst, rows, cols)
            default: Self.transpose(UInt64.self, src, ld, dst, rows, cols)
            }
            return dst + rows * cols * elem
        }
    }

    @inline(__always)
    private static func gather<T>(_: T.Type, _ src: UnsafeRawPointer, _ stride: Int, _ dst: UnsafeMutableRawPointer, _ n: Int) {
        let o = dst.assumingMemoryBound(to: T.self)
        var p = src
        for i in 0..<n {
            o[i] = p.loadUnaligned(as: T.self)
            p += stride
        }
    }

    /// out[r][c] = src[r * elem + c * ld] for r < rows, c < cols, in 32x32 tiles.
    @inline(__always)
    private static func transpose<T>(_: T.Type, _ src: UnsafeRawPointer, _ ld: Int, _ dst: UnsafeMutableRawPointer,
                                     _ rows: Int, _ cols: Int) {
        let o = dst.assumingMemoryBound(to: T.self)
        let tile = 32
        var r0 = 0
        while r0 < rows {
            let r1 = min(r0 + tile, rows)
            var c0 = 0
            while c0 < cols {
                let c1 = min(c0 + tile, cols)
                for r in r0..<r1 {
                    let row = o + r * cols
                    var p = src + r * MemoryLayout<T>.stride + c0 * ld
                    for c in c0..<c1 {
                        row[c] = p.loadUnaligned(as: T.self)
                        p += ld
                    }
                }
                c0 = c1
            }
            r0 = r1
        }
    }
}

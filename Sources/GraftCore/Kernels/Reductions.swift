#if canImport(Glibc)
import Glibc
#endif
import CMath

/// Reductions over axes (ReduceSum/Mean/Max/Min/Prod), ArgMax, Softmax, LogSoftmax, CumSum.
package enum ReductionKernels {
    package static let entries: [(String, KernelFactory)] = [
        ("ReduceSum", { try reduce($0, .sum) }),
        ("ReduceMean", { try reduce($0, .mean) }),
        ("ReduceMax", { try reduce($0, .max) }),
        ("ReduceMin", { try reduce($0, .min) }),
        ("ReduceProd", { try reduce($0, .prod) }),
        ("ArgMax", argMax),
        ("Softmax", { try softmax($0, log: false) }),
        ("LogSoftmax", { try softmax($0, log: true) }),
        ("CumSum", cumSum),
    ]

    typealias BroadcastPlan = ElementwiseKernels.BroadcastPlan
    static let grain = 32768

    // MARK: - Element arithmetic for reductions

    /// What a reduction needs of an element type. Integer arithmetic wraps, as in C.
    protocol Element: Comparable, SendableMetatype {
        static var reduceLowest: Self { get }
        static var reduceHighest: Self { get }
        static var reduceZero: Self { get }
        static var reduceOne: Self { get }
        static func reduceAdd(_ a: Self, _ b: Self) -> Self
        static func reduceMul(_ a: Self, _ b: Self) -> Self
        /// `sum / n` (integers truncate; n == 0 gives 0 for integers, NaN for floats).
        static func reduceMean(_ sum: Self, _ n: Int) -> Self
    }

    /// A reduction: starting value, how to fold one element in, and how to fold a contiguous run.
    protocol Reducer: SendableMetatype {
        associatedtype T: Element
        static var initial: T { get }
        static func combine(_ acc: T, _ v: T) -> T
        static func row(_ p: UnsafePointer<T>, _ n: Int) -> T
    }

    enum SumR<T: Element>: Reducer {
        static var initial: T { T.reduceZero }
        @inline(__always) static func combine(_ acc: T, _ v: T) -> T { T.reduceAdd(acc, v) }
        @inline(__always) static func row(_ p: UnsafePointer<T>, _ n: Int) -> T {
            if T.self == Float.self {
                return unsafeBitCast(sumFloats(UnsafeRawPointer(p).assumingMemoryBound(to: Float.self), n), to: T.self)
            }
            var s = T.reduceZero
            for j in 0..<n { s = T.reduceAdd(s, p[j]) }
            return s
        }
    }

    enum ProdR<T: Element>: Reducer {
        static var initial: T { T.reduceOne }
        @inline(__always) static func combine(_ acc: T, _ v: T) -> T { T.reduceMul(acc, v) }
        @inline(__always) static func row(_ p: UnsafePointer<T>, _ n: Int) -> T {
            var s = T.reduceOne
            for j in 0..<n { s = T.reduceMul(s, p[j]) }
            return s
        }
    }

    /// Max and min propagate NaN (`v != v`), like PyTorch.
    enum MaxR<T: Element>: Reducer {
        static var initial: T { T.reduceLowest }
        @inline(__always) static func combine(_ acc: T, _ v: T) -> T { (v > acc || v != v) ? v : acc }
        @inline(__always) static func row(_ p: UnsafePointer<T>, _ n: Int) -> T {
            var m = T.reduceLowest
            for j in 0..<n { m = combine(m, p[j]) }
            return m
        }
    }

    enum MinR<T: Element>: Reducer {
        static var initial: T { T.reduceHighest }
        @inline(__always) static func combine(_ acc: T, _ v: T) -> T { (v < acc || v != v) ? v : acc }
        @inline(__always) static func row(_ p: UnsafePointer<T>, _ n: Int) -> T {
            var m = T.reduceHighest
            for j in 0..<n { m = combine(m, p[j]) }
            return m
        }
    }

    /// Sum of `n` floats with eight independent lanes (vectorises, and rounds less than one
    /// running sum).
    @inline(__always)
    static func sumFloats(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = SIMD8<Float>(repeating: 0)
        var j = 0
        let raw = UnsafeRawPointer(p)
        while j + 8 <= n {
            acc += raw.loadUnaligned(fromByteOffset: j * 4, as: SIMD8<Float>.self)
            j += 8
        }
        var s = acc.sum()
        while j < n { s += p[j]; j += 1 }
        return s
    }

    // MARK: - ReduceSum / Mean / Max / Min / Prod

    enum ReduceOp { case sum, mean, max, min, prod }

    static func reduce(_ ctx: KernelContext, _ op: ReduceOp) throws -> CompiledKernel {
        let a = try ctx.require(0, [.float32, .int64, .int32])
        let rank = a.shape.count
        var axes: [Int] = []
        if ctx.has(1) {
            axes = try ctx.constantInts(1, "axes") ?? []
        } else if let attr = ctx.node.ints("axes") {
            axes = attr
        }
        let keep = ctx.node.int("keepdims", default: 1) != 0
        if axes.isEmpty {
            if ctx.node.int("noop_with_empty_axes", default: 0) != 0 {
                let bytes = a.byteCount
                return CompiledKernel(outputs: [a]) { io in
                    if bytes > 0 { io.raw(output: 0).copyMemory(from: io.raw(input: 0), byteCount: bytes) }
                }
            }
            axes = Array(0..<rank)
        }
        var reduced = [Bool](repeating: false, count: rank)
        for ax in axes {
            let k = try Shape.axis(ax, rank: rank, op: ctx.node.label)
            guard rank > 0 else { break } // a scalar reduces to itself
            guard !reduced[k] else { throw ctx.fail(.invalidModel, "axis \(ax) is listed twice in axes \(axes)") }
            reduced[k] = true
        }
        var keepShape = a.shape
        var outShape: [Int] = []
        for k in 0..<rank {
            if reduced[k] { keepShape[k] = 1; if keep { outShape.append(1) } } else { outShape.append(a.shape[k]) }
        }
        let outType = TensorType(a.dtype, outShape)
        switch (a.dtype, op) {
        case (.float32, .sum): return reduceKernel(SumR<Float>.self, a.shape, keepShape, outType, mean: false, ctx.threads)
        case (.float32, .mean): return reduceKernel(SumR<Float>.self, a.shape, keepShape, outType, mean: true, ctx.threads)
        case (.float32, .max): return reduceKernel(MaxR<Float>.self, a.shape, keepShape, outType, mean: false, ctx.threads)
        case (.float32, .min): return reduceKernel(MinR<Float>.self, a.shape, keepShape, outType, mean: false, ctx.threads)
        case (.float32, .prod): return reduceKernel(ProdR<Float>.self, a.shape, keepShape, outType, mean: false, ctx.threads)
        case (.int64, .sum): return reduceKernel(SumR<Int64>.self, a.shape, keepShape, outType, mean: false, ctx.threads)
        case (.int64, .mean): return reduceKernel(SumR<Int64>.self, a.shape, keepShape, outType, mean: true, ctx.threads)
        case (.int64, .max): return reduceKernel(MaxR<Int64>.self, a.shape, keepShape, outType, mean: false, ctx.threads)
        case (.int64, .min): return reduceKernel(MinR<Int64>.self, a.shape, keepShape, outType, mean: false, ctx.threads)
        case (.int64, .prod): return reduceKernel(ProdR<Int64>.self, a.shape, keepShape, outType, mean: false, ctx.threads)
        case (_, .sum): return reduceKernel(SumR<Int32>.self, a.shape, keepShape, outType, mean: false, ctx.threads)
        case (_, .mean): return reduceKernel(SumR<Int32>.self, a.shape, keepShape, outType, mean: true, ctx.threads)
        case (_, .max): return reduceKernel(MaxR<Int32>.self, a.shape, keepShape, outType, mean: false, ctx.threads)
        case (_, .min): return reduceKernel(MinR<Int32>.self, a.shape, keepShape, outType, mean: false, ctx.threads)
        case (_, .prod): return reduceKernel(ProdR<Int32>.self, a.shape, keepShape, outType, mean: false, ctx.threads)
        }
    }

    /// `keepShape` is the input shape with reduced dims set to 1.
    static func reduceKernel<R: Reducer>(_: R.Type, _ inShape: [Int], _ keepShape: [Int], _ outType: TensorType,
                                         mean: Bool, _ threads: Int) -> CompiledKernel {
        let outCount = outType.count
        let inCount = Shape.product(inShape)
        let reduceCount = outCount == 0 ? 0 : inCount / outCount
        if outCount == 0 { return CompiledKernel(outputs: [outType]) { _ in } }
        // Walk the input with the output read as broadcast over it: stride 0 on reduced dims.
        let plan = BroadcastPlan(out: inShape, operands: [inShape, keepShape])
        // Fast path: the reduced dims are exactly the innermost ones (after merging), so each
        // output element is one contiguous run of the input.
        let lastOnly = inCount == 0 || plan.rows == outCount && (plan.innerStride1 == 0 || plan.inner == 1)
        if lastOnly {
            let n = reduceCount
            return CompiledKernel(outputs: [outType]) { io in
                let x = io.input(0, R.T.self), y = io.output(0, R.T.self)
                parallelFor(outCount, threads: threads, minPerThread: max(1, grain / max(n, 1))) { range in
                    for r in range {
                        let v = R.row(x + r * n, n)
                        y[r] = mean ? R.T.reduceMean(v, n) : v
                    }
                }
            }
        }
        return CompiledKernel(outputs: [outType]) { io in
            let x = io.input(0, R.T.self), y = io.output(0, R.T.self)
            y.initialize(repeating: R.initial, count: outCount)
            let n = plan.inner
            if plan.innerStride1 == 0 {
                plan.forRows(0..<plan.rows) { _, ox, oy, _ in
                    y[oy] = R.combine(y[oy], R.row(x + ox, n))
                }
            } else {
                plan.forRows(0..<plan.rows) { _, ox, oy, _ in
                    let px = x + ox, py = y + oy
                    for j in 0..<n { py[j] = R.combine(py[j], px[j]) }
                }
            }
            if mean {
                for i in 0..<outCount { y[i] = R.T.reduceMean(y[i], reduceCount) }
            }
        }
    }

    // MARK: - ArgMax

    static func argMax(_ ctx: KernelContext) throws -> CompiledKernel {
        let a = try ctx.require(0, [.float32, .int64, .int32])
        let rank = a.shape.count
        let axis = try Shape.axis(ctx.node.int("axis", default: 0), rank: rank, op: ctx.node.label)
        let keep = ctx.node.int("keepdims", default: 1) != 0
        let last = ctx.node.int("select_last_index", default: 0) != 0
        let outer = Shape.product(Array(a.shape.prefix(axis)))
        let n = rank == 0 ? 1 : a.shape[axis]
        let inner = rank == 0 ? 1 : Shape.product(Array(a.shape.suffix(from: axis + 1)))
        var outShape = a.shape
        if rank > 0 { if keep { outShape[axis] = 1 } else { outShape.remove(at: axis) } }
        let outCount = outer * inner
        if n == 0 && outCount > 0 { throw ctx.fail(.invalidModel, "cannot take ArgMax over axis \(axis) of length 0") }
        let threads = ctx.threads
        let out = [TensorType(.int64, outShape)]
        switch a.dtype {
        case .float32:
            return CompiledKernel(outputs: out) { io in argMaxRun(io.input(0, Float.self), io.output(0, Int64.self), outer, n, inner, last, threads) }
        case .int64:
            return CompiledKernel(outputs: out) { io in argMaxRun(io.input(0, Int64.self), io.output(0, Int64.self), outer, n, inner, last, threads) }
        default:
            return CompiledKernel(outputs: out) { io in argMaxRun(io.input(0, Int32.self), io.output(0, Int64.self), outer, n, inner, last, threads) }
        }
    }

    /// NaN counts as the largest value (PyTorch); ties go to the first index, or the last
    /// with `select_last_index`.
    @inline(__always)
    static func argMaxRun<T: Comparable>(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<Int64>,
                                         _ outer: Int, _ n: Int, _ inner: Int, _ last: Bool, _ threads: Int) {
        @inline(__always) func better(_ v: T, _ best: T) -> Bool {
            last ? (v >= best || v != v) : (v > best || (v != v && best == best))
        }
        if inner == 1 {
            parallelFor(outer, threads: threads, minPerThread: max(1, grain / max(n, 1))) { range in
                for o in range {
                    let p = x + o * n
                    var bi = 0
                    var best = p[0]
                    for k in 1..<max(n, 1) where better(p[k], best) { best = p[k]; bi = k }
                    y[o] = Int64(bi)
                }
            }
            return
        }
        // Strided: keep the running best index in the output row and compare against it.
        parallelFor(outer, threads: threads, minPerThread: max(1, grain / max(n * inner, 1))) { range in
            for o in range {
                let p = x + o * n * inner
                let q = y + o * inner
                q.initialize(repeating: 0, count: inner)
                for k in 1..<max(n, 1) {
                    let row = p + k * inner
                    for i in 0..<inner where better(row[i], p[Int(q[i]) * inner + i]) { q[i] = Int64(k) }
                }
            }
        }
    }

    // MARK: - Softmax / LogSoftmax

    static func softmax(_ ctx: KernelContext, log: Bool) throws -> CompiledKernel {
        let a = try ctx.require(0, [.float32])
        let rank = a.shape.count
        let threads = ctx.threads
        let outer: Int, n: Int, inner: Int
        if ctx.opset >= 13 {
            let axis = try Shape.axis(ctx.node.int("axis", default: -1), rank: rank, op: ctx.node.label)
            outer = Shape.product(Array(a.shape.prefix(axis)))
            n = rank == 0 ? 1 : a.shape[axis]
            inner = rank == 0 ? 1 : Shape.product(Array(a.shape.suffix(from: axis + 1)))
        } else {
            // Opsets 1-12: the input is coerced to 2-D [prod(dims[..<axis]), prod(dims[axis...])].
            var axis = ctx.node.int("axis", default: 1)
            if axis < 0 { axis += rank }
            guard axis >= 0, axis <= rank else {
                throw ctx.fail(.invalidModel, "axis \(ctx.node.int("axis", default: 1)) is out of range for rank \(rank)")
            }
            outer = Shape.product(Array(a.shape.prefix(axis)))
            n = Shape.product(Array(a.shape.suffix(from: axis)))
            inner = 1
        }
        if inner == 1 {
            return CompiledKernel(outputs: [a]) { io in
                let x = io.input(0, Float.self), y = io.output(0, Float.self)
                parallelFor(outer, threads: threads, minPerThread: max(1, 4096 / max(n, 1))) { range in
                    if log {
                        for r in range { softmaxRow(x + r * n, y + r * n, n, 1, true) }
                    } else {
                        for r in range { vmath_softmax_row(x + r * n, y + r * n, n) } // CMath: vector exp
                    }
                }
            }
        }
        return CompiledKernel(outputs: [a]) { io in
            let x = io.input(0, Float.self), y = io.output(0, Float.self)
            parallelFor(outer * inner, threads: threads, minPerThread: max(1, 4096 / max(n, 1))) { range in
                for c in range {
                    let o = c / inner, i = c % inner
                    let base = o * n * inner + i
                    softmaxRow(x + base, y + base, n, inner, log)
                }
            }
        }
    }

    /// Numerically stable softmax of `n` elements spaced `stride` apart. A row that is all
    /// -inf gives NaN, as the formula (and ONNX Runtime, PyTorch) do.
    @inline(__always)
    static func softmaxRow(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int, _ stride: Int, _ log: Bool) {
        var m = -Float.infinity
        for j in 0..<n { let v = x[j * stride]; if v > m { m = v } }
        var s: Float = 0
        if log {
            for j in 0..<n { s += expf(x[j * stride] - m) }
            let ls = logf(s)
            for j in 0..<n { y[j * stride] = (x[j * stride] - m) - ls }
        } else {
            for j in 0..<n {
                let e = expf(x[j * stride] - m)
                y[j * stride] = e
                s += e
            }
            let inv = 1 / s
            for j in 0..<n { y[j * stride] *= inv }
        }
    }

    // MARK: - CumSum

    static func cumSum(_ ctx: KernelContext) throws -> CompiledKernel {
        let a = try ctx.require(0, [.float32, .int64, .int32])
        try ctx.require(1, [.int64, .int32])
        let axisValues = try ctx.constant(1, "axis").integers()
        guard axisValues.count == 1 else { throw ctx.fail(.invalidModel, "axis must be a scalar, got \(axisValues.count) values") }
        let rank = a.shape.count
        guard rank > 0 else { throw ctx.fail(.invalidModel, "input must have rank at least 1") }
        let axis = try Shape.axis(axisValues[0], rank: rank, op: ctx.node.label)
        let exclusive = ctx.node.int("exclusive", default: 0) != 0
        let reverse = ctx.node.int("reverse", default: 0) != 0
        let outer = Shape.product(Array(a.shape.prefix(axis)))
        let n = a.shape[axis]
        let inner = Shape.product(Array(a.shape.suffix(from: axis + 1)))
        let threads = ctx.threads
        switch a.dtype {
        case .float32:
            return CompiledKernel(outputs: [a]) { io in
                cumSumRun(io.input(0, Float.self), io.output(0, Float.self), outer, n, inner, exclusive, reverse, threads, 0) { $0 + $1 }
            }
        case .int64:
            return CompiledKernel(outputs: [a]) { io in
                cumSumRun(io.input(0, Int64.self), io.output(0, Int64.self), outer, n, inner, exclusive, reverse, threads, 0) { $0 &+ $1 }
            }
        default:
            return CompiledKernel(outputs: [a]) { io in
                cumSumRun(io.input(0, Int32.self), io.output(0, Int32.self), outer, n, inner, exclusive, reverse, threads, 0) { $0 &+ $1 }
            }
        }
    }

    /// Running sums along the middle dim of `[outer, n, inner]`, using the previous output row
    /// as the accumulator.
    @inline(__always)
    static func cumSumRun<T>(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, _ outer: Int, _ n: Int, _ inner: Int,
                             _ exclusive: Bool, _ reverse: Bool, _ threads: Int, _ zero: T, _ add: (T, T) -> T) {
        guard n > 0, inner > 0 else { return }
        parallelFor(outer, threads: threads, minPerThread: max(1, grain / max(n * inner, 1))) { range in
            for o in range {
                let px = x + o * n * inner, py = y + o * n * inner
                for s in 0..<n {
                    let k = reverse ? n - 1 - s : s
                    let prev = reverse ? k + 1 : k - 1
                    let dst = py + k * inner
                    if s == 0 {
                        if exclusive { dst.initialize(repeating: zero, count: inner) } else {
                            for i in 0..<inner { dst[i] = px[k * inner + i] }
                        }
                    } else {
                        let src = py + prev * inner
                        let add1 = px + (exclusive ? prev : k) * inner
                        for i in 0..<inner { dst[i] = add(src[i], add1[i]) }
                    }
                }
            }
        }
    }
}

extension Float: ReductionKernels.Element {
    static var reduceLowest: Float { -.infinity }
    static var reduceHighest: Float { .infinity }
    static var reduceZero: Float { 0 }
    static var reduceOne: Float { 1 }
    @inline(__always) static func reduceAdd(_ a: Float, _ b: Float) -> Float { a + b }
    @inline(__always) static func reduceMul(_ a: Float, _ b: Float) -> Float { a * b }
    @inline(__always) static func reduceMean(_ sum: Float, _ n: Int) -> Float { sum / Float(n) }
}

extension Int64: ReductionKernels.Element {
    static var reduceLowest: Int64 { .min }
    static var reduceHighest: Int64 { .max }
    static var reduceZero: Int64 { 0 }
    static var reduceOne: Int64 { 1 }
    @inline(__always) static func reduceAdd(_ a: Int64, _ b: Int64) -> Int64 { a &+ b }
    @inline(__always) static func reduceMul(_ a: Int64, _ b: Int64) -> Int64 { a &* b }
    @inline(__always) static func reduceMean(_ sum: Int64, _ n: Int) -> Int64 { n == 0 ? 0 : sum / Int64(n) }
}

extension Int32: ReductionKernels.Element {
    static var reduceLowest: Int32 { .min }
    static var reduceHighest: Int32 { .max }
    static var reduceZero: Int32 { 0 }
    static var reduceOne: Int32 { 1 }
    @inline(__always) static func reduceAdd(_ a: Int32, _ b: Int32) -> Int32 { a &+ b }
    @inline(__always) static func reduceMul(_ a: Int32, _ b: Int32) -> Int32 { a &* b }
    @inline(__always) static func reduceMean(_ sum: Int32, _ n: Int) -> Int32 { n == 0 ? 0 : Int32(truncatingIfNeeded: Int(sum) / n) }
}

#if canImport(Glibc)
import Glibc
#endif
import CMath

/// Elementwise operators: broadcasting binary arithmetic and comparisons, logical ops, Where,
/// unary math, Clip, Cast, Identity and Dropout (inference form).
package enum ElementwiseKernels {
    package static let entries: [(String, KernelFactory)] = [
        ("Add", { try arithmetic($0, .add) }),
        ("Sub", { try arithmetic($0, .sub) }),
        ("Mul", { try arithmetic($0, .mul) }),
        ("Div", { try arithmetic($0, .div) }),
        ("Pow", pow),
        ("Max", { try minMax($0, isMax: true) }),
        ("Min", { try minMax($0, isMax: false) }),
        ("Equal", { try compare($0, .equal) }),
        ("Less", { try compare($0, .less) }),
        ("LessOrEqual", { try compare($0, .lessOrEqual) }),
        ("Greater", { try compare($0, .greater) }),
        ("GreaterOrEqual", { try compare($0, .greaterOrEqual) }),
        ("And", { try logical($0, .and) }),
        ("Or", { try logical($0, .or) }),
        ("Xor", { try logical($0, .xor) }),
        ("Where", whereOp),
        ("Sqrt", { try unaryFloat($0, .sqrt) }),
        ("Reciprocal", { try unaryFloat($0, .reciprocal) }),
        ("Neg", { try unaryFloat($0, .neg) }),
        ("Abs", { try unaryFloat($0, .abs) }),
        ("Exp", { try unaryFloat($0, .exp) }),
        ("Log", { try unaryFloat($0, .log) }),
        ("Erf", { try unaryFloat($0, .erf) }),
        ("Tanh", { try unaryFloat($0, .tanh) }),
        ("Sigmoid", { try unaryFloat($0, .sigmoid) }),
        ("Relu", { try unaryFloat($0, .relu) }),
        ("Sin", { try unaryFloat($0, .sin) }),
        ("Cos", { try unaryFloat($0, .cos) }),
        ("Floor", { try unaryFloat($0, .floor) }),
        ("Ceil", { try unaryFloat($0, .ceil) }),
        ("Gelu", { try unaryFloat($0, .gelu) }),
        ("Softplus", { try unaryFloat($0, .softplus) }),
        ("LeakyRelu", { try unaryFloat($0, .leakyRelu) }),
        ("Not", notOp),
        ("IsNaN", isNaN),
        ("IsInf", isInf),
        ("Clip", clip),
        ("Cast", cast),
        ("Identity", identity),
        ("Dropout", dropout),
    ]

    // MARK: - Broadcast iteration

    /// Iteration plan for up to three operands broadcast to one contiguous output.
    ///
    /// Size-1 output dims are dropped and adjacent dims that every operand walks contiguously
    /// (or all broadcast) are merged, so the common layouts (same shape, scalar operand, bias
    /// along the last dim, `[B,1,1,S]` mask against `[B,H,S,S]`) reduce to a few long rows.
    /// The output is walked as `rows` rows of `inner` elements; each operand reads its row at
    /// an offset computed from the outer dims and strides `innerStride*` within the row.
    struct BroadcastPlan: Sendable {
        let outShape: [Int]
        let count: Int
        let inner: Int
        let rows: Int
        /// Collapsed outer dims (all but the innermost) and each operand's strides over them.
        let outer: [Int]
        let s0: [Int], s1: [Int], s2: [Int]
        let innerStride0: Int, innerStride1: Int, innerStride2: Int

        /// `operands` must each broadcast to `out` (at most three).
        init(out: [Int], operands: [[Int]]) {
            precondition(operands.count <= 3)
            outShape = out
            count = Shape.product(out)
            var st = operands.map { Shape.broadcastStrides($0, to: out) }
            while st.count < 3 { st.append([Int](repeating: 0, count: out.count)) }
            var dims: [Int] = []
            var ss: [[Int]] = [[], [], []]
            for k in 0..<out.count where out[k] != 1 {
                if let last = dims.last, (0..<3).allSatisfy({ ss[$0][dims.count - 1] == st[$0][k] * out[k] }) {
                    dims[dims.count - 1] = last * out[k]
                    for o in 0..<3 { ss[o][dims.count - 1] = st[o][k] }
                } else {
                    dims.append(out[k])
                    for o in 0..<3 { ss[o].append(st[o][k]) }
                }
            }
            if count == 0 {
                inner = 0; rows = 0; outer = []
                s0 = []; s1 = []; s2 = []
                innerStride0 = 0; innerStride1 = 0; innerStride2 = 0
            } else if dims.isEmpty {
                inner = 1; rows = 1; outer = []
                s0 = []; s1 = []; s2 = []
                innerStride0 = 0; innerStride1 = 0; innerStride2 = 0
            } else {
                inner = dims.removeLast()
                rows = count / inner
                outer = dims
                innerStride0 = ss[0].removeLast()
                innerStride1 = ss[1].removeLast()
                innerStride2 = ss[2].removeLast()
                s0 = ss[0]; s1 = ss[1]; s2 = ss[2]
            }
        }

        /// Calls `body(row, offset0, offset1, offset2)` for each row in `rows` (element offsets
        /// of each operand's row start; the output row starts at `row * inner`).
        @inline(__always)
        func forRows(_ rows: Range<Int>, _ body: (Int, Int, Int, Int) -> Void) {
            let n = outer.count
            if n == 0 {
                for r in rows { body(r, 0, 0, 0) }
                return
            }
            if n == 1 {
                let a = s0[0], b = s1[0], c = s2[0]
                for r in rows { body(r, r &* a, r &* b, r &* c) }
                return
            }
            withUnsafeTemporaryAllocation(of: Int.self, capacity: n) { idx in
                var rem = rows.lowerBound
                var o0 = 0, o1 = 0, o2 = 0
                for k in stride(from: n - 1, through: 0, by: -1) {
                    let i = rem % outer[k]
                    rem /= outer[k]
                    idx[k] = i
                    o0 += i * s0[k]; o1 += i * s1[k]; o2 += i * s2[k]
                }
                for r in rows {
                    body(r, o0, o1, o2)
                    var k = n - 1
                    while k >= 0 {
                        idx[k] += 1
                        o0 += s0[k]; o1 += s1[k]; o2 += s2[k]
                        if idx[k] < outer[k] { break }
                        o0 -= s0[k] * outer[k]; o1 -= s1[k] * outer[k]; o2 -= s2[k] * outer[k]
                        idx[k] = 0
                        k -= 1
                    }
                }
            }
        }
    }

    /// Elements per thread below which splitting a loop is not worth it.
    static let grain = 32768

    /// Broadcast shape of the listed operand shapes, with the node named on failure.
    static func broadcastShape(_ ctx: KernelContext, _ shapes: [[Int]]) throws -> [Int] {
        do {
            return try Shape.broadcast(shapes)
        } catch let e as GraftError {
            throw ctx.fail(e.code, e.message)
        }
    }

    /// Walks a two-operand broadcast plan as runs of contiguous output, split across threads:
    /// `run(out, a, b, count)` gets the element offsets of a run's first output and operand
    /// elements and its length; within a run the operands step by the plan's inner strides.
    @inline(__always)
    static func forBinaryRuns(_ p: BroadcastPlan, threads: Int, _ run: (Int, Int, Int, Int) -> Void) {
        let n = p.inner, ia = p.innerStride0, ib = p.innerStride1
        if p.rows == 1 {
            // One long row (same shapes, scalar operand): split the row itself.
            parallelFor(n, threads: threads, minPerThread: grain) { range in
                run(range.lowerBound, range.lowerBound * ia, range.lowerBound * ib, range.count)
            }
            return
        }
        parallelFor(p.rows, threads: threads, minPerThread: max(1, grain / max(n, 1))) { range in
            p.forRows(range) { r, oa, ob, _ in run(r * n, oa, ob, n) }
        }
    }

    /// `out[i] = f(a[i'], b[i''])` over a broadcast plan.
    @inline(__always)
    static func runBinary<A, B, O>(_ p: BroadcastPlan, _ a: UnsafePointer<A>, _ b: UnsafePointer<B>,
                                   _ o: UnsafeMutablePointer<O>, threads: Int, _ f: (A, B) -> O) {
        let ia = p.innerStride0, ib = p.innerStride1
        forBinaryRuns(p, threads: threads) { oo, oa, ob, m in
            let out = o + oo, pa = a + oa, pb = b + ob
            if ia == 1 && ib == 1 {
                for j in 0..<m { out[j] = f(pa[j], pb[j]) }
            } else if ia == 1 && ib == 0 {
                let y = pb[0]
                for j in 0..<m { out[j] = f(pa[j], y) }
            } else if ia == 0 && ib == 1 {
                let x = pa[0]
                for j in 0..<m { out[j] = f(x, pb[j]) }
            } else {
                for j in 0..<m { out[j] = f(pa[j * ia], pb[j * ib]) }
            }
        }
    }

    /// Float add / sub / mul / div over a broadcast plan, a C loop per run (`vmath_arith_row`):
    /// `runBinary`'s closure is called per element once the loop runs on a worker thread.
    static func runArithmetic(_ p: BroadcastPlan, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                              _ o: UnsafeMutablePointer<Float>, threads: Int, op: Arith) {
        let ia = p.innerStride0, ib = p.innerStride1
        let code: Int32
        switch op {
        case .add: code = Int32(VMATH_ARITH_ADD)
        case .sub: code = Int32(VMATH_ARITH_SUB)
        case .mul: code = Int32(VMATH_ARITH_MUL)
        case .div: code = Int32(VMATH_ARITH_DIV)
        }
        forBinaryRuns(p, threads: threads) { oo, oa, ob, m in
            vmath_arith_row(code, a + oa, ia, b + ob, ib, o + oo, m)
        }
    }

    /// `out[i] = f(a[i])` over contiguous buffers.
    @inline(__always)
    static func runUnary<A, O>(_ count: Int, _ a: UnsafePointer<A>, _ o: UnsafeMutablePointer<O>,
                               threads: Int, minPerThread: Int = grain, _ f: (A) -> O) {
        parallelFor(count, threads: threads, minPerThread: minPerThread) { range in
            for i in range { o[i] = f(a[i]) }
        }
    }

    /// `runUnary` for a CMath array function (`f(x, y, count)`): each chunk is one contiguous call.
    static func runVector(_ count: Int, _ a: UnsafePointer<Float>, _ o: UnsafeMutablePointer<Float>, threads: Int, minPerThread: Int,
                          _ f: (UnsafePointer<Float>?, UnsafeMutablePointer<Float>?, Int) -> Void) {
        parallelFor(count, threads: threads, minPerThread: minPerThread) { range in
            f(a + range.lowerBound, o + range.lowerBound, range.count)
        }
    }

    // MARK: - Arithmetic

    enum Arith { case add, sub, mul, div }

    static func arithmetic(_ ctx: KernelContext, _ op: Arith) throws -> CompiledKernel {
        let a = try ctx.require(0, [.float32, .int64, .int32])
        let b = try ctx.input(1)
        guard b.dtype == a.dtype else {
            throw ctx.fail(.invalidModel, "inputs have different types \(a.dtype) and \(b.dtype)")
        }
        let shape = try broadcastShape(ctx, [a.shape, b.shape])
        let plan = BroadcastPlan(out: shape, operands: [a.shape, b.shape])
        let threads = ctx.threads
        let out = [TensorType(a.dtype, shape)]
        switch a.dtype {
        case .float32:
            return CompiledKernel(outputs: out) { io in
                runArithmetic(plan, io.input(0, Float.self), io.input(1, Float.self), io.output(0, Float.self), threads: threads, op: op)
            }
        case .int64:
            let label = ctx.node.label, bCount = b.count
            return CompiledKernel(outputs: out) { io in
                try integerArithmetic(plan, op, io.input(0, Int64.self), io.input(1, Int64.self), io.output(0, Int64.self),
                                      bCount: bCount, threads: threads, label: label)
            }
        default:
            let label = ctx.node.label, bCount = b.count
            return CompiledKernel(outputs: out) { io in
                try integerArithmetic(plan, op, io.input(0, Int32.self), io.input(1, Int32.self), io.output(0, Int32.self),
                                      bCount: bCount, threads: threads, label: label)
            }
        }
    }

    /// Integer arithmetic wraps on overflow (as C does) and divides truncating toward zero;
    /// a zero divisor is reported, never trapped on.
    @inline(__always)
    static func integerArithmetic<T: FixedWidthInteger & SignedInteger>(
        _ plan: BroadcastPlan, _ op: Arith, _ x: UnsafePointer<T>, _ y: UnsafePointer<T>, _ z: UnsafeMutablePointer<T>,
        bCount: Int, threads: Int, label: String
    ) throws {
        switch op {
        case .add: runBinary(plan, x, y, z, threads: threads) { $0 &+ $1 }
        case .sub: runBinary(plan, x, y, z, threads: threads) { $0 &- $1 }
        case .mul: runBinary(plan, x, y, z, threads: threads) { $0 &* $1 }
        case .div:
            if plan.count > 0 {
                for i in 0..<bCount where y[i] == 0 {
                    throw GraftError(.invalidData, "\(label): integer division by zero (divisor element \(i))")
                }
            }
            runBinary(plan, x, y, z, threads: threads) { $0.dividedReportingOverflow(by: $1).partialValue }
        }
    }

    // MARK: - Pow

    static func pow(_ ctx: KernelContext) throws -> CompiledKernel {
        let a = try ctx.require(0, [.float32])
        let b = try ctx.require(1, [.float32, .int64, .int32])
        let shape = try broadcastShape(ctx, [a.shape, b.shape])
        let threads = ctx.threads
        let out = [TensorType(.float32, shape)]
        // Constant scalar exponent with the base already of the output shape: a unary loop.
        if b.count == 1, shape == a.shape, ctx.constants.count > 1, let c = ctx.constants[1] {
            let e: Float
            switch c.dtype {
            case .float32: e = c.pointer(Float.self)[0]
            case .int64: e = Float(c.pointer(Int64.self)[0])
            default: e = Float(c.pointer(Int32.self)[0])
            }
            let n = a.count
            return CompiledKernel(outputs: out) { io in
                let x = io.input(0, Float.self), z = io.output(0, Float.self)
                switch e {
                case 2: runUnary(n, x, z, threads: threads) { $0 * $0 }
                case 3: runUnary(n, x, z, threads: threads) { $0 * $0 * $0 }
                case 1: runUnary(n, x, z, threads: threads) { $0 }
                case 0.5: runUnary(n, x, z, threads: threads) { sqrtf($0) }
                default: runUnary(n, x, z, threads: threads) { powf($0, e) }
                }
            }
        }
        let plan = BroadcastPlan(out: shape, operands: [a.shape, b.shape])
        switch b.dtype {
        case .float32:
            return CompiledKernel(outputs: out) { io in
                runBinary(plan, io.input(0, Float.self), io.input(1, Float.self), io.output(0, Float.self), threads: threads) { powf($0, $1) }
            }
        case .int64:
            return CompiledKernel(outputs: out) { io in
                runBinary(plan, io.input(0, Float.self), io.input(1, Int64.self), io.output(0, Float.self), threads: threads) { powf($0, Float($1)) }
            }
        default:
            return CompiledKernel(outputs: out) { io in
                runBinary(plan, io.input(0, Float.self), io.input(1, Int32.self), io.output(0, Float.self), threads: threads) { powf($0, Float($1)) }
            }
        }
    }

    // MARK: - Max / Min (variadic)

    static func minMax(_ ctx: KernelContext, isMax: Bool) throws -> CompiledKernel {
        guard ctx.inputCount >= 1 else { throw ctx.fail(.invalidModel, "needs at least one input") }
        let first = try ctx.require(0, [.float32, .int64, .int32])
        var types = [first]
        for i in 1..<ctx.inputCount {
            let t = try ctx.input(i)
            guard t.dtype == first.dtype else {
                throw ctx.fail(.invalidModel, "input \(i) has type \(t.dtype), input 0 has \(first.dtype)")
            }
            types.append(t)
        }
        let shape = try broadcastShape(ctx, types.map(\.shape))
        let threads = ctx.threads
        let k = types.count
        // Plan 0 combines inputs 0 and 1 (or broadcasts input 0 alone); plan i folds input i+1
        // into the output in place.
        var plansVar = [BroadcastPlan(out: shape, operands: k == 1 ? [types[0].shape, types[0].shape] : [types[0].shape, types[1].shape])]
        if k > 2 {
            for i in 2..<k { plansVar.append(BroadcastPlan(out: shape, operands: [shape, types[i].shape])) }
        }
        let out = [TensorType(first.dtype, shape)]
        let plans = plansVar
        switch first.dtype {
        case .float32:
            return CompiledKernel(outputs: out) { io in minMaxRun(plans, k, isMax, io, Float.self, threads: threads) }
        case .int64:
            return CompiledKernel(outputs: out) { io in minMaxRun(plans, k, isMax, io, Int64.self, threads: threads) }
        default:
            return CompiledKernel(outputs: out) { io in minMaxRun(plans, k, isMax, io, Int32.self, threads: threads) }
        }
    }

    /// NaN propagates (`x != x` is the generic NaN test; never true for integers).
    @inline(__always)
    static func minMaxRun<T: Comparable>(_ plans: [BroadcastPlan], _ k: Int, _ isMax: Bool, _ io: KernelIO,
                                         _: T.Type, threads: Int) {
        let z = io.output(0, T.self)
        let x0 = io.input(0, T.self)
        let x1 = k == 1 ? x0 : io.input(1, T.self)
        if isMax {
            runBinary(plans[0], x0, x1, z, threads: threads) { a, b in (a >= b || a != a) ? a : b }
        } else {
            runBinary(plans[0], x0, x1, z, threads: threads) { a, b in (a <= b || a != a) ? a : b }
        }
        if k > 2 {
            for i in 2..<k {
                let xi = io.input(i, T.self)
                if isMax {
                    runBinary(plans[i - 1], UnsafePointer(z), xi, z, threads: threads) { a, b in (a >= b || a != a) ? a : b }
                } else {
                    runBinary(plans[i - 1], UnsafePointer(z), xi, z, threads: threads) { a, b in (a <= b || a != a) ? a : b }
                }
            }
        }
    }

    // MARK: - Comparisons and logic

    enum Comparison { case equal, less, lessOrEqual, greater, greaterOrEqual }

    static func compare(_ ctx: KernelContext, _ op: Comparison) throws -> CompiledKernel {
        let a = try ctx.require(0, [.float32, .int64, .int32, .bool, .uint8, .int8])
        let b = try ctx.input(1)
        guard b.dtype == a.dtype else {
            throw ctx.fail(.invalidModel, "inputs have different types \(a.dtype) and \(b.dtype)")
        }
        let shape = try broadcastShape(ctx, [a.shape, b.shape])
        let plan = BroadcastPlan(out: shape, operands: [a.shape, b.shape])
        let threads = ctx.threads
        let out = [TensorType(.bool, shape)]
        switch a.dtype {
        case .float32: return CompiledKernel(outputs: out) { io in compareRun(plan, op, io, Float.self, threads: threads) }
        case .int64: return CompiledKernel(outputs: out) { io in compareRun(plan, op, io, Int64.self, threads: threads) }
        case .int32: return CompiledKernel(outputs: out) { io in compareRun(plan, op, io, Int32.self, threads: threads) }
        case .int8: return CompiledKernel(outputs: out) { io in compareRun(plan, op, io, Int8.self, threads: threads) }
        default: return CompiledKernel(outputs: out) { io in compareRun(plan, op, io, UInt8.self, threads: threads) }
        }
    }

    @inline(__always)
    static func compareRun<T: Comparable>(_ plan: BroadcastPlan, _ op: Comparison, _ io: KernelIO, _: T.Type, threads: Int) {
        let x = io.input(0, T.self), y = io.input(1, T.self), z = io.output(0, UInt8.self)
        switch op {
        case .equal: runBinary(plan, x, y, z, threads: threads) { $0 == $1 ? 1 : 0 }
        case .less: runBinary(plan, x, y, z, threads: threads) { $0 < $1 ? 1 : 0 }
        case .lessOrEqual: runBinary(plan, x, y, z, threads: threads) { $0 <= $1 ? 1 : 0 }
        case .greater: runBinary(plan, x, y, z, threads: threads) { $0 > $1 ? 1 : 0 }
        case .greaterOrEqual: runBinary(plan, x, y, z, threads: threads) { $0 >= $1 ? 1 : 0 }
        }
    }

    enum Logic { case and, or, xor }

    static func logical(_ ctx: KernelContext, _ op: Logic) throws -> CompiledKernel {
        let a = try ctx.require(0, [.bool])
        let b = try ctx.require(1, [.bool])
        let shape = try broadcastShape(ctx, [a.shape, b.shape])
        let plan = BroadcastPlan(out: shape, operands: [a.shape, b.shape])
        let threads = ctx.threads
        return CompiledKernel(outputs: [TensorType(.bool, shape)]) { io in
            let x = io.input(0, UInt8.self), y = io.input(1, UInt8.self), z = io.output(0, UInt8.self)
            switch op {
            case .and: runBinary(plan, x, y, z, threads: threads) { ($0 != 0 && $1 != 0) ? 1 : 0 }
            case .or: runBinary(plan, x, y, z, threads: threads) { ($0 != 0 || $1 != 0) ? 1 : 0 }
            case .xor: runBinary(plan, x, y, z, threads: threads) { (($0 != 0) != ($1 != 0)) ? 1 : 0 }
            }
        }
    }

    // MARK: - Where

    static func whereOp(_ ctx: KernelContext) throws -> CompiledKernel {
        let c = try ctx.require(0, [.bool])
        let x = try ctx.input(1)
        let y = try ctx.input(2)
        guard x.dtype == y.dtype else {
            throw ctx.fail(.invalidModel, "X has type \(x.dtype) but Y has \(y.dtype)")
        }
        guard x.dtype.isComputeType else { throw ctx.fail(.unsupported, "type \(x.dtype) is not supported") }
        let shape = try broadcastShape(ctx, [c.shape, x.shape, y.shape])
        let plan = BroadcastPlan(out: shape, operands: [c.shape, x.shape, y.shape])
        let threads = ctx.threads
        let out = [TensorType(x.dtype, shape)]
        switch x.dtype.byteSize {
        case 1: return CompiledKernel(outputs: out) { io in whereRun(plan, io, UInt8.self, threads: threads) }
        case 2: return CompiledKernel(outputs: out) { io in whereRun(plan, io, UInt16.self, threads: threads) }
        case 4: return CompiledKernel(outputs: out) { io in whereRun(plan, io, UInt32.self, threads: threads) }
        default: return CompiledKernel(outputs: out) { io in whereRun(plan, io, UInt64.self, threads: threads) }
        }
    }

    @inline(__always)
    static func whereRun<T>(_ p: BroadcastPlan, _ io: KernelIO, _: T.Type, threads: Int) {
        let c = io.input(0, UInt8.self), x = io.input(1, T.self), y = io.input(2, T.self)
        let o = io.output(0, T.self)
        let n = p.inner
        let ic = p.innerStride0, ix = p.innerStride1, iy = p.innerStride2
        parallelFor(p.rows, threads: threads, minPerThread: max(1, grain / max(n, 1))) { range in
            p.forRows(range) { r, oc, ox, oy in
                let out = o + r * n
                let pc = c + oc, px = x + ox, py = y + oy
                if ic == 1 && ix == 1 && iy == 1 {
                    for j in 0..<n { out[j] = pc[j] != 0 ? px[j] : py[j] }
                } else {
                    for j in 0..<n { out[j] = pc[j * ic] != 0 ? px[j * ix] : py[j * iy] }
                }
            }
        }
    }

    // MARK: - Unary

    enum Unary { case sqrt, reciprocal, neg, abs, exp, log, erf, tanh, sigmoid, relu, sin, cos, floor, ceil, gelu, softplus, leakyRelu }

    static func unaryFloat(_ ctx: KernelContext, _ op: Unary) throws -> CompiledKernel {
        let allowed: [DType] = (op == .neg || op == .abs) ? [.float32, .int64, .int32] : [.float32]
        let a = try ctx.require(0, allowed)
        let n = a.count
        let threads = ctx.threads
        let out = [TensorType(a.dtype, a.shape)]
        if a.dtype == .int64 {
            return CompiledKernel(outputs: out) { io in
                let x = io.input(0, Int64.self), z = io.output(0, Int64.self)
                if op == .neg { runUnary(n, x, z, threads: threads) { 0 &- $0 } } else { runUnary(n, x, z, threads: threads) { $0 < 0 ? 0 &- $0 : $0 } }
            }
        }
        if a.dtype == .int32 {
            return CompiledKernel(outputs: out) { io in
                let x = io.input(0, Int32.self), z = io.output(0, Int32.self)
                if op == .neg { runUnary(n, x, z, threads: threads) { 0 &- $0 } } else { runUnary(n, x, z, threads: threads) { $0 < 0 ? 0 &- $0 : $0 } }
            }
        }
        // Transcendental ops cost far more per element than a copy: split smaller loops.
        let cheap: Set<Unary> = [.neg, .abs, .relu, .floor, .ceil, .reciprocal, .sqrt, .leakyRelu]
        let minPer = cheap.contains(op) ? grain : 4096
        switch op {
        case .gelu:
            let approx = ctx.node.string("approximate") ?? "none"
            if approx == "tanh" {
                return CompiledKernel(outputs: out) { io in
                    runVector(n, io.input(0, Float.self), io.output(0, Float.self), threads: threads, minPerThread: minPer, vmath_gelu_tanh)
                }
            }
            guard approx == "none" else { throw ctx.fail(.invalidModel, "approximate must be 'none' or 'tanh', not '\(approx)'") }
            return CompiledKernel(outputs: out) { io in
                runVector(n, io.input(0, Float.self), io.output(0, Float.self), threads: threads, minPerThread: minPer, vmath_gelu_erf)
            }
        case .leakyRelu:
            let alpha = ctx.node.float("alpha", default: 0.01)
            return CompiledKernel(outputs: out) { io in
                runUnary(n, io.input(0, Float.self), io.output(0, Float.self), threads: threads) { $0 < 0 ? alpha * $0 : $0 }
            }
        default:
            return CompiledKernel(outputs: out) { io in
                let x = io.input(0, Float.self), z = io.output(0, Float.self)
                switch op {
                case .sqrt: runUnary(n, x, z, threads: threads, minPerThread: minPer) { sqrtf($0) }
                case .reciprocal: runUnary(n, x, z, threads: threads, minPerThread: minPer) { 1 / $0 }
                case .neg: runUnary(n, x, z, threads: threads, minPerThread: minPer) { -$0 }
                case .abs: runUnary(n, x, z, threads: threads, minPerThread: minPer) { Swift.abs($0) }
                case .exp: runVector(n, x, z, threads: threads, minPerThread: minPer, vmath_exp)
                case .log: runUnary(n, x, z, threads: threads, minPerThread: minPer) { logf($0) }
                case .erf: runVector(n, x, z, threads: threads, minPerThread: minPer, vmath_erf)
                case .tanh: runUnary(n, x, z, threads: threads, minPerThread: minPer) { tanhf($0) }
                case .sigmoid: runVector(n, x, z, threads: threads, minPerThread: minPer, vmath_sigmoid)
                case .relu: runUnary(n, x, z, threads: threads, minPerThread: minPer) { $0 < 0 ? 0 : $0 }
                case .sin: runUnary(n, x, z, threads: threads, minPerThread: minPer) { sinf($0) }
                case .cos: runUnary(n, x, z, threads: threads, minPerThread: minPer) { cosf($0) }
                case .floor: runUnary(n, x, z, threads: threads, minPerThread: minPer) { floorf($0) }
                case .ceil: runUnary(n, x, z, threads: threads, minPerThread: minPer) { ceilf($0) }
                case .softplus:
                    runUnary(n, x, z, threads: threads, minPerThread: minPer) { v in v > 0 ? v + log1pf(expf(-v)) : log1pf(expf(v)) }
                case .gelu, .leakyRelu: break // handled above
                }
            }
        }
    }

    static func notOp(_ ctx: KernelContext) throws -> CompiledKernel {
        let a = try ctx.require(0, [.bool])
        let n = a.count, threads = ctx.threads
        return CompiledKernel(outputs: [a]) { io in
            runUnary(n, io.input(0, UInt8.self), io.output(0, UInt8.self), threads: threads) { $0 == 0 ? 1 : 0 }
        }
    }

    static func isNaN(_ ctx: KernelContext) throws -> CompiledKernel {
        let a = try ctx.require(0, [.float32])
        let n = a.count, threads = ctx.threads
        return CompiledKernel(outputs: [TensorType(.bool, a.shape)]) { io in
            runUnary(n, io.input(0, Float.self), io.output(0, UInt8.self), threads: threads) { $0 != $0 ? 1 : 0 }
        }
    }

    static func isInf(_ ctx: KernelContext) throws -> CompiledKernel {
        let a = try ctx.require(0, [.float32])
        let n = a.count, threads = ctx.threads
        let neg = ctx.node.int("detect_negative", default: 1) != 0
        let pos = ctx.node.int("detect_positive", default: 1) != 0
        let lo: Float = neg ? -.infinity : .nan, hi: Float = pos ? .infinity : .nan
        return CompiledKernel(outputs: [TensorType(.bool, a.shape)]) { io in
            runUnary(n, io.input(0, Float.self), io.output(0, UInt8.self), threads: threads) { ($0 == lo || $0 == hi) ? 1 : 0 }
        }
    }

    // MARK: - Clip

    static func clip(_ ctx: KernelContext) throws -> CompiledKernel {
        let a = try ctx.require(0, [.float32, .int64, .int32])
        let n = a.count, threads = ctx.threads
        let hasMin = ctx.has(1), hasMax = ctx.has(2)
        for i in [1, 2] where ctx.has(i) {
            let t = try ctx.input(i)
            guard t.dtype == a.dtype else {
                throw ctx.fail(.invalidModel, "input \(i) has type \(t.dtype), input 0 has \(a.dtype)")
            }
            guard t.count == 1 else { throw ctx.fail(.invalidModel, "input \(i) must be a scalar, got shape \(t.shape)") }
        }
        let out = [a]
        switch a.dtype {
        case .float32:
            // Before opset 11 the bounds were attributes.
            let attrMin = ctx.node.float("min", default: -.infinity), attrMax = ctx.node.float("max", default: .infinity)
            return CompiledKernel(outputs: out) { io in
                let lo = hasMin ? io.input(1, Float.self)[0] : attrMin
                let hi = hasMax ? io.input(2, Float.self)[0] : attrMax
                // NaN passes through; min > max gives max everywhere, as ONNX specifies.
                runUnary(n, io.input(0, Float.self), io.output(0, Float.self), threads: threads) { v in
                    let t = v < lo ? lo : v
                    return t > hi ? hi : t
                }
            }
        case .int64:
            return CompiledKernel(outputs: out) { io in
                let lo = hasMin ? io.input(1, Int64.self)[0] : .min
                let hi = hasMax ? io.input(2, Int64.self)[0] : .max
                runUnary(n, io.input(0, Int64.self), io.output(0, Int64.self), threads: threads) { v in Swift.min(Swift.max(v, lo), hi) }
            }
        default:
            return CompiledKernel(outputs: out) { io in
                let lo = hasMin ? io.input(1, Int32.self)[0] : .min
                let hi = hasMax ? io.input(2, Int32.self)[0] : .max
                runUnary(n, io.input(0, Int32.self), io.output(0, Int32.self), threads: threads) { v in Swift.min(Swift.max(v, lo), hi) }
            }
        }
    }

    // MARK: - Cast, Identity, Dropout

    static func cast(_ ctx: KernelContext) throws -> CompiledKernel {
        let a = try ctx.input(0)
        guard let code = ctx.node.int("to") else { throw ctx.fail(.invalidModel, "missing attribute 'to'") }
        guard let to = DType(rawValue: Int32(truncatingIfNeeded: code)) else {
            throw ctx.fail(.unsupported, "cast to \(DType.onnxName(Int32(truncatingIfNeeded: code))) is not supported")
        }
        guard to.isComputeType else {
            throw ctx.fail(.unsupported, "cast to \(to) is not supported (Graft computes in float32; \(to) tensors are not produced at run time)")
        }
        guard a.dtype.isComputeType else { throw ctx.fail(.unsupported, "cast from \(a.dtype) is not supported") }
        let n = a.count, threads = ctx.threads
        let out = [TensorType(to, a.shape)]
        let from = a.dtype
        if from == to || (from == .bool && to == .uint8) {
            let bytes = a.byteCount
            return CompiledKernel(outputs: out) { io in
                if bytes > 0 { io.raw(output: 0).copyMemory(from: io.raw(input: 0), byteCount: bytes) }
            }
        }
        return CompiledKernel(outputs: out) { io in
            switch from {
            case .float32: castFromFloat(io, n, to, threads)
            case .int64: castFromInt(io, n, Int64.self, to, threads)
            case .int32: castFromInt(io, n, Int32.self, to, threads)
            case .int8: castFromInt(io, n, Int8.self, to, threads)
            default: castFromInt(io, n, UInt8.self, to, threads) // uint8, bool (0/1)
            }
        }
    }

    /// Float to integer truncates toward zero; NaN and out-of-range values give the type's
    /// minimum for int32/int64 (what x86 conversion instructions produce) and the low bits of
    /// that int32 conversion for 8-bit targets, instead of trapping.
    @inline(__always)
    static func floatToInt64(_ v: Float) -> Int64 {
        (v > -9.223372e18 && v < 9.223372e18) ? Int64(v) : .min
    }

    @inline(__always)
    static func floatToInt32(_ v: Float) -> Int32 {
        (v > -2.1474836e9 && v < 2.1474836e9) ? Int32(v) : .min
    }

    @inline(__always)
    static func castFromFloat(_ io: KernelIO, _ n: Int, _ to: DType, _ threads: Int) {
        let x = io.input(0, Float.self)
        switch to {
        case .int64: runUnary(n, x, io.output(0, Int64.self), threads: threads) { floatToInt64($0) }
        case .int32: runUnary(n, x, io.output(0, Int32.self), threads: threads) { floatToInt32($0) }
        case .int8: runUnary(n, x, io.output(0, Int8.self), threads: threads) { Int8(truncatingIfNeeded: floatToInt32($0)) }
        case .uint8: runUnary(n, x, io.output(0, UInt8.self), threads: threads) { UInt8(truncatingIfNeeded: floatToInt32($0)) }
        case .bool: runUnary(n, x, io.output(0, UInt8.self), threads: threads) { $0 != 0 ? 1 : 0 }
        default: break // float32 -> float32 is a copy, handled by the caller
        }
    }

    @inline(__always)
    static func castFromInt<S: FixedWidthInteger>(_ io: KernelIO, _ n: Int, _: S.Type, _ to: DType, _ threads: Int) {
        let x = io.input(0, S.self)
        switch to {
        case .float32: runUnary(n, x, io.output(0, Float.self), threads: threads) { Float($0) }
        case .int64: runUnary(n, x, io.output(0, Int64.self), threads: threads) { Int64(truncatingIfNeeded: $0) }
        case .int32: runUnary(n, x, io.output(0, Int32.self), threads: threads) { Int32(truncatingIfNeeded: $0) }
        case .int8: runUnary(n, x, io.output(0, Int8.self), threads: threads) { Int8(truncatingIfNeeded: $0) }
        case .uint8: runUnary(n, x, io.output(0, UInt8.self), threads: threads) { UInt8(truncatingIfNeeded: $0) }
        case .bool: runUnary(n, x, io.output(0, UInt8.self), threads: threads) { $0 != 0 ? 1 : 0 }
        default: break
        }
    }

    static func identity(_ ctx: KernelContext) throws -> CompiledKernel {
        let a = try ctx.input(0)
        let bytes = a.byteCount
        return CompiledKernel(outputs: [a]) { io in
            if bytes > 0 { io.raw(output: 0).copyMemory(from: io.raw(input: 0), byteCount: bytes) }
        }
    }

    static func dropout(_ ctx: KernelContext) throws -> CompiledKernel {
        let a = try ctx.require(0, [.float32])
        if ctx.has(2) {
            if ctx.constants.count > 2, let t = ctx.constants[2] {
                if t.integers().contains(where: { $0 != 0 }) {
                    throw ctx.fail(.unsupported, "training_mode is true; Graft runs Dropout in inference mode only")
                }
            }
        }
        let bytes = a.byteCount, n = a.count
        let wantMask = ctx.node.outputs.count > 1 && !ctx.node.outputs[1].isEmpty
        var outs = [a]
        if ctx.node.outputs.count > 1 { outs.append(TensorType(.bool, a.shape)) }
        return CompiledKernel(outputs: outs) { io in
            if bytes > 0 { io.raw(output: 0).copyMemory(from: io.raw(input: 0), byteCount: bytes) }
            if wantMask && n > 0 { io.output(1, UInt8.self).initialize(repeating: 1, count: n) }
        }
    }
}

import CKernels
import CMath
import COpenBLAS
#if canImport(Glibc)
import Glibc
#endif

// MARK: - Packed weights (Graft's own GEMM, Sources/CKernels)

/// A float32 weight packed once into `graft_gemm_packed`'s panel layout:
/// `data[p][k][j] = B[k][p*32 + j]` (panels of 32 columns, K contiguous, zero-padded past N),
/// 64-byte aligned. Shared by every plan and session that uses the same weight storage.
package final class PackedWeight: @unchecked Sendable {
    package let k: Int, n: Int
    /// `[ceil(n/32)][k][32]` floats.
    package let data: UnsafeMutablePointer<Float>
    package let floatCount: Int
    /// Keeps the source alive: while this object exists its address cannot be reused by another
    /// tensor, so (address, k, n, layout) identifies the source's contents.
    private let source: TensorStorage
    /// Owns `data`: big copies get their own pre-faulted mapping (as weights copied at load do),
    /// so packing does not take a page fault per 4 KiB.
    private let storage: TensorStorage

    /// Packs `b` (`[k, n]`, or `[n, k]` when `transposed`: Gemm's transB), panels split across
    /// `threads` (packing happens in a model's first run, where it is load time).
    package init(_ b: HostTensor, k: Int, n: Int, transposed: Bool, threads: Int = 1) {
        self.k = k
        self.n = n
        floatCount = graft_gemm_packed_count(k, n)
        storage = TensorStorage(uninitialized: max(floatCount, 16) * 4, threads: threads)
        let data = storage.base.bindMemory(to: Float.self, capacity: max(floatCount, 16))
        self.data = data
        source = b.storage
        let src = b.pointer(Float.self)
        parallelFor(panels, threads: threads, minPerThread: 4) { r in
            graft_gemm_pack_b_panels(src, k, n, transposed ? 1 : 0, data, r.lowerBound, r.upperBound)
        }
    }

    var panels: Int { (n + 31) / 32 }
}

/// Packed weights keyed by the source tensor's address, shape and layout, held weakly: several
/// plans (one per input-shape signature) and sessions of a model share one packed copy, which
/// is freed when the last plan using it goes.
package enum PackedWeightCache {
    struct Key: Hashable { let address: UInt, k: Int, n: Int, transposed: Bool }
    final class WeakBox: @unchecked Sendable { weak var value: PackedWeight? }
    private static let table = Locked<[Key: WeakBox]>([:])

    package static func packed(_ b: HostTensor, k: Int, n: Int, transposed: Bool, threads: Int = 1) -> PackedWeight {
        let key = Key(address: UInt(bitPattern: b.raw), k: k, n: n, transposed: transposed)
        return table.withLock { t in
            if let p = t[key]?.value { return p }
            t = t.filter { $0.value.value != nil }
            let p = PackedWeight(b, k: k, n: n, transposed: transposed, threads: threads)
            let box = WeakBox()
            box.value = p
            t[key] = box
            return p
        }
    }

    /// Live packed copies (tests and diagnostics).
    package static var liveCount: Int { table.withLock { $0.values.filter { $0.value != nil }.count } }
}

/// A plan's handle on a constant weight: packed on first use (not in the factory, so probe
/// compilations — symbolic shapes, plan-time folding — do not pack), then reused.
final class LazyPackedWeight: @unchecked Sendable {
    let tensor: HostTensor
    let k: Int, n: Int, transposed: Bool
    /// The address the plan binds the weight slot to; any other pointer at run time (a merged
    /// adapter's private weight) must not use this packed copy.
    let address: UnsafeRawPointer
    private let state = Locked<PackedWeight?>(nil)

    init(_ tensor: HostTensor, k: Int, n: Int, transposed: Bool) {
        self.tensor = tensor
        self.k = k
        self.n = n
        self.transposed = transposed
        address = UnsafeRawPointer(tensor.raw)
    }

    func get(threads: Int) -> PackedWeight {
        state.withLock { s in
            if let p = s { return p }
            let p = PackedWeightCache.packed(tensor, k: k, n: n, transposed: transposed, threads: threads)
            s = p
            return p
        }
    }
}

/// Runs `graft_gemm_packed` over M rows, split across threads.
package enum PackedGemm {
    package enum Path: Int32, CaseIterable, Sendable { case auto = 0, portable = 1, avx2 = 2, avx512 = 3 }
    package enum Split: Sendable { case auto, rows, panels }

    package static func supported(_ p: Path) -> Bool { graft_gemm_path_supported(p.rawValue) != 0 }

    /// `GRAFT_PACKED_GEMM=0` in the environment (read once) keeps every product on OpenBLAS:
    /// a kill switch and an A/B baseline for measurements.
    package static let enabled: Bool = {
        guard let v = getenv("GRAFT_PACKED_GEMM") else { return true }
        return String(cString: v) != "0"
    }()
    package static var resolved: Path { Path(rawValue: graft_gemm_resolved_path()) ?? .portable }

    /// Rows (all batch dims folded) for which a MatMul with a constant weight takes the packed
    /// GEMM; one row takes the decode GEMV, two stay on OpenBLAS (see `LinearKernels.matmul`).
    package static let matMulRows = 3...

    /// Work (M·N·K) below which one thread runs the product (a fork/join costs ~10 µs).
    static let threadingWork = 1 << 18

    /// C[m × n] = act(A[m × k] · W (+ bias[n])). A's rows are `lda` apart, C's `ldc`. The
    /// activation runs on each thread's block of C right after the block is written (still in
    /// that core's cache).
    package static func run(_ w: PackedWeight, a: UnsafePointer<Float>, lda: Int, bias: UnsafePointer<Float>?,
                            c: UnsafeMutablePointer<Float>, ldc: Int, m: Int,
                            threads: Int, path: Path = .auto, split: Split = .auto, activation: LinearActivation? = nil) {
        let panels = w.panels, (n, k) = (w.n, w.k)
        let rowUnits = (m + 11) / 12   // 12-row units: whole micro-tiles for every path
        let t = m * n * k < threadingWork ? 1 : threads
        var byPanels: Bool
        switch split {
        case .rows: byPanels = false
        case .panels: byPanels = true
        case .auto: byPanels = panels >= 4 * t || rowUnits < t
        }
        if t <= 1 {
            graft_gemm_packed(path.rawValue, m, n, k, a, lda, w.data, bias, c, ldc, 0, m, 0, panels)
            activation?.apply(c, ldc: ldc, rows: 0..<m, columns: 0..<n)
        } else if byPanels {
            parallelFor(panels, threads: t) { r in
                graft_gemm_packed(path.rawValue, m, n, k, a, lda, w.data, bias, c, ldc, 0, m, r.lowerBound, r.upperBound)
                activation?.apply(c, ldc: ldc, rows: 0..<m, columns: r.lowerBound * 32..<min(r.upperBound * 32, n))
            }
        } else {
            parallelFor(rowUnits, threads: t) { r in
                let rows = r.lowerBound * 12..<min(r.upperBound * 12, m)
                graft_gemm_packed(path.rawValue, m, n, k, a, lda, w.data, bias, c, ldc, rows.lowerBound, rows.upperBound, 0, panels)
                activation?.apply(c, ldc: ldc, rows: rows, columns: 0..<n)
            }
        }
    }
}

/// An elementwise activation a weight product can apply to its own output (plan-time fusion,
/// `LinearEpilogues`): the same vector functions as the Gelu / FusedGelu kernels, so the fused
/// result equals the unfused one.
package enum LinearActivation: Sendable, Equatable {
    case geluErf, geluTanh

    /// In place on C[rows, columns] (row stride ldc).
    func apply(_ c: UnsafeMutablePointer<Float>, ldc: Int, rows: Range<Int>, columns: Range<Int>) {
        guard !columns.isEmpty else { return }
        for i in rows {
            let p = c + i * ldc + columns.lowerBound
            switch self {
            case .geluErf: vmath_gelu_erf(p, p, columns.count)
            case .geluTanh: vmath_gelu_tanh(p, p, columns.count)
            }
        }
    }
}

/// Matrix products: MatMul, Gemm, Conv (2-D, im2col + sgemm). float32 only. Products with a
/// constant 2-D weight run on Graft's packed GEMM (`PackedGemm`); everything else on OpenBLAS.
package enum LinearKernels {
    package static let entries: [(String, KernelFactory)] = [
        ("MatMul", { try matmul($0) }),
        ("Gemm", gemm),
        ("Conv", conv),
    ]

    /// Per-product work (M*N*K) below which OpenBLAS runs a GEMM on one thread anyway, so that
    /// running several of them side by side on our own threads cannot oversubscribe cores.
    static let smallGemmWork = 65_536

    /// BLAS dimensions are 32-bit (`blasint` is `int` in this OpenBLAS build).
    static func blasInt(_ v: Int, _ what: String, _ ctx: KernelContext) throws -> Int32 {
        guard v <= Int(Int32.max) else { throw ctx.fail(.limitExceeded, "\(what) (\(v)) exceeds the BLAS 32-bit limit") }
        return Int32(v)
    }

    // MARK: - MatMul

    /// One product C[m,n] = A[m,k] · B[k,n] (row-major, contiguous), choosing GEMV when a side is 1.
    @inline(__always)
    static func product(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>,
                        m: Int32, n: Int32, k: Int32) {
        if m == 1 {
            // c[n] = B^T a. GEMV's beta = 0 path scales y by 0 (y may hold NaN garbage from an
            // earlier use of the buffer; some OpenBLAS versions propagate it), so clear y first.
            c.update(repeating: 0, count: Int(n))
            cblas_sgemv(CblasRowMajor, CblasTrans, k, n, 1, b, n, a, 1, 0, c, 1)
        } else if n == 1 {
            // c[m] = A b
            c.update(repeating: 0, count: Int(m))
            cblas_sgemv(CblasRowMajor, CblasNoTrans, m, k, 1, a, k, b, 1, 0, c, 1)
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1, a, k, b, n, 0, c, n)
        }
    }

    /// Work (M·N·K) from which a weight product is split across the session's threads.
    static let splitGemmWork = 1 << 18

    /// Columns `cols` of C[m,n] = A[m,k] · B[k,n] (row-major; B and C keep their full row stride n).
    @inline(__always)
    static func columns(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>,
                        m: Int32, n: Int32, k: Int32, from cols: Range<Int>) {
        let nc = Int32(cols.count), b0 = b + cols.lowerBound, c0 = c + cols.lowerBound
        if m == 1 {
            // c[cols] = B[:, cols]ᵀ a; cleared first as in `product`.
            c0.update(repeating: 0, count: cols.count)
            cblas_sgemv(CblasRowMajor, CblasTrans, k, nc, 1, b0, n, a, 1, 0, c0, 1)
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, nc, k, 1, a, k, b0, n, 0, c0, n)
        }
    }

    /// What a MatMul with a 2-D weight may do to its output in the same pass (plan-time fusion,
    /// `LinearEpilogues`): add a bias row, then apply an activation.
    struct Epilogue: Sendable {
        /// n floats (any shape with n elements), added to every row of C.
        var bias: HostTensor?
        var activation: LinearActivation?

        /// C[rows, columns] (row stride ldc) += bias[columns], then the activation; for products
        /// whose kernel could not add the bias itself.
        func finish(_ c: UnsafeMutablePointer<Float>, ldc: Int, rows: Range<Int>, columns: Range<Int>) {
            if let bias, !columns.isEmpty {
                let b = bias.pointer(Float.self) + columns.lowerBound
                for i in rows {
                    let row = c + i * ldc + columns.lowerBound
                    vmath_arith_row(Int32(VMATH_ARITH_ADD), row, 1, b, 1, row, columns.count)
                }
            }
            activation?.apply(c, ldc: ldc, rows: rows, columns: columns)
        }
    }

    static func matmul(_ ctx: KernelContext, epilogue: Epilogue? = nil) throws -> CompiledKernel {
        let a = try ctx.input(0), b = try ctx.input(1)
        guard a.dtype == .float32, b.dtype == .float32 else {
            throw ctx.fail(.unsupported, "MatMul supports float32 only; inputs are \(a.dtype) and \(b.dtype)")
        }
        guard a.shape.count >= 1, b.shape.count >= 1 else {
            throw ctx.fail(.invalidModel, "MatMul inputs must have rank >= 1; shapes are \(a.shape) and \(b.shape)")
        }
        // numpy promotion of 1-D operands.
        let aShape = a.shape.count == 1 ? [1] + a.shape : a.shape
        let bShape = b.shape.count == 1 ? b.shape + [1] : b.shape
        let m = aShape[aShape.count - 2], k = aShape[aShape.count - 1]
        let kb = bShape[bShape.count - 2], n = bShape[bShape.count - 1]
        guard k == kb else {
            throw ctx.fail(.shapeMismatch, "inner dimensions differ: \(a.shape) x \(b.shape)")
        }
        let batchA = Array(aShape.dropLast(2)), batchB = Array(bShape.dropLast(2))
        let batch: [Int]
        do { batch = try Shape.broadcast(batchA, batchB) } catch {
            throw ctx.fail(.shapeMismatch, "batch dimensions of \(a.shape) and \(b.shape) cannot be broadcast")
        }
        var outShape = batch
        if a.shape.count > 1 { outShape.append(m) }
        if b.shape.count > 1 { outShape.append(n) }
        let total = try ShapeKernels.checked(outShape, ctx)
        let outType = TensorType(.float32, outShape)
        if let epilogue {
            guard b.shape.count == 2, epilogue.bias.map({ $0.dtype == .float32 && $0.count == n }) ?? true else {
                throw ctx.fail(.internalError, "a MatMul epilogue needs a 2-D weight and a bias of \(n) floats")
            }
        }
        if total == 0 { return CompiledKernel(outputs: [outType]) { _ in } }
        if k == 0 {
            return CompiledKernel(outputs: [outType]) { io in
                io.output(0, Float.self).update(repeating: 0, count: total)
                epilogue?.finish(io.output(0, Float.self), ldc: n, rows: 0..<total / n, columns: 0..<n)
            }
        }
        let n32 = try blasInt(n, "N", ctx), k32 = try blasInt(k, "K", ctx)

        if batchB.isEmpty {
            // B is a 2-D weight: fold every batch dim of A into M. OpenBLAS is pinned to one
            // thread (CoreModel.configureBLAS), so the session's threads split the product.
            // Each part packs its whole share of both operands on every call, so split the
            // larger one: by rows when there are more rows than columns (each part then packs
            // all of B [k×n] and its rows of A), else by columns (each packs its columns of B
            // and all of A [rows×k]) — columns for short sequences. One row (decode) splits K.
            let rowCount = Shape.product(batchA) * m
            let rows = try blasInt(rowCount, "rows of A", ctx)
            let threads = rowCount * n * k >= splitGemmWork ? ctx.threads : 1
            let byRows = rowCount >= 4 * threads && rowCount > n
            // One row (decode): each thread multiplies a contiguous block of B's rows (one
            // sequential stream through memory per thread, rather than a slice of every row)
            // into a partial sum; partials after the first live in `partials` [threads - 1][n]
            // and are added into C afterwards. Measured on the Llama decode step, 2 threads,
            // interleaved: 9.39–9.46 → 8.59–8.79 ms median.
            // With Graft's kernels on, one row runs on Graft's GEMV instead (`DecodeGemv`: the
            // same K split, each block read as 4 memory streams, partials summed in C), for any
            // weight pointer: it reads W in place. 0 parts: not used.
            let gemvParts = rowCount == 1 && PackedGemm.enabled ? DecodeGemv.parts(k: k, n: n, threads: ctx.threads) : 0
            let gemvPartials = gemvParts > 1 ? Scratch(count: (gemvParts - 1) * n) : nil
            let splitK = gemvParts == 0 && rowCount == 1 && threads > 1 && k >= 2 * 64
            let partials = splitK ? Scratch(count: (threads - 1) * n) : nil
            // The epilogue runs on each thread's block of C right after its product.
            let blas: @Sendable (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void = { pa, pb, pc in
                if gemvParts > 0 {
                    DecodeGemv.run(x: pa, w: pb, ldw: n, y: pc, k: k, n: n, parts: gemvParts, partials: gemvPartials?.p)
                    epilogue?.finish(pc, ldc: n, rows: 0..<1, columns: 0..<n)
                } else if let partials {
                    parallelFor(threads, threads: threads) { parts in
                        for t in parts {
                            let k0 = k * t / threads, k1 = k * (t + 1) / threads
                            let y = t == 0 ? pc : partials.p + (t - 1) * n
                            y.update(repeating: 0, count: n)
                            cblas_sgemv(CblasRowMajor, CblasTrans, Int32(k1 - k0), n32, 1, pb + k0 * n, n32, pa + k0, 1, 0, y, 1)
                        }
                    }
                    graft_gemv_sum(PackedGemm.Path.auto.rawValue, n, pc, partials.p, n, threads - 1)
                    epilogue?.finish(pc, ldc: n, rows: 0..<1, columns: 0..<n)
                } else if threads == 1 {
                    product(pa, pb, pc, m: rows, n: n32, k: k32)
                    epilogue?.finish(pc, ldc: n, rows: 0..<rowCount, columns: 0..<n)
                } else if byRows {
                    parallelFor(rowCount, threads: threads) { r in
                        product(pa + r.lowerBound * k, pb, pc + r.lowerBound * n, m: Int32(r.count), n: n32, k: k32)
                        epilogue?.finish(pc, ldc: n, rows: r, columns: 0..<n)
                    }
                } else {
                    parallelFor(n, threads: threads, minPerThread: 16) { cols in
                        columns(pa, pb, pc, m: rows, n: n32, k: k32, from: cols)
                        epilogue?.finish(pc, ldc: n, rows: 0..<rowCount, columns: cols)
                    }
                }
            }
            // Packed only where it measured faster (docs/ARCHITECTURE.md, "Weight GEMM"): one row
            // (decode) runs on Graft's GEMV above and two on OpenBLAS, both of which stream a
            // weight from memory faster than the packed 1–2-row tile; from three rows up the
            // packed GEMM (with 96-row blocks above 128 rows, MiniLM 2×128 … 8×128 2.5–8% faster
            // than OpenBLAS's GEMM).
            if PackedGemm.enabled, PackedGemm.matMulRows.contains(rowCount), b.shape.count == 2, ctx.constants.count > 1, let w = ctx.constants[1] {
                // Constant weight: Graft's packed GEMM, split across the session's threads. A
                // different pointer in the weight slot at run time (a merged adapter's private
                // copy) runs on OpenBLAS instead, so it is never computed with stale packing.
                let packed = LazyPackedWeight(w, k: k, n: n, transposed: false)
                let threads = ctx.threads
                let bias = epilogue?.bias, activation = epilogue?.activation
                return CompiledKernel(outputs: [outType]) { io in
                    let pb = io.raw(input: 1)
                    if pb != packed.address {
                        blas(io.input(0, Float.self), io.input(1, Float.self), io.output(0, Float.self))
                        return
                    }
                    PackedGemm.run(packed.get(threads: threads), a: io.input(0, Float.self), lda: k,
                                   bias: bias.map { UnsafePointer($0.pointer(Float.self)) },
                                   c: io.output(0, Float.self), ldc: n, m: rowCount, threads: threads, activation: activation)
                }
            }
            return CompiledKernel(outputs: [outType]) { io in
                blas(io.input(0, Float.self), io.input(1, Float.self), io.output(0, Float.self))
            }
        }

        guard epilogue == nil else { throw ctx.fail(.internalError, "a MatMul epilogue needs a 2-D weight") }
        // Batched: one product per output batch index, operands located by broadcast strides.
        let m32 = try blasInt(m, "M", ctx)
        let count = Shape.product(batch)
        let aStrides = Shape.broadcastStrides(batchA, to: batch)
        let bStrides = Shape.broadcastStrides(batchB, to: batch)
        let outStrides = Shape.strides(batch)
        var aOff = [Int](repeating: 0, count: count), bOff = [Int](repeating: 0, count: count)
        for i in 0..<count {
            var rem = i, ao = 0, bo = 0
            for d in 0..<batch.count {
                let c = rem / outStrides[d]
                rem -= c * outStrides[d]
                ao += c * aStrides[d]
                bo += c * bStrides[d]
            }
            aOff[i] = ao * m * k
            bOff[i] = bo * k * n
        }
        let cStride = m * n
        let threads = ctx.threads
        let small = m * n * k < smallGemmWork
        return CompiledKernel(outputs: [outType]) { [aOff, bOff] io in
            let pa = io.input(0, Float.self), pb = io.input(1, Float.self), pc = io.output(0, Float.self)
            // Run products side by side only when OpenBLAS will not thread them itself (it is
            // single-threaded, or the products are below its threading cutoff); otherwise let
            // each GEMM use OpenBLAS's threads. The process-wide OpenBLAS thread count is the
            // session's policy, only read here.
            let outer = threads > 1 && (small || openblas_get_num_threads() == 1)
            parallelFor(count, threads: outer ? threads : 1) { range in
                for i in range {
                    product(pa + aOff[i], pb + bOff[i], pc + i * cStride, m: m32, n: n32, k: k32)
                }
            }
        }
    }

    // MARK: - Gemm

    static func gemm(_ ctx: KernelContext) throws -> CompiledKernel {
        let a = try ctx.input(0), b = try ctx.input(1)
        guard a.dtype == .float32, b.dtype == .float32 else {
            throw ctx.fail(.unsupported, "Gemm supports float32 only; inputs are \(a.dtype) and \(b.dtype)")
        }
        guard a.shape.count == 2, b.shape.count == 2 else {
            throw ctx.fail(.invalidModel, "Gemm inputs A and B must be 2-D; shapes are \(a.shape) and \(b.shape)")
        }
        let transA = ctx.node.int("transA", default: 0) != 0
        let transB = ctx.node.int("transB", default: 0) != 0
        let alpha = ctx.node.float("alpha", default: 1)
        let beta = ctx.node.float("beta", default: 1)
        let m = transA ? a.shape[1] : a.shape[0], k = transA ? a.shape[0] : a.shape[1]
        let kb = transB ? b.shape[1] : b.shape[0], n = transB ? b.shape[0] : b.shape[1]
        guard k == kb else {
            throw ctx.fail(.shapeMismatch, "inner dimensions differ: A \(a.shape) (transA=\(transA)) x B \(b.shape) (transB=\(transB))")
        }
        // C: unidirectional broadcast to [M, N].
        var cRowStride = 0, cColStride = 0
        let hasC = ctx.has(2)
        if hasC {
            let c = try ctx.input(2)
            guard c.dtype == .float32 else { throw ctx.fail(.unsupported, "C has type \(c.dtype); Gemm supports float32 only") }
            guard c.shape.count <= 2, (try? Shape.broadcast(c.shape, [m, n])) == [m, n] else {
                throw ctx.fail(.shapeMismatch, "C \(c.shape) cannot be broadcast to [\(m), \(n)]")
            }
            let s = Shape.broadcastStrides(c.shape, to: [m, n])
            cRowStride = s[0]
            cColStride = s[1]
        }
        let out = TensorType(.float32, [m, n])
        let total = try ShapeKernels.checked(out.shape, ctx)
        let m32 = try blasInt(m, "M", ctx), n32 = try blasInt(n, "N", ctx), k32 = try blasInt(k, "K", ctx)
        let lda = Int32(max(transA ? m : k, 1)), ldb = Int32(max(transB ? k : n, 1))
        let useC = hasC && beta != 0
        if PackedGemm.enabled, !transA, alpha == 1, k > 0, total > 0, ctx.constants.count > 1, let w = ctx.constants[1],
           !useC || (beta == 1 && cRowStride == 0 && cColStride == 1) {
            // Constant weight, C absent or a bias row [N]: Graft's packed GEMM with the bias in
            // its epilogue; another weight pointer at run time (merged adapter) runs on OpenBLAS.
            let packed = LazyPackedWeight(w, k: k, n: n, transposed: transB)
            let threads = ctx.threads
            return CompiledKernel(outputs: [out]) { io in
                let y = io.output(0, Float.self)
                let bias: UnsafePointer<Float>? = useC ? io.input(2, Float.self) : nil
                if io.raw(input: 1) != packed.address {
                    if let bias { for i in 0..<m { (y + i * n).update(from: bias, count: n) } }
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                                m32, n32, k32, 1, io.input(0, Float.self), lda, io.input(1, Float.self), ldb,
                                useC ? 1 : 0, y, n32)
                    return
                }
                PackedGemm.run(packed.get(threads: threads), a: io.input(0, Float.self), lda: k, bias: bias, c: y, ldc: n, m: m, threads: threads)
            }
        }
        return CompiledKernel(outputs: [out]) { [cRowStride, cColStride] io in
            guard total > 0 else { return }
            let y = io.output(0, Float.self)
            if useC {
                let c = io.input(2, Float.self)
                for i in 0..<m {
                    let row = y + i * n, cr = c + i * cRowStride
                    if cColStride == 1 {
                        for j in 0..<n { row[j] = beta * cr[j] }
                    } else {
                        row.update(repeating: beta * cr[0], count: n)
                    }
                }
            } else if k == 0 {
                y.update(repeating: 0, count: total)
            }
            guard k > 0 else { return }
            cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                        m32, n32, k32, alpha, io.input(0, Float.self), lda, io.input(1, Float.self), ldb,
                        useC ? 1 : 0, y, n32)
        }
    }

    // MARK: - Conv

    /// A float buffer owned by one compiled kernel (allocated once at plan time).
    final class Scratch: @unchecked Sendable {
        let p: UnsafeMutablePointer<Float>
        init(count: Int) { p = .allocate(capacity: max(count, 1)) }
        deinit { p.deallocate() }
    }

    @inline(__always)
    static func ceilDiv(_ a: Int, _ b: Int) -> Int { a >= 0 ? (a + b - 1) / b : -((-a) / b) }

    static func conv(_ ctx: KernelContext) throws -> CompiledKernel {
        let x = try ctx.input(0), w = try ctx.input(1)
        guard x.dtype == .float32, w.dtype == .float32 else {
            throw ctx.fail(.unsupported, "Conv supports float32 only; inputs are \(x.dtype) and \(w.dtype)")
        }
        guard x.shape.count == 4 else {
            throw ctx.fail(.unsupported, "only 2-D Conv (4-D input [N, C, H, W]) is supported; input has shape \(x.shape) (\(x.shape.count - 2)-D)")
        }
        guard w.shape.count == 4 else {
            throw ctx.fail(.invalidModel, "weights must be 4-D [M, C/group, kH, kW]; they have shape \(w.shape)")
        }
        let node = ctx.node
        let (batch, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (mOut, cg, kh, kw) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3])
        let group = node.int("group", default: 1)
        guard group >= 1, cg * group == c, mOut % group == 0 else {
            throw ctx.fail(.shapeMismatch, "input channels \(c), weight \(w.shape) and group \(group) are inconsistent")
        }
        if let ks = node.ints("kernel_shape"), ks != [kh, kw] {
            throw ctx.fail(.shapeMismatch, "kernel_shape \(ks) does not match weights \(w.shape)")
        }
        let strides = node.ints("strides") ?? [1, 1]
        let dil = node.ints("dilations") ?? [1, 1]
        guard strides.count == 2, strides.allSatisfy({ $0 >= 1 }), dil.count == 2, dil.allSatisfy({ $0 >= 1 }) else {
            throw ctx.fail(.invalidModel, "strides \(strides) and dilations \(dil) must be two positive values")
        }
        guard kh >= 1, kw >= 1 else { throw ctx.fail(.invalidModel, "kernel \(w.shape) is empty") }
        let effK = [(kh - 1) * dil[0] + 1, (kw - 1) * dil[1] + 1]
        let inHW = [h, wd]
        var padBegin = [0, 0], padEnd = [0, 0]
        var outHW = [0, 0]
        let autoPad = node.string("auto_pad") ?? "NOTSET"
        switch autoPad {
        case "NOTSET", "VALID":
            if autoPad == "NOTSET", let p = node.ints("pads") {
                guard p.count == 4, p.allSatisfy({ $0 >= 0 }) else { throw ctx.fail(.invalidModel, "pads \(p) must be four non-negative values") }
                padBegin = [p[0], p[1]]
                padEnd = [p[2], p[3]]
            }
            for i in 0..<2 {
                let span = inHW[i] + padBegin[i] + padEnd[i] - effK[i]
                guard span >= 0 else {
                    throw ctx.fail(.shapeMismatch, "kernel extent \(effK[i]) exceeds padded input \(inHW[i] + padBegin[i] + padEnd[i]) on spatial axis \(i)")
                }
                outHW[i] = span / strides[i] + 1
            }
        case "SAME_UPPER", "SAME_LOWER":
            for i in 0..<2 {
                outHW[i] = ceilDiv(inHW[i], strides[i])
                let totalPad = max(0, (outHW[i] - 1) * strides[i] + effK[i] - inHW[i])
                padBegin[i] = autoPad == "SAME_UPPER" ? totalPad / 2 : totalPad - totalPad / 2
                padEnd[i] = totalPad - padBegin[i]
            }
        default:
            throw ctx.fail(.invalidModel, "unknown auto_pad '\(autoPad)'")
        }
        let hasBias = ctx.has(2)
        if hasBias {
            let bt = try ctx.input(2)
            guard bt.dtype == .float32, bt.shape == [mOut] else {
                throw ctx.fail(.shapeMismatch, "bias must be float32 [\(mOut)]; it is \(bt)")
            }
        }
        let (oh, ow) = (outHW[0], outHW[1])
        let outShape = [batch, mOut, oh, ow]
        let total = try ShapeKernels.checked(outShape, ctx)
        let out = TensorType(.float32, outShape)
        if total == 0 { return CompiledKernel(outputs: [out]) { _ in } }

        let kg = try ShapeKernels.checked([cg, kh, kw], ctx, "patch"), mg = mOut / group, ohw = oh * ow
        if !(kh == 1 && kw == 1) || strides != [1, 1] {
            try ShapeKernels.checked([kg, ohw], ctx, "im2col buffer")
        }
        let mg32 = try blasInt(mg, "output channels per group", ctx)
        let ohw32 = try blasInt(ohw, "output positions", ctx)
        let kg32 = try blasInt(kg, "patch size", ctx)
        let pointwise = kh == 1 && kw == 1 && strides == [1, 1] && padBegin == [0, 0] && padEnd == [0, 0]
        // Valid output-column range per kernel column: input column ow*sw - pl + kx*dw in [0, W).
        let (sh, sw, dh, dw, pt, pl) = (strides[0], strides[1], dil[0], dil[1], padBegin[0], padBegin[1])
        var owLo = [Int](), owHi = [Int]()
        for kx in 0..<kw {
            let off = kx * dw - pl
            let lo = min(max(ceilDiv(-off, sw), 0), ow)
            let hi = min(max(ceilDiv(wd - off, sw), lo), ow)
            owLo.append(lo)
            owHi.append(hi)
        }
        // The im2col buffer is allocated once here and reused by every run: a compiled Conv
        // kernel must therefore not run on two threads at once (one session runs on one thread).
        let scratch: Scratch? = pointwise ? nil : Scratch(count: kg * ohw)
        let inPlane = h * wd
        return CompiledKernel(outputs: [out]) { [owLo, owHi] io in
            let px = io.input(0, Float.self), pw = io.input(1, Float.self), py = io.output(0, Float.self)
            for img in 0..<batch {
                for g in 0..<group {
                    let xg = px + (img * c + g * cg) * inPlane
                    let col: UnsafePointer<Float>
                    if let scratch {
                        let dst = scratch.p
                        for ci in 0..<cg {
                            let plane = xg + ci * inPlane
                            for ky in 0..<kh {
                                for kx in 0..<kw {
                                    let rowBase = dst + ((ci * kh + ky) * kw + kx) * ohw
                                    let lo = owLo[kx], hi = owHi[kx]
                                    let colOff = kx * dw - pl
                                    for y in 0..<oh {
                                        let r = rowBase + y * ow
                                        let iy = y * sh - pt + ky * dh
                                        if iy < 0 || iy >= h {
                                            r.update(repeating: 0, count: ow)
                                            continue
                                        }
                                        let srcRow = plane + iy * wd + colOff
                                        if lo > 0 { r.update(repeating: 0, count: lo) }
                                        if sw == 1 {
                                            if hi > lo { (r + lo).update(from: srcRow + lo, count: hi - lo) }
                                        } else {
                                            for xo in lo..<hi { r[xo] = srcRow[xo * sw] }
                                        }
                                        if hi < ow { (r + hi).update(repeating: 0, count: ow - hi) }
                                    }
                                }
                            }
                        }
                        col = UnsafePointer(dst)
                    } else {
                        col = xg
                    }
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, mg32, ohw32, kg32, 1,
                                pw + g * mg * kg, kg32, col, ohw32, 0, py + (img * mOut + g * mg) * ohw, ohw32)
                }
                if hasBias {
                    let pb = io.input(2, Float.self)
                    for oc in 0..<mOut {
                        let v = pb[oc]
                        let r = py + (img * mOut + oc) * ohw
                        for i in 0..<ohw { r[i] += v }
                    }
                }
            }
        }
    }
}

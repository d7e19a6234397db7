#if canImport(Glibc)
import Glibc
#endif

/// Normalisation over trailing dims: LayerNormalization, and RMS norm in its two spellings
/// (ONNX Runtime's SimplifiedLayerNormalization, ONNX 23's RMSNormalization).
package enum NormalizationKernels {
    package static let entries: [(String, KernelFactory)] = [
        ("LayerNormalization", { try norm($0, rms: false) }),
        ("SimplifiedLayerNormalization", { try norm($0, rms: true) }),
        ("RMSNormalization", { try norm($0, rms: true) }),
    ]

    /// Rows below this many elements per thread are not split.
    static let grain = 16384

    /// Layout of a per-element parameter (Scale, B) against the normalised block: a full
    /// block (stride 1) or one value (stride 0).
    static func parameterStride(_ ctx: KernelContext, _ i: Int, _ what: String, block: [Int]) throws -> Int {
        let t = try ctx.require(i, [.float32])
        let n = Shape.product(block)
        if t.count == 1 { return 0 }
        var own = t.shape
        while own.first == 1 && own.count > block.count { own.removeFirst() }
        var trimmedBlock = block
        while own.count < trimmedBlock.count && trimmedBlock.first == 1 { trimmedBlock.removeFirst() }
        guard t.count == n, own == trimmedBlock else {
            throw ctx.fail(.unsupported, "\(what) has shape \(t.shape); expected the normalised shape \(block) (or a single value)")
        }
        return 1
    }

    static func norm(_ ctx: KernelContext, rms: Bool) throws -> CompiledKernel {
        let x = try ctx.require(0, [.float32])
        let rank = x.shape.count
        guard rank > 0 else { throw ctx.fail(.invalidModel, "input X must have rank at least 1") }
        let axis = try Shape.axis(ctx.node.int("axis", default: -1), rank: rank, op: ctx.node.label)
        let epsilon = ctx.node.float("epsilon", default: 1e-5)
        let block = Array(x.shape.suffix(from: axis))
        let rows = Shape.product(Array(x.shape.prefix(axis)))
        let n = Shape.product(block)
        let scaleStride = try parameterStride(ctx, 1, "Scale", block: block)
        let hasBias = !rms && ctx.has(2)
        let biasStride = hasBias ? try parameterStride(ctx, 2, "B", block: block) : 0

        // Optional statistics outputs: shape of X with the normalised dims set to 1.
        var statShape = x.shape
        for k in axis..<rank { statShape[k] = 1 }
        let outs = ctx.node.outputs
        var outputTypes = [x]
        let statNames: [String] = rms ? (ctx.node.opType == "RMSNormalization" ? [] : ["InvStdDev"]) : ["Mean", "InvStdDev"]
        for j in 1..<max(outs.count, 1) {
            guard j <= statNames.count else { throw ctx.fail(.invalidModel, "has \(outs.count) outputs; at most \(statNames.count + 1) are defined") }
            outputTypes.append(TensorType(.float32, statShape))
        }
        // Which output slot gets mean / inverse std dev (-1: not requested).
        let wanted = { (j: Int) -> Bool in j < outs.count && !outs[j].isEmpty }
        let meanOut = !rms && wanted(1) ? 1 : -1
        let invOut = rms ? (wanted(1) && !statNames.isEmpty ? 1 : -1) : (wanted(2) ? 2 : -1)
        let threads = ctx.threads
        let row = RowNorm(n: n, rms: rms, epsilon: epsilon, scaleStride: scaleStride, hasBias: hasBias, biasStride: biasStride)

        return CompiledKernel(outputs: outputTypes) { io in
            let px = io.input(0, Float.self), py = io.output(0, Float.self)
            let ps = io.input(1, Float.self)
            let pb: UnsafePointer<Float> = hasBias ? io.input(2, Float.self) : ps
            let pm: UnsafeMutablePointer<Float>? = meanOut >= 0 ? io.output(meanOut, Float.self) : nil
            let pi: UnsafeMutablePointer<Float>? = invOut >= 0 ? io.output(invOut, Float.self) : nil
            guard n > 0 else { return }
            parallelFor(rows, threads: threads, minPerThread: max(1, grain / n)) { range in
                for r in range {
                    let (mean, inv) = row.run(px + r * n, py + r * n, ps, pb)
                    pm?[r] = mean
                    pi?[r] = inv
                }
            }
        }
    }

    /// One row's normalisation: LayerNormalization (`rms` false: centred, scaled, biased) or RMS
    /// norm (`x · 1/√(mean(x²) + ε) · scale`). Shared by the kernels above and the fused
    /// residual-add kernels (FusedKernels.swift), so both normalise identically.
    struct RowNorm: Sendable {
        let n: Int
        let rms: Bool
        let epsilon: Float
        let scaleStride: Int   // 1: a scale per element, 0: one value
        let hasBias: Bool
        let biasStride: Int

        /// Normalises the row `xr` [n] into `yr` [n] (which may be `xr`: every element is read
        /// before it is written) with scale `ps` and bias `pb` (strided as above; `pb` unused
        /// without a bias). Returns the mean (0 for RMS) and the inverse standard deviation.
        @inline(__always)
        func run(_ xr: UnsafePointer<Float>, _ yr: UnsafeMutablePointer<Float>, _ ps: UnsafePointer<Float>,
                 _ pb: UnsafePointer<Float>) -> (mean: Float, inv: Float) {
            let fn = Float(n)
            // Rows are centred as (x - m0) - dm: m0 is the first-pass mean, dm its
            // correction; both floats, so the row offset cancels exactly.
            let mean: Float, inv: Float, m0: Float, dm: Float
            if rms {
                mean = 0; m0 = 0; dm = 0
                inv = 1 / sqrtf(deviations(xr, n, around: 0).squares / fn + epsilon)
            } else {
                // Corrected two-pass: the second pass's sum of deviations repairs the
                // rounding of the first mean (rows with a large offset, say).
                m0 = ReductionKernels.sumFloats(xr, n) / fn
                let (d, d2) = deviations(xr, n, around: m0)
                dm = d / fn
                mean = m0 + dm
                inv = 1 / sqrtf(max(d2 - d * d / fn, 0) / fn + epsilon)
            }
            if rms {
                if scaleStride == 1 {
                    for j in 0..<n { yr[j] = xr[j] * inv * ps[j] }
                } else {
                    let s = ps[0]
                    for j in 0..<n { yr[j] = xr[j] * inv * s }
                }
            } else if scaleStride == 1 && hasBias && biasStride == 1 {
                for j in 0..<n { yr[j] = ((xr[j] - m0) - dm) * inv * ps[j] + pb[j] }
            } else if scaleStride == 1 && !hasBias {
                for j in 0..<n { yr[j] = ((xr[j] - m0) - dm) * inv * ps[j] }
            } else {
                for j in 0..<n {
                    let b: Float = hasBias ? pb[j * biasStride] : 0
                    yr[j] = ((xr[j] - m0) - dm) * inv * ps[j * scaleStride] + b
                }
            }
            return (mean, inv)
        }
    }

    /// Σ (x - c) and Σ (x - c)² over `n` floats, in eight lanes.
    @inline(__always)
    static func deviations(_ p: UnsafePointer<Float>, _ n: Int, around c: Float) -> (sum: Float, squares: Float) {
        var acc = SIMD8<Float>(repeating: 0)
        var acc2 = SIMD8<Float>(repeating: 0)
        let cv = SIMD8<Float>(repeating: c)
        let raw = UnsafeRawPointer(p)
        var j = 0
        while j + 8 <= n {
            let d = raw.loadUnaligned(fromByteOffset: j * 4, as: SIMD8<Float>.self) - cv
            acc += d
            acc2 += d * d
            j += 8
        }
        var s = acc.sum(), s2 = acc2.sum()
        while j < n { let d = p[j] - c; s += d; s2 += d * d; j += 1 }
        return (s, s2)
    }
}

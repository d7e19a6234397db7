import CMath

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

        /// Normalises the row `xr` [n] into `yr` [n] (which may be `xr`) with scale `ps` and bias
        /// `pb` (strided as above; `pb` unused without a bias): `vmath_norm_row`
        /// (Sources/CMath/rownorm.c, the corrected two-pass statistics described there). Returns
        /// the mean (0 for RMS) and the inverse standard deviation.
        @inline(__always)
        func run(_ xr: UnsafePointer<Float>, _ yr: UnsafeMutablePointer<Float>, _ ps: UnsafePointer<Float>,
                 _ pb: UnsafePointer<Float>) -> (mean: Float, inv: Float) {
            var mean: Float = 0, inv: Float = 0
            vmath_norm_row(xr, yr, n, rms ? 1 : 0, epsilon, ps, scaleStride, hasBias ? pb : nil, biasStride, &mean, &inv)
            return (mean, inv)
        }

        /// `s = a + b` into `sum` [n] (which may be `yr`), then `run(sum, yr, ...)`, the add taken
        /// in the normalisation's first pass (`vmath_add_norm_row`).
        @inline(__always)
        func runAdding(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, sum: UnsafeMutablePointer<Float>,
                       _ yr: UnsafeMutablePointer<Float>, _ ps: UnsafePointer<Float>, _ pb: UnsafePointer<Float>) {
            vmath_add_norm_row(a, b, sum, yr, n, rms ? 1 : 0, epsilon, ps, scaleStride, hasBias ? pb : nil, biasStride, nil, nil)
        }
    }
}

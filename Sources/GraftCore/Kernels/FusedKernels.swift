import CMath

/// Kernels of the nodes the fusion pass (`Passes/Fusion.swift`) writes, domain `graft`. Each
/// computes what its chain of ONNX nodes computed, in one pass over memory and one step.
package enum FusedKernels {
    package static let entries: [(String, KernelFactory)] = [
        // x [any shape] → 0.5·x·(1 + erf(x/√2)) [same shape]: the Gelu kernel (vmath_gelu_erf);
        // with approximate = "tanh", 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) (vmath_gelu_tanh).
        ("graft:FusedGelu", { try ElementwiseKernels.unaryFloat($0, .gelu) }),
        ("graft:FusedScaledSoftmax", scaledSoftmax),
        // x [..., n], scale [n] → x · 1/√(mean(x²) + ε) · scale [x's shape]: the RMS
        // normalisation kernel (attribute epsilon; the normalised axis is the last).
        ("graft:FusedRMSNorm", { try NormalizationKernels.norm($0, rms: true) }),
        // x [..., n], scale [n], bias [n] (optional) → LayerNormalization over the last axis
        // (attribute epsilon): the LayerNormalization kernel.
        ("graft:FusedLayerNorm", { try NormalizationKernels.norm($0, rms: false) }),
        ("graft:FusedAddNorm", addNorm),
        // Q, K, V [B, S, H·D], mask → attention output [B, Sq, H·Dv] (FusedAttention.swift).
        ("graft:FusedAttention", FusedAttentionKernel.make),
        // A [B, H, M, K], K/V cache X [B, KVH, ·, ·] → A · op(X[h / g]) [B, H, M, N] (GroupedMatMul.swift).
        ("graft:GroupedMatMul", GroupedMatMulKernel.make),
    ]

    /// Residual add + normalisation per row (the add in the normalisation's first pass):
    ///     S = A + B;  Y = LayerNormalization(S, scale, bias)   (rms = 0)
    ///                 Y = S · 1/√(mean(S²) + ε) · scale          (rms = 1)
    /// over the trailing dims from `axis` (attributes axis, epsilon, rms).
    /// A, B: float32 of one shape [rows, n] (as the dims before / from axis); scale, bias: [n]
    /// or one value; outputs Y [A's shape] and, when the graph reads the sum elsewhere, S
    /// [A's shape] (output 1).
    static func addNorm(_ ctx: KernelContext) throws -> CompiledKernel {
        let a = try ctx.require(0, [.float32])
        let b = try ctx.require(1, [.float32])
        guard a.shape == b.shape else {
            throw ctx.fail(.unsupported, "the residual add's inputs have shapes \(a.shape) and \(b.shape); the fused kernel needs one shape")
        }
        let rank = a.shape.count
        guard rank > 0 else { throw ctx.fail(.invalidModel, "input must have rank at least 1") }
        let rms = ctx.node.int("rms", default: 0) != 0
        let axis = try Shape.axis(ctx.node.int("axis", default: -1), rank: rank, op: ctx.node.label)
        let block = Array(a.shape.suffix(from: axis))
        let n = Shape.product(block), rows = Shape.product(Array(a.shape.prefix(axis)))
        let scaleStride = try NormalizationKernels.parameterStride(ctx, 2, "Scale", block: block)
        let hasBias = !rms && ctx.has(3)
        let biasStride = hasBias ? try NormalizationKernels.parameterStride(ctx, 3, "B", block: block) : 0
        let row = NormalizationKernels.RowNorm(n: n, rms: rms, epsilon: ctx.node.float("epsilon", default: 1e-5),
                                               scaleStride: scaleStride, hasBias: hasBias, biasStride: biasStride)
        let keepSum = ctx.node.outputs.count > 1 && !ctx.node.outputs[1].isEmpty
        let threads = ctx.threads
        return CompiledKernel(outputs: keepSum ? [a, a] : [a]) { io in
            let pa = io.input(0, Float.self), pb = io.input(1, Float.self), ps = io.input(2, Float.self)
            let pbias: UnsafePointer<Float> = hasBias ? io.input(3, Float.self) : ps
            let py = io.output(0, Float.self)
            // The sum goes to its own output when kept, else into Y's row, normalised in place.
            let sum = keepSum ? io.output(1, Float.self) : py
            guard n > 0 else { return }
            parallelFor(rows, threads: threads, minPerThread: max(1, NormalizationKernels.grain / n)) { range in
                for r in range {
                    let o = r * n
                    row.runAdding(pa + o, pb + o, sum: sum + o, py + o, ps, pbias)
                }
            }
        }
    }

    /// Attention probabilities from raw scores in one pass per row:
    ///     Y = Softmax(S·scale + M)   or   Softmax((S + M)·scale)   (mask_first = 1)
    /// (÷scale with divide = 1; M optional), softmax over the last axis.
    /// S: [..., n] float32 (the Q·Kᵀ product, e.g. [B, H, Sq, Sk]); M: float32 broadcastable to
    /// S without growing it (e.g. [B, 1, 1, Sk], [B, 1, Sq, Sk], [Sq, Sk]); Y: S's shape.
    static func scaledSoftmax(_ ctx: KernelContext) throws -> CompiledKernel {
        let s = try ctx.require(0, [.float32])
        guard let n = s.shape.last else { throw ctx.fail(.invalidModel, "the scores must have rank at least 1") }
        let hasMask = ctx.has(1)
        let scale = ctx.node.float("scale", default: 1)
        let flags = Int32((ctx.node.int("mask_first", default: 0) != 0 ? VMATH_SOFTMAX_MASK_FIRST : 0)
                          | (ctx.node.int("divide", default: 0) != 0 ? VMATH_SOFTMAX_DIVIDE : 0))
        let rows = n == 0 ? 0 : s.count / n
        // Per row of S: the element offset of its mask row, and the mask's stride along the row.
        var maskRow: [Int] = []
        var maskStride = 0
        if hasMask {
            let m = try ctx.require(1, [.float32])
            let joint = try? Shape.broadcast(s.shape, m.shape)
            guard joint == s.shape else {
                throw ctx.fail(.unsupported, "mask \(m.shape) does not broadcast to the scores \(s.shape)")
            }
            let strides = Shape.broadcastStrides(m.shape, to: s.shape)
            maskStride = strides.last ?? 0
            let outer = Array(s.shape.dropLast())
            maskRow.reserveCapacity(rows)
            for r in 0..<rows {
                var rem = r, off = 0
                for k in stride(from: outer.count - 1, through: 0, by: -1) {
                    off += (rem % outer[k]) * strides[k]
                    rem /= outer[k]
                }
                maskRow.append(off)
            }
        }
        let threads = ctx.threads
        return CompiledKernel(outputs: [s]) { [maskRow, maskStride] io in
            let x = io.input(0, Float.self), y = io.output(0, Float.self)
            let m: UnsafePointer<Float>? = hasMask ? io.input(1, Float.self) : nil
            // Same split as the Softmax kernel: rows of at least 4096 elements per thread.
            parallelFor(rows, threads: threads, minPerThread: max(1, 4096 / max(n, 1))) { range in
                for r in range {
                    vmath_softmax_scaled_row(x + r * n, m.map { $0 + maskRow[r] }, maskStride, scale, flags, y + r * n, n)
                }
            }
        }
    }
}

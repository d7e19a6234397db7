import CMath

/// Kernels of the nodes the fusion pass (`Passes/Fusion.swift`) writes, domain `graft`. Each
/// computes what its chain of ONNX nodes computed, in one pass over memory and one step.
package enum FusedKernels {
    package static let entries: [(String, KernelFactory)] = [
        // x [any shape] → 0.5·x·(1 + erf(x/√2)) [same shape]: the Gelu kernel (vmath_gelu_erf).
        ("graft:FusedGelu", { try ElementwiseKernels.unaryFloat($0, .gelu) }),
        ("graft:FusedScaledSoftmax", scaledSoftmax),
    ]

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

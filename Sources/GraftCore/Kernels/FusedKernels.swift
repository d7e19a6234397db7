import CMath

/// Kernels of the nodes the fusion pass (`Passes/Fusion.swift`) writes, domain `graft`. Each
/// computes what its chain of ONNX nodes computed, in one pass over memory and one step.
package enum FusedKernels {
    package static let entries: [(String, KernelFactory)] = [
        // x [any shape] → 0.5·x·(1 + erf(x/√2)) [same shape]: the Gelu kernel (vmath_gelu_erf).
        ("graft:FusedGelu", { try ElementwiseKernels.unaryFloat($0, .gelu) }),
    ]
}

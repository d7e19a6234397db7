package enum ElementwiseKernels {
    package static let entries: [(String, KernelFactory)] = []
}

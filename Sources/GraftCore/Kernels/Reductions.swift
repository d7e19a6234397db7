package enum ReductionKernels {
    package static let entries: [(String, KernelFactory)] = []
}

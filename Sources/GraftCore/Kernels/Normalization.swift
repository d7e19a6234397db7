package enum NormalizationKernels {
    package static let entries: [(String, KernelFactory)] = []
}

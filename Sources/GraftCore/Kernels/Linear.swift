package enum LinearKernels {
    package static let entries: [(String, KernelFactory)] = []
}

package enum IndexingKernels {
    package static let entries: [(String, KernelFactory)] = []
}

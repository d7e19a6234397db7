package enum ShapeKernels {
    package static let entries: [(String, KernelFactory)] = []
}

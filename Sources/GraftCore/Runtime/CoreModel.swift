import COpenBLAS

/// A loaded, validated and optimised model: immutable after init, shared by any number of
/// sessions on any threads.
package final class CoreModel: Sendable {
    package let graph: Graph
    package let source: String

    /// Loads an ONNX file; external data is resolved inside the file's folder.
    package convenience init(path: String) throws {
        try self.init(graph: ONNXImporter.load(path: path), source: path)
    }

    /// Loads an ONNX file; with `externalData` false, a model that keeps tensors in external
    /// files is refused (invalidModel) instead of reading them.
    package convenience init(path: String, externalData: Bool) throws {
        if externalData {
            try self.init(path: path)
        } else {
            let file = try MappedFile(path: path)
            try self.init(graph: ONNXImporter.load(bytes: file.bytes, folder: nil, source: path), source: path)
        }
    }

    /// Loads an ONNX model from bytes (external data is refused: there is no folder).
    package convenience init(bytes: UnsafeRawBufferPointer) throws {
        try self.init(graph: ONNXImporter.load(bytes: bytes, folder: nil), source: "<memory>")
    }

    package init(graph imported: Graph, source: String) throws {
        CoreModel.configureBLAS
        var g = try GraphValidation.validateAndSort(imported)
        g = DeadNodeElimination.run(g)
        g = try ConstantFolding.run(g)
        g = DeadNodeElimination.run(g)
        graph = g
        self.source = source
    }

    /// OpenBLAS keeps one process-wide thread pool. Graft pins it to one thread and
    /// parallelises inside its own kernels with each session's thread count instead, so that
    /// several sessions running at once never oversubscribe the cores.
    private static let configureBLAS: Void = { openblas_set_num_threads(1) }()
}

import COpenBLAS

/// A loaded, validated and optimised model: immutable after init, shared by any number of
/// sessions on any threads.
package final class CoreModel: Sendable {
    package let graph: Graph
    package let source: String
    /// Symbolic dims of every value, from `SymbolicShapes` (nil when the probes could not plan
    /// the graph; runs still plan concretely).
    package let symbolicShapes: [String: [Dim]]?
    /// Linear layers adapters can attach to, in graph order.
    package let sites: [Site]
    /// Site names as C strings for plugins.
    package let siteNames: SiteNameTable
    /// Gated MLP blocks (three sites each) that block mixtures can replace.
    package let blocks: [MLPBlock]
    /// Whether load-time fusions ran; plans then also fuse weight products with their bias and
    /// activation (`LinearEpilogues`).
    package let fused: Bool

    /// Loads an ONNX file; external data is resolved inside the file's folder, or, with
    /// `externalData` false, refused (invalidModel) instead of read.
    /// `siteMap`: node (or output) names → module names for adapter sites, overriding the
    /// names Graft resolves itself. `limits`: the caps this model, its sessions and the
    /// adapters loaded for it obey (validated: each at least 1).
    package convenience init(path: String, externalData: Bool = true, siteMap: [String: String] = [:],
                             limits: Limits = .defaults, fuse: Bool = Fusion.enabledByEnvironment) throws {
        try self.init(graph: ONNXImporter.load(path: path, externalData: externalData, limits: limits.validated()),
                      source: path, siteMap: siteMap, fuse: fuse)
    }

    /// Loads an ONNX model from bytes (external data is refused: there is no folder).
    package convenience init(bytes: UnsafeRawBufferPointer, siteMap: [String: String] = [:], limits: Limits = .defaults,
                             fuse: Bool = Fusion.enabledByEnvironment) throws {
        try self.init(graph: ONNXImporter.load(bytes: bytes, folder: nil, limits: limits.validated()),
                      source: "<memory>", siteMap: siteMap, fuse: fuse)
    }

    /// The caps the model was loaded with.
    package var limits: Limits { graph.limits }

    /// `fuse`: run the fusion pass (`Passes/Fusion.swift`); off with `GRAFT_FUSE=0`.
    package init(graph imported: Graph, source: String, siteMap: [String: String] = [:],
                 fuse: Bool = Fusion.enabledByEnvironment) throws {
        CoreModel.configureBLAS
        var g = try GraphValidation.validateAndSort(imported)
        g = DeadNodeElimination.run(g)
        g = try ConstantFolding.run(g)
        g = DeadNodeElimination.run(g)
        // Folding turns constant subgraphs (Constant nodes, arithmetic on weights) into
        // initializers: the weight cap covers what the model holds after it too.
        try g.limits.check(.weightBytes, g.initializers.values.reduce(0) { $0 + $1.byteCount }, "\(source): the weights after constant folding", verb: "need")
        let inferred = SymbolicShapes.inferTypes(g)
        let shapes = inferred?.dims
        if let shapes { try CoreModel.checkDeclaredShapes(g, shapes) }
        symbolicShapes = shapes
        sites = try SiteDiscovery.discover(g, siteMap: siteMap)
        siteNames = SiteNameTable(sites)
        blocks = BlockDiscovery.discover(g, sites: sites)
        // Fusions run last, on what sites and blocks were found in: they never absorb a site's
        // nodes or a block's, so both still describe the fused graph.
        if fuse { g = Fusion.run(g, shapes: shapes, dtypes: inferred?.dtypes, sites: sites, blocks: blocks) }
        graph = g
        fused = fuse
        self.source = source
    }

    /// Declared shapes (graph outputs, value_info) must agree with what the graph computes:
    /// same rank, and the same size where both are fixed.
    private static func checkDeclaredShapes(_ g: Graph, _ shapes: [String: [Dim]]) throws {
        var producer: [String: Node] = [:]
        for n in g.nodes { for o in n.outputs { producer[o] = n } }
        let declared = g.outputs.map { ($0, "graph output") } + g.valueInfo.values.map { ($0, "value_info") }
        for (decl, role) in declared {
            guard let want = decl.dims, let got = shapes[decl.name] else { continue }
            let by = producer[decl.name].map { " (computed by \($0.label))" } ?? ""
            guard want.count == got.count else {
                throw GraftError(.invalidModel, "\(role) '\(decl.name)' is declared with rank \(want.count) \(want) but the graph computes rank \(got.count) \(got)\(by)")
            }
            for (w, h) in zip(want, got) {
                if case .fixed(let x) = w, case .fixed(let y) = h, x != y {
                    throw GraftError(.invalidModel, "\(role) '\(decl.name)' is declared with shape \(want) but the graph computes \(got)\(by)")
                }
            }
        }
    }

    /// OpenBLAS keeps one process-wide thread pool. Graft pins it to one thread and
    /// parallelises inside its own kernels with each session's thread count instead, so that
    /// several sessions running at once never oversubscribe the cores.
    private static let configureBLAS: Void = { openblas_set_num_threads(1) }()
}

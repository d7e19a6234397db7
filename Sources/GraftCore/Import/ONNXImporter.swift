import COnnx

/// Reads an ONNX ModelProto (through the COnnx facade) into a `Graph`. Structural checks that
/// need the proto (types, attribute kinds, tensor data) happen here; graph-level checks are in
/// `GraphValidation`.
package enum ONNXImporter {
    /// Default-domain opsets whose operator forms the kernels implement.
    package static let supportedOpsets = 11...23
    /// Files from IR 3 (ONNX 1.0 era) to IR 11 parse the same way for what Graft reads.
    package static let supportedIRVersions = 3...11

    /// Loads the model at `path`; external data is looked up beside it, or refused when
    /// `externalData` is false. `limits` travel with the graph (`Graph.limits`); the weight
    /// cap is checked here, tensor by tensor, before each initializer is decoded.
    package static func load(path: String, externalData: Bool = true, limits: Limits = .defaults) throws -> Graph {
        let file = try MappedFile(path: path, populate: true)
        let folder = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        let externals = externalData
            ? ExternalDataResolver(folder: folder.isEmpty ? "/" : folder)
            : ExternalDataResolver(folder: nil, refusal: "external data is disabled in the model options")
        return try load(bytes: file.bytes, externals: externals, source: path, limits: limits)
    }

    /// Loads a model from bytes. `folder` is where external data may live (nil: none allowed).
    package static func load(bytes: UnsafeRawBufferPointer, folder: String?, source: String = "<memory>",
                             limits: Limits = .defaults) throws -> Graph {
        try load(bytes: bytes, externals: ExternalDataResolver(folder: folder), source: source, limits: limits)
    }

    private static func load(bytes: UnsafeRawBufferPointer, externals: ExternalDataResolver, source: String,
                             limits: Limits) throws -> Graph {
        guard bytes.count > 0 else { throw GraftError(.invalidModel, "\(source): the file is empty") }
        var err = [CChar](repeating: 0, count: 512)
        guard let m = gx_model_parse(bytes.baseAddress, bytes.count, &err, err.count) else {
            throw GraftError(.invalidModel, "\(source): \(String(decoding: err.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))")
        }
        let owner = ParsedModel(m)
        return try Reader(model: m, owner: owner, source: source, externals: externals, limits: limits).read()
    }
}

/// One import: walks the proto once and builds the Graph.
private struct Reader {
    let model: OpaquePointer
    /// Keeps the parsed proto alive while initializers borrow its raw bytes.
    let owner: ParsedModel
    let source: String
    let externals: ExternalDataResolver
    let limits: Limits

    func read() throws -> Graph {
        var g = Graph()
        g.limits = limits
        g.irVersion = Int(gx_model_ir_version(model))
        g.producer = [str(gx_model_producer_name(model)), str(gx_model_producer_version(model))]
            .filter { !$0.isEmpty }.joined(separator: " ")
        guard ONNXImporter.supportedIRVersions.contains(g.irVersion) else {
            throw GraftError(g.irVersion == 0 ? .invalidModel : .unsupported,
                             "\(source): IR version \(g.irVersion) is not supported (\(ONNXImporter.supportedIRVersions.lowerBound)–\(ONNXImporter.supportedIRVersions.upperBound) are)\(g.irVersion == 0 ? "; is this an ONNX file?" : "")")
        }
        for i in 0..<gx_model_opset_count(model) {
            g.opsets[str(gx_model_opset_domain(model, i))] = Int(gx_model_opset_version(model, i))
        }
        if g.opsets[""] == nil, let v = g.opsets["ai.onnx"] { g.opsets[""] = v }
        guard let opset = g.opsets[""] else {
            throw GraftError(.invalidModel, "\(source): the model imports no default-domain (ai.onnx) opset")
        }
        guard ONNXImporter.supportedOpsets.contains(opset) else {
            throw GraftError(.unsupported, "\(source): opset \(opset) is not supported (\(ONNXImporter.supportedOpsets.lowerBound)–\(ONNXImporter.supportedOpsets.upperBound) are); re-export with a newer opset")
        }
        for i in 0..<gx_model_metadata_count(model) {
            g.metadata[str(gx_model_metadata_key(model, i))] = str(gx_model_metadata_value(model, i))
        }
        guard let graph = gx_model_graph(model) else {
            throw GraftError(.invalidModel, "\(source): the model has no graph")
        }
        g.name = str(gx_graph_name(graph))
        guard gx_graph_sparse_initializer_count(graph) == 0 else {
            throw GraftError(.unsupported, "\(source): sparse initializers are not supported")
        }

        var weightBytes = 0
        for i in 0..<gx_graph_initializer_count(graph) {
            let t = gx_graph_initializer(graph, i)!
            let tensor = try TensorDecoding.decode(t, externals: externals, owner: owner, context: " (initializer)") { bytes in
                weightBytes += bytes
                try limits.check(.weightBytes, weightBytes, "\(source): the initializers up to '\(str(gx_tensor_name(t)))'", verb: "need")
            }
            let name = str(gx_tensor_name(t))
            guard !name.isEmpty else { throw GraftError(.invalidModel, "\(source): initializer \(i) has no name") }
            guard g.initializers[name] == nil else {
                throw GraftError(.invalidModel, "\(source): initializer '\(name)' is defined twice")
            }
            g.initializers[name] = tensor
        }
        for i in 0..<gx_graph_input_count(graph) {
            let v = try valueDecl(gx_graph_input(graph, i)!, role: "graph input")
            // Before IR 4 initializers were also listed as inputs; they are constants here.
            if g.initializers[v.name] == nil { g.inputs.append(v) }
        }
        for i in 0..<gx_graph_output_count(graph) {
            g.outputs.append(try valueDecl(gx_graph_output(graph, i)!, role: "graph output"))
        }
        for i in 0..<gx_graph_value_info_count(graph) {
            if let v = try? valueDecl(gx_graph_value_info(graph, i)!, role: "value_info") {
                g.valueInfo[v.name] = v
            }
        }
        for i in 0..<gx_graph_node_count(graph) {
            g.nodes.append(try node(gx_graph_node(graph, i)!, index: i))
        }
        return g
    }

    private func str(_ p: UnsafePointer<CChar>?) -> String { p.map { String(cString: $0) } ?? "" }

    private func valueDecl(_ v: OpaquePointer, role: String) throws -> ValueDecl {
        let name = str(gx_value_name(v))
        guard !name.isEmpty else { throw GraftError(.invalidModel, "\(source): a \(role) has no name") }
        let code = gx_value_elem_type(v)
        guard code != 0 else {
            throw GraftError(.unsupported, "\(source): \(role) '\(name)' is not a tensor or has no element type")
        }
        guard let dtype = DType(rawValue: code), dtype.isComputeType else {
            throw GraftError(.unsupported, "\(source): \(role) '\(name)' has element type \(DType.onnxName(code)); Graft computes in float32, int64, int32, int8, uint8 and bool (export the model in float32)")
        }
        let rank = gx_value_rank(v)
        var dims: [Dim]?
        if rank >= 0 {
            var ds: [Dim] = []
            for i in 0..<Int(rank) {
                var value: Int64 = 0
                var param: UnsafePointer<CChar>?
                switch gx_value_dim(v, i, &value, &param) {
                case 1:
                    guard value >= 0 else { throw GraftError(.invalidModel, "\(source): \(role) '\(name)' has negative dimension \(value)") }
                    ds.append(.fixed(Int(value)))
                case 2: ds.append(.symbol(str(param)))
                default: ds.append(.unknown)
                }
            }
            dims = ds
        }
        return ValueDecl(name: name, dtype: dtype, dims: dims)
    }

    private func node(_ n: OpaquePointer, index: Int) throws -> Node {
        var node = Node(name: str(gx_node_name(n)), opType: str(gx_node_op_type(n)), domain: str(gx_node_domain(n)),
                        inputs: (0..<gx_node_input_count(n)).map { str(gx_node_input(n, $0)) },
                        outputs: (0..<gx_node_output_count(n)).map { str(gx_node_output(n, $0)) })
        guard !node.opType.isEmpty else { throw GraftError(.invalidModel, "\(source): node \(index) ('\(node.name)') has no op type") }
        for i in 0..<gx_node_metadata_count(model, n) {
            node.metadata[str(gx_node_metadata_key(model, n, i))] = str(gx_node_metadata_value(model, n, i))
        }
        for i in 0..<gx_node_attr_count(n) {
            let a = gx_node_attr(n, i)!
            let key = str(gx_attr_name(a))
            node.attributes[key] = try attribute(a, key: key, node: node)
        }
        return node
    }

    private func attribute(_ a: OpaquePointer, key: String, node: Node) throws -> Attribute {
        switch gx_attr_type(a) {
        case 1: return .float(gx_attr_f(a))
        case 2:
            let v = gx_attr_i(a)
            return .int(Int(v))
        case 3:
            var len = 0
            let p = gx_attr_s(a, &len)
            return .string(bytesToString(p, len))
        case 4:
            guard let t = gx_attr_t(a) else { throw GraftError(.invalidModel, "\(source): \(node.label): attribute '\(key)' has no tensor") }
            return .tensor(try TensorDecoding.decode(t, externals: externals, owner: owner, context: " (attribute '\(key)' of \(node.label))"))
        case 5, 10: return .graph
        case 6:
            let n = gx_attr_floats_count(a)
            return .floats(n == 0 ? [] : Array(UnsafeBufferPointer(start: gx_attr_floats(a), count: n)))
        case 7:
            let n = gx_attr_ints_count(a)
            return .ints(n == 0 ? [] : UnsafeBufferPointer(start: gx_attr_ints(a), count: n).map { Int($0) })
        case 8:
            return .strings((0..<gx_attr_strings_count(a)).map { i in
                var len = 0
                let p = gx_attr_string(a, i, &len)
                return bytesToString(p, len)
            })
        case 0:
            if !str(gx_attr_ref_attr_name(a)).isEmpty {
                throw GraftError(.unsupported, "\(source): \(node.label): attribute '\(key)' refers to a function attribute; model-local functions are not supported")
            }
            throw GraftError(.invalidModel, "\(source): \(node.label): attribute '\(key)' has no type")
        case let t:
            return .unsupported(typeCode: t)
        }
    }

    private func bytesToString(_ p: UnsafePointer<CChar>?, _ len: Int) -> String {
        guard let p, len > 0 else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: p, count: len), as: UTF8.self)
    }
}

/// The parsed ModelProto. Initializers whose raw bytes are suitably aligned point into it
/// instead of being copied a second time (protobuf already copied them out of the file), so it
/// lives as long as any of them.
final class ParsedModel: @unchecked Sendable {
    let pointer: OpaquePointer

    init(_ pointer: OpaquePointer) { self.pointer = pointer }

    deinit { gx_model_free(pointer) }
}

/// Reads an ONNX ModelProto (decoded from the wire format by `ProtoModel`, without protobuf)
/// into a `Graph`. Structural checks that need the proto (types, attribute kinds, tensor data)
/// happen here; graph-level checks are in `GraphValidation`.
package enum ONNXImporter {
    /// Default-domain opsets whose operator forms the kernels implement.
    package static let supportedOpsets = 11...23
    /// Files from IR 3 (ONNX 1.0 era) to IR 11 parse the same way for what Graft reads.
    package static let supportedIRVersions = 3...11

    /// Loads the model at `path`; external data is looked up beside it, or refused when
    /// `externalData` is false. Initializers whose bytes are aligned in the file are used in
    /// place (the mapping lives as long as they do), and so are row tables at any alignment
    /// (`rowTables`); the others are copied. `limits` travel with
    /// the graph (`Graph.limits`); the weight cap is checked here, tensor by tensor, before each
    /// initializer is decoded.
    package static func load(path: String, externalData: Bool = true, limits: Limits = .defaults) throws -> Graph {
        let file = try MappedFile(path: path)
        let folder = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        let externals = externalData
            ? ExternalDataResolver(folder: folder.isEmpty ? "/" : folder)
            : ExternalDataResolver(folder: nil, refusal: "external data is disabled in the model options")
        return try load(bytes: file.bytes, externals: externals, mapping: file, source: path, limits: limits)
    }

    /// Loads a model from bytes (copied: the caller keeps ownership). `folder` is where
    /// external data may live (nil: none allowed).
    package static func load(bytes: UnsafeRawBufferPointer, folder: String?, source: String = "<memory>",
                             limits: Limits = .defaults) throws -> Graph {
        try load(bytes: bytes, externals: ExternalDataResolver(folder: folder), mapping: nil, source: source, limits: limits)
    }

    private static func load(bytes: UnsafeRawBufferPointer, externals: ExternalDataResolver, mapping: MappedFile?, source: String,
                             limits: Limits) throws -> Graph {
        guard bytes.count > 0 else { throw GraftError(.invalidModel, "\(source): the file is empty") }
        let proto: ProtoModel
        do {
            proto = try ProtoModel(bytes)
        } catch let e as GraftError {
            throw GraftError(e.code, "\(source): \(e.message)")
        }
        return try Reader(model: proto, mapping: mapping, source: source, externals: externals, limits: limits).read()
    }
}

/// One import: walks the decoded proto once and builds the Graph.
private struct Reader {
    let model: ProtoModel
    /// The mapped file the proto was decoded from, when it was one.
    let mapping: MappedFile?
    let source: String
    let externals: ExternalDataResolver
    let limits: Limits

    func read() throws -> Graph {
        var g = Graph()
        g.limits = limits
        g.irVersion = Int(model.irVersion)
        g.producer = [model.producerName, model.producerVersion].filter { !$0.isEmpty }.joined(separator: " ")
        guard ONNXImporter.supportedIRVersions.contains(g.irVersion) else {
            throw GraftError(g.irVersion == 0 ? .invalidModel : .unsupported,
                             "\(source): IR version \(g.irVersion) is not supported (\(ONNXImporter.supportedIRVersions.lowerBound)–\(ONNXImporter.supportedIRVersions.upperBound) are)\(g.irVersion == 0 ? "; is this an ONNX file?" : "")")
        }
        for (domain, version) in model.opsets {
            g.opsets[domain] = Int(truncatingIfNeeded: version)
        }
        if g.opsets[""] == nil, let v = g.opsets["ai.onnx"] { g.opsets[""] = v }
        guard let opset = g.opsets[""] else {
            throw GraftError(.invalidModel, "\(source): the model imports no default-domain (ai.onnx) opset")
        }
        guard ONNXImporter.supportedOpsets.contains(opset) else {
            throw GraftError(.unsupported, "\(source): opset \(opset) is not supported (\(ONNXImporter.supportedOpsets.lowerBound)–\(ONNXImporter.supportedOpsets.upperBound) are); re-export with a newer opset")
        }
        for (key, value) in model.metadata { g.metadata[key] = value }
        guard let graph = model.graph else {
            throw GraftError(.invalidModel, "\(source): the model has no graph")
        }
        g.name = graph.name
        guard graph.sparseInitializerCount == 0 else {
            throw GraftError(.unsupported, "\(source): sparse initializers are not supported")
        }

        var weightBytes = 0
        let tables = Self.rowTables(graph)
        for (i, t) in graph.initializers.enumerated() {
            let tensor = try TensorDecoding.decode(t, externals: externals, mapping: mapping, anyAlignment: tables.contains(t.name),
                                                   context: " (initializer)") { bytes in
                weightBytes += bytes
                try limits.check(.weightBytes, weightBytes, "\(source): the initializers up to '\(t.name)'", verb: "need")
            }
            guard !t.name.isEmpty else { throw GraftError(.invalidModel, "\(source): initializer \(i) has no name") }
            guard g.initializers[t.name] == nil else {
                throw GraftError(.invalidModel, "\(source): initializer '\(t.name)' is defined twice")
            }
            g.initializers[t.name] = tensor
        }
        for input in graph.inputs {
            let v = try valueDecl(input, role: "graph input")
            // Before IR 4 initializers were also listed as inputs; they are constants here.
            if g.initializers[v.name] == nil { g.inputs.append(v) }
        }
        for output in graph.outputs {
            g.outputs.append(try valueDecl(output, role: "graph output"))
        }
        for info in graph.valueInfo {
            if let v = try? valueDecl(info, role: "value_info") {
                g.valueInfo[v.name] = v
            }
        }
        for (i, n) in graph.nodes.enumerated() {
            g.nodes.append(try node(n, index: i))
        }
        return g
    }

    /// Initializers read only as the data of default-domain Gathers (input 0), never as a
    /// graph output, in graphs without subgraphs: row tables such as word embeddings. Gather
    /// copies whole rows as bytes (`IndexingKernels.gather`, through raw pointers), so these are
    /// used in place from the mapping even where torch.onnx.export left their bytes unaligned
    /// instead of being copied: MiniLM's 47 MB word-embedding table was 47 of the 54 MB a load
    /// copied. Nothing reads them through a typed pointer (`HostTensor.pointer` asserts
    /// alignment in debug builds, which the test suite runs).
    static func rowTables(_ graph: ProtoGraph) -> Set<String> {
        var tables = Set<String>(), other = Set(graph.outputs.map(\.name))
        for n in graph.nodes {
            if n.attributes.contains(where: { $0.type == 5 || $0.type == 10 }) { return [] }
            let gather = n.opType == "Gather" && Node.isDefaultDomain(n.domain)
            for (k, v) in n.inputs.enumerated() where !v.isEmpty {
                if gather && k == 0 { tables.insert(v) } else { other.insert(v) }
            }
        }
        return tables.subtracting(other)
    }

    private func valueDecl(_ v: ProtoValueInfo, role: String) throws -> ValueDecl {
        let name = v.name
        guard !name.isEmpty else { throw GraftError(.invalidModel, "\(source): a \(role) has no name") }
        let code = v.elemType
        guard code != 0 else {
            throw GraftError(.unsupported, "\(source): \(role) '\(name)' is not a tensor or has no element type")
        }
        guard let dtype = DType(rawValue: code), dtype.isComputeType else {
            throw GraftError(.unsupported, "\(source): \(role) '\(name)' has element type \(DType.onnxName(code)); Graft computes in float32, int64, int32, int8, uint8 and bool (export the model in float32)")
        }
        let dims = try v.dims?.map { d -> Dim in
            switch d {
            case .value(let value):
                guard value >= 0 else { throw GraftError(.invalidModel, "\(source): \(role) '\(name)' has negative dimension \(value)") }
                guard value <= Int64(Shape.maxElements) else { throw GraftError(.invalidModel, "\(source): \(role) '\(name)' has dimension \(value), beyond any tensor Graft can hold") }
                return .fixed(Int(value))
            case .param(let p): return .symbol(p)
            case .unknown: return .unknown
            }
        }
        return ValueDecl(name: name, dtype: dtype, dims: dims)
    }

    private func node(_ n: ProtoNode, index: Int) throws -> Node {
        var node = Node(name: n.name, opType: n.opType, domain: n.domain, inputs: n.inputs, outputs: n.outputs)
        guard !node.opType.isEmpty else { throw GraftError(.invalidModel, "\(source): node \(index) ('\(node.name)') has no op type") }
        for (key, value) in n.metadata { node.metadata[key] = value }
        for a in n.attributes {
            node.attributes[a.name] = try attribute(a, node: node)
        }
        return node
    }

    private func attribute(_ a: ProtoAttribute, node: Node) throws -> Attribute {
        let key = a.name
        switch a.type {
        case 1: return .float(a.f)
        case 2: return .int(Int(a.i))
        case 3: return .string(a.s)
        case 4:
            guard let t = a.t else { throw GraftError(.invalidModel, "\(source): \(node.label): attribute '\(key)' has no tensor") }
            return .tensor(try TensorDecoding.decode(t, externals: externals, mapping: mapping, context: " (attribute '\(key)' of \(node.label))"))
        case 5, 10: return .graph
        case 6: return .floats(a.floats)
        case 7: return .ints(a.ints.map { Int($0) })
        case 8: return .strings(a.strings)
        case 0:
            if !a.refAttrName.isEmpty {
                throw GraftError(.unsupported, "\(source): \(node.label): attribute '\(key)' refers to a function attribute; model-local functions are not supported")
            }
            throw GraftError(.invalidModel, "\(source): \(node.label): attribute '\(key)' has no type")
        case let t:
            return .unsupported(typeCode: t)
        }
    }
}

/// An attribute value on a node, as ONNX defines them (graph-valued attributes are kept only
/// so that the op that owns them can be refused by name).
package enum Attribute: Sendable {
    case float(Float)
    case int(Int)
    case string(String)
    case tensor(HostTensor)
    case floats([Float])
    case ints([Int])
    case strings([String])
    case graph
    case unsupported(typeCode: Int32)
}

/// A dimension of a declared (symbolic) shape.
package enum Dim: Sendable, Equatable, CustomStringConvertible {
    case fixed(Int)
    case symbol(String)
    case unknown

    package var description: String {
        switch self {
        case .fixed(let n): return String(n)
        case .symbol(let s): return s
        case .unknown: return "?"
        }
    }
}

/// A graph input or output as declared in the file: name, element type, symbolic shape
/// (`nil` shape: not recorded).
package struct ValueDecl: Sendable {
    package var name: String
    package var dtype: DType
    package var dims: [Dim]?

    package init(name: String, dtype: DType, dims: [Dim]?) {
        self.name = name
        self.dtype = dtype
        self.dims = dims
    }
}

package struct Node: Sendable {
    package var name: String
    package var opType: String
    package var domain: String
    /// Input value names; "" marks an omitted optional input.
    package var inputs: [String]
    package var outputs: [String]
    package var attributes: [String: Attribute]
    package var metadata: [String: String]

    package init(name: String, opType: String, domain: String = "", inputs: [String], outputs: [String],
                 attributes: [String: Attribute] = [:], metadata: [String: String] = [:]) {
        self.name = name
        self.opType = opType
        self.domain = domain
        self.inputs = inputs
        self.outputs = outputs
        self.attributes = attributes
        self.metadata = metadata
    }

    /// "Op 'name'" for error messages (the op type when the exporter left the name empty).
    package var label: String { name.isEmpty ? "\(opType) node (unnamed, output '\(outputs.first ?? "")')" : "\(opType) node '\(name)'" }

    /// Whether the node is in ONNX's default domain ("" or "ai.onnx").
    package var isDefaultDomain: Bool { Node.isDefaultDomain(domain) }

    /// Whether `domain` names ONNX's default domain (also for nodes not yet imported).
    package static func isDefaultDomain(_ domain: String) -> Bool { domain.isEmpty || domain == "ai.onnx" }

    /// Value → indices (in `nodes`) of the nodes reading it, each node once, in order: the
    /// reader map of the fusion pass and of the planner.
    package static func readers(of nodes: some Sequence<Node>) -> [String: [Int]] {
        var readers: [String: [Int]] = [:]
        for (i, n) in nodes.enumerated() {
            // Nodes are visited in order, so a node reading a value twice is its last entry.
            for v in n.inputs where !v.isEmpty && readers[v]?.last != i { readers[v, default: []].append(i) }
        }
        return readers
    }

    package func int(_ key: String) -> Int? {
        if case .int(let v)? = attributes[key] { return v }
        return nil
    }
    package func int(_ key: String, default d: Int) -> Int { int(key) ?? d }
    package func float(_ key: String) -> Float? {
        switch attributes[key] {
        case .float(let v)?: return v
        case .int(let v)?: return Float(v)
        default: return nil
        }
    }
    package func float(_ key: String, default d: Float) -> Float { float(key) ?? d }
    package func ints(_ key: String) -> [Int]? {
        if case .ints(let v)? = attributes[key] { return v }
        return nil
    }
    package func floats(_ key: String) -> [Float]? {
        if case .floats(let v)? = attributes[key] { return v }
        return nil
    }
    package func string(_ key: String) -> String? {
        if case .string(let v)? = attributes[key] { return v }
        return nil
    }
    package func tensor(_ key: String) -> HostTensor? {
        if case .tensor(let v)? = attributes[key] { return v }
        return nil
    }
}

/// The model's computation after import: nodes in topological order (the importer sorts
/// them), constants by name, and declared inputs and outputs.
package struct Graph: Sendable {
    package var name: String = ""
    /// Graph inputs that the caller feeds (initializers listed as inputs are removed).
    package var inputs: [ValueDecl] = []
    package var outputs: [ValueDecl] = []
    package var initializers: [String: HostTensor] = [:]
    package var nodes: [Node] = []
    /// Declared intermediate types from value_info (dtype and symbolic dims), where present.
    package var valueInfo: [String: ValueDecl] = [:]
    /// Opset version per domain ("" is the default ONNX domain).
    package var opsets: [String: Int] = [:]
    package var irVersion: Int = 0
    package var producer: String = ""
    package var metadata: [String: String] = [:]
    /// The caps the model was loaded with (`Limits`): constant folding, symbolic shape
    /// inference and the planner check allocations against them.
    package var limits: Limits = .defaults

    package init() {}

    /// The default-domain opset version.
    package var opset: Int { opsets[""] ?? opsets["ai.onnx"] ?? 0 }
}

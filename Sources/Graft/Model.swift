@_exported import struct GraftCore.Limits
import GraftCore

/// One dimension of a declared input or output shape.
public enum Dimension: Sendable, Equatable, CustomStringConvertible {
    /// A fixed size.
    case fixed(Int)
    /// A named symbolic size (`batch`, `sequence`), set by the inputs of each run.
    case symbolic(String)
    /// A size the file leaves unnamed.
    case unknown

    public var description: String {
        switch self {
        case .fixed(let n): return String(n)
        case .symbolic(let s): return s
        case .unknown: return "?"
        }
    }
}

/// Name, element type and declared shape of a model input or output.
public struct TensorInfo: Sendable, Equatable {
    public let name: String
    public let elementType: ElementType
    /// Declared dimensions, or nil when the file records no shape.
    public let dimensions: [Dimension]?
}

/// An ONNX model loaded, validated and optimised. Immutable: share one model between any
/// number of sessions on any threads.
public final class Model: Sendable {
    let core: CoreModel

    /// Loads the ONNX file at `path` (external data is read from the file's folder, and only
    /// from there). Throws ``GraftError`` for unreadable, malformed or unsupported models.
    /// - Parameter limits: caps on what the model, its sessions and the adapters loaded for it
    ///   may allocate (``Limits``; defaults when omitted). Going over one throws
    ///   `limitExceeded` naming the cap; a cap below 1 throws `invalidArgument`.
    public init(path: String, limits: Limits = Limits()) throws {
        core = try CoreModel(path: path, limits: limits)
    }

    /// Loads an ONNX model from bytes in memory. Models with external data must be loaded
    /// from a path. `limits` as for ``init(path:limits:)``.
    public init(bytes: [UInt8], limits: Limits = Limits()) throws {
        core = try bytes.withUnsafeBytes { try CoreModel(bytes: $0, limits: limits) }
    }

    /// The caps this model was loaded with.
    public var limits: Limits { core.limits }

    /// The inputs a run must provide, in declaration order.
    public var inputs: [TensorInfo] { core.graph.inputs.map(Self.info) }
    /// The outputs a run returns, in declaration order.
    public var outputs: [TensorInfo] { core.graph.outputs.map(Self.info) }

    /// A new session for running this model from one thread at a time.
    /// - Parameter threads: threads the session's kernels may use (default 1, at most 256).
    ///   OpenBLAS is pinned to one thread process-wide and Graft's kernels split work
    ///   themselves, so sessions running at once use at most the sum of their counts.
    /// - Throws: ``GraftError`` with code `invalidArgument` for a count outside 1...256.
    public func makeSession(threads: Int = 1) throws -> Session {
        try Session(core: CoreSession(model: core, threads: threads))
    }

    private static func info(_ d: ValueDecl) -> TensorInfo {
        TensorInfo(name: d.name, elementType: ElementType(d.dtype), dimensions: d.dims?.map {
            switch $0 {
            case .fixed(let n): return .fixed(n)
            case .symbol(let s): return .symbolic(s)
            case .unknown: return .unknown
            }
        })
    }
}

/// Runs a model. A session keeps plans per input-shape signature and one work arena, so
/// repeated runs allocate nothing but their outputs. Use a session from one thread at a time;
/// give each thread its own session over the shared ``Model``.
public final class Session {
    let core: CoreSession

    init(core: CoreSession) { self.core = core }

    /// Runs the model on named inputs and returns every output by name. Throws
    /// ``GraftError`` for a missing or unknown input, a wrong element type, rank or fixed
    /// dimension, or data that is invalid at run time (an index out of range).
    public func run(_ inputs: [String: Tensor]) throws -> [String: Tensor] {
        try core.run(inputs.mapValues(\.host)).mapValues(Tensor.init(host:))
    }
}

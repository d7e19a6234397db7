@_exported import struct GraftCore.GraftError
import GraftCore

/// Element types a ``Tensor`` can hold.
public enum ElementType: String, Sendable, CaseIterable {
    case float32, int64, int32, bool, uint8, int8

    init(_ d: DType) {
        switch d {
        case .int64: self = .int64
        case .int32: self = .int32
        case .bool: self = .bool
        case .uint8: self = .uint8
        case .int8: self = .int8
        default: self = .float32   // only compute types reach the public API
        }
    }

    var dtype: DType {
        switch self {
        case .float32: return .float32
        case .int64: return .int64
        case .int32: return .int32
        case .bool: return .bool
        case .uint8: return .uint8
        case .int8: return .int8
        }
    }
}

/// A dense, row-major tensor in host memory: what you pass to ``Session/run(_:)`` and get back.
public struct Tensor: Sendable {
    let host: HostTensor

    init(host: HostTensor) { self.host = host }

    /// The element type.
    public var elementType: ElementType { ElementType(host.dtype) }
    /// The dimensions, outermost first.
    public var shape: [Int] { host.shape }
    /// Number of elements (the product of `shape`).
    public var count: Int { host.count }

    /// A float32 tensor. Throws when `values.count` is not the product of `shape`.
    public init(_ values: [Float], shape: [Int]) throws {
        try Self.check(values.count, shape)
        host = HostTensor(values, shape: shape)
    }

    /// An int64 tensor (token ids, attention masks). Throws on a count/shape mismatch.
    public init(_ values: [Int64], shape: [Int]) throws {
        try Self.check(values.count, shape)
        host = HostTensor(values, shape: shape)
    }

    /// An int32 tensor. Throws on a count/shape mismatch.
    public init(_ values: [Int32], shape: [Int]) throws {
        try Self.check(values.count, shape)
        host = HostTensor(values, shape: shape)
    }

    /// A bool tensor. Throws on a count/shape mismatch.
    public init(_ values: [Bool], shape: [Int]) throws {
        try Self.check(values.count, shape)
        host = HostTensor(values, shape: shape)
    }

    /// Reads a NumPy `.npy` file (float32, float64 narrowed to float32, int64, int32, bool,
    /// uint8, int8; C order).
    public init(npyFile path: String) throws {
        host = try Npy.read(path: path)
    }

    /// Writes the tensor as a NumPy `.npy` file.
    public func writeNpy(to path: String) throws {
        try Npy.write(host, path: path)
    }

    /// The elements of a float32 tensor; throws for other element types.
    public func floats() throws -> [Float] {
        guard host.dtype == .float32 else { throw GraftError(.invalidArgument, "tensor holds \(host.dtype), not float32") }
        return host.floats()
    }

    /// The elements of an integer or bool tensor as Int64; throws for float tensors.
    public func integers() throws -> [Int64] {
        guard host.dtype != .float32 else { throw GraftError(.invalidArgument, "tensor holds float32, not integers") }
        return host.integers().map(Int64.init)
    }

    private static func check(_ count: Int, _ shape: [Int]) throws {
        let n = try Shape.count(shape, what: "tensor")
        guard n == count else {
            throw GraftError(.invalidArgument, "\(count) values do not fill shape \(shape) (\(n) elements)")
        }
    }
}

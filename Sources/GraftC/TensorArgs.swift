import CGraft
import GraftCore

/// One caller `graft_tensor`, checked: which declared value it names, and its fields.
struct TensorArg {
    let index: Int            // index among the declared inputs (outputs)
    let label: String         // "inputs[2] ('attention_mask')" for messages
    let dtype: DType
    let shape: [Int]
    let data: UnsafeMutableRawPointer?
    let byteSize: Int

    /// Byte range of `data`, for overlap checks.
    var range: Range<UInt>? {
        guard let data, byteSize > 0 else { return nil }
        let start = UInt(bitPattern: data)
        return start..<(start + UInt(byteSize))
    }
}

enum TensorArgs {
    /// Size of this version's graft_tensor; callers may pass larger (newer) structs.
    static let minStructSize = MemoryLayout<graft_tensor>.size
    /// Sanity bound on struct_size (keeps a garbage value from striding through memory).
    static let maxStructSize = 4096
    static let maxRank = 64

    /// Reads `count` caller tensors at `base` naming values among `declared`.
    /// `array` is "inputs" or "outputs"; `checkData` is false for shape queries.
    static func read(_ base: UnsafePointer<graft_tensor>?, count: Int, array: String,
                     declared: [ValueDecl], checkData: Bool) throws -> [TensorArg] {
        guard count > 0 else { return [] }
        guard let base else { throw invalid("\(array) is NULL but n_\(array) is \(count)") }
        guard count <= declared.count else {
            throw invalid("n_\(array) is \(count) but the model has \(declared.count) \(array) (each may be given once)")
        }
        let raw = UnsafeRawPointer(base)
        let stride = Int(raw.loadUnaligned(as: UInt32.self))
        guard stride >= minStructSize, stride <= maxStructSize, stride % 8 == 0 else {
            throw invalid("\(array)[0].struct_size is \(stride); set it to sizeof(graft_tensor) (\(minStructSize) in this version)")
        }
        var seen = Set<Int>()
        var args: [TensorArg] = []
        for i in 0..<count {
            let p = raw + i * stride
            let size = Int(p.loadUnaligned(as: UInt32.self))
            guard size == stride else {
                throw invalid("\(array)[\(i)].struct_size is \(size) but \(array)[0].struct_size is \(stride); every element of one array must have the same struct_size")
            }
            let t = p.assumingMemoryBound(to: graft_tensor.self).pointee
            // Name → declared index.
            let index: Int
            var label: String
            if let cname = t.name {
                let name = String(cString: cname)
                guard let k = declared.firstIndex(where: { $0.name == name }) else {
                    let names = declared.map { "'\($0.name)'" }.joined(separator: ", ")
                    throw invalid("\(array)[\(i)]: '\(name)' is not one of the model's \(array) (\(names))")
                }
                index = k
                label = "\(array)[\(i)] ('\(name)')"
            } else {
                index = i
                label = "\(array)[\(i)] (name NULL: '\(declared[i].name)')"
            }
            guard seen.insert(index).inserted else {
                throw invalid("\(label): '\(declared[index].name)' is given more than once")
            }
            guard let dtype = DType(rawValue: t.dtype) else {
                throw invalid("\(label): dtype \(t.dtype) is not a graft_dtype")
            }
            guard t.rank >= 0, t.rank <= maxRank else {
                throw invalid("\(label): rank \(t.rank) exceeds \(maxRank)")
            }
            let rank = Int(t.rank)
            var shape: [Int] = []
            if rank > 0 {
                guard let dims = t.shape else { throw invalid("\(label): shape is NULL but rank is \(rank)") }
                shape = (0..<rank).map { Int(dims[$0]) }
            }
            var elements = 1
            for d in shape {
                guard d >= 0 else { throw invalid("\(label): shape \(shape) has a negative dimension") }
                let (p, o) = elements.multipliedReportingOverflow(by: d)
                guard !o, p <= Shape.maxElements else {
                    throw GraftError(.limitExceeded, "\(label): shape \(shape) has more than 2^40 elements")
                }
                elements = p
            }
            let bytes = elements * dtype.byteSize
            if checkData {
                guard t.byte_size >= 0, t.byte_size == bytes else {
                    throw invalid("\(label): byte_size is \(t.byte_size) but shape \(shape) of \(dtype) needs \(bytes) bytes")
                }
                if bytes > 0 {
                    guard let data = t.data else { throw invalid("\(label): data is NULL but byte_size is \(bytes)") }
                    guard Int(bitPattern: data) % dtype.byteSize == 0 else {
                        throw invalid("\(label): data is not aligned to \(dtype.byteSize) bytes (the size of \(dtype))")
                    }
                }
            }
            args.append(TensorArg(index: index, label: label, dtype: dtype, shape: shape,
                                  data: checkData ? t.data : nil, byteSize: bytes))
        }
        return args
    }

    /// Keeps borrowed storages' owner alive (the caller does; this only satisfies the API).
    private final class Borrowed: Sendable {}
    private static let borrowed = Borrowed()
    /// Address used for empty tensors and shape queries (never read or written past 0 bytes).
    nonisolated(unsafe) private static let empty = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 64)

    /// A HostTensor over the caller's buffer (no copy).
    static func host(_ a: TensorArg) -> HostTensor {
        let pointer = (a.byteSize > 0 ? a.data : nil) ?? empty
        return HostTensor(dtype: a.dtype, shape: a.shape,
                          storage: TensorStorage(borrowing: pointer, byteCount: a.byteSize, keepAlive: borrowed))
    }

    /// Inputs keyed by name, for CoreSession.bind (which checks dtype, rank, fixed dims and
    /// missing inputs against the model).
    static func named(_ args: [TensorArg], declared: [ValueDecl]) -> [String: HostTensor] {
        var out: [String: HostTensor] = [:]
        for a in args { out[declared[a.index].name] = host(a) }
        return out
    }
}

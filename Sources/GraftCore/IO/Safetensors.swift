/// Reads `.safetensors` files (the format PEFT saves adapters in). The whole header is
/// validated when the file is opened — header length inside the file, JSON well formed with no
/// duplicate keys, known dtypes, non-negative dims, byte ranges that match the dims, lie inside
/// the data section and do not overlap — before any tensor is read.
package final class SafetensorsFile: @unchecked Sendable {
    package struct Entry: Sendable {
        package let name: String
        package let dtype: String        // as in the file: "F32", "F16", "BF16", "F64", "I64", ...
        package let shape: [Int]
        package let begin: Int           // byte offset inside the data section
        package let end: Int
    }

    package let path: String
    package let entries: [Entry]
    package let metadata: [String: String]
    private let file: MappedFile
    private let dataStart: Int
    private let index: [String: Int]

    /// Element sizes of the dtypes the format defines.
    static let elementSize: [String: Int] = [
        "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
        "U16": 2, "U32": 4, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1,
    ]

    /// Headers larger than this are refused (real adapter headers are kilobytes).
    package static let maxHeaderBytes = 100 << 20

    package init(path: String) throws {
        self.path = path
        file = try MappedFile(path: path)
        func bad(_ why: String) -> GraftError { GraftError(.invalidData, "\(path): not a valid safetensors file: \(why)") }
        let bytes = file.bytes
        guard bytes.count >= 8 else { throw bad("shorter than its 8-byte header length") }
        let n = bytes.loadUnaligned(as: UInt64.self).littleEndian
        guard n <= UInt64(bytes.count - 8) else { throw bad("header length \(n) runs past the end of the file (\(bytes.count) bytes)") }
        guard n <= UInt64(Self.maxHeaderBytes) else { throw bad("header length \(n) exceeds \(Self.maxHeaderBytes) bytes") }
        let headerBytes = UnsafeRawBufferPointer(rebasing: bytes[8..<8 + Int(n)])
        let header: JSONValue
        do { header = try JSONValue.parse(headerBytes) } catch let e as GraftError { throw bad("header: \(e.message)") }
        guard case .object(let members) = header else { throw bad("header is not a JSON object") }
        dataStart = 8 + Int(n)
        let dataSize = bytes.count - dataStart
        var entries: [Entry] = []
        var metadata: [String: String] = [:]
        for (name, value) in members {
            if name == "__metadata__" {
                guard case .object(let kv) = value else { throw bad("__metadata__ is not an object") }
                for (k, v) in kv {
                    guard let s = v.string else { throw bad("__metadata__ value for '\(k)' is not a string") }
                    metadata[k] = s
                }
                continue
            }
            guard let dtype = value["dtype"]?.string else { throw bad("tensor '\(name)' has no dtype string") }
            guard let size = Self.elementSize[dtype] else { throw bad("tensor '\(name)' has unknown dtype '\(dtype)'") }
            guard let dims = value["shape"]?.array else { throw bad("tensor '\(name)' has no shape list") }
            var shape: [Int] = []
            for d in dims {
                guard let v = d.integer, v >= 0 else { throw bad("tensor '\(name)' has an invalid dimension in its shape") }
                shape.append(v)
            }
            guard let offsets = value["data_offsets"]?.array, offsets.count == 2,
                  let begin = offsets[0].integer, let end = offsets[1].integer, begin >= 0, begin <= end
            else { throw bad("tensor '\(name)' has invalid data_offsets") }
            let count: Int
            do { count = try Shape.count(shape, what: "tensor '\(name)'") } catch let e as GraftError { throw bad(e.message) }
            guard end - begin == count * size else {
                throw bad("tensor '\(name)' spans \(end - begin) bytes but \(dtype)\(shape) needs \(count * size)")
            }
            guard end <= dataSize else {
                throw bad("tensor '\(name)' ends at byte \(end) of a \(dataSize)-byte data section")
            }
            entries.append(Entry(name: name, dtype: dtype, shape: shape, begin: begin, end: end))
        }
        let sorted = entries.filter { $0.end > $0.begin }.sorted { $0.begin < $1.begin }
        for (a, b) in zip(sorted, sorted.dropFirst()) where b.begin < a.end {
            throw bad("tensors '\(a.name)' and '\(b.name)' overlap")
        }
        self.entries = entries
        self.metadata = metadata
        index = Dictionary(entries.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { a, _ in a })
    }

    package func entry(named name: String) -> Entry? { index[name].map { entries[$0] } }

    /// The tensor as float32 (F32 copied, F16/BF16/F64 converted); other dtypes are refused.
    package func floats(_ e: Entry) throws -> HostTensor {
        let out = HostTensor(zeros: .float32, shape: e.shape)
        let count = out.count
        guard count > 0, let base = file.base else { return out }
        let src = UnsafeRawPointer(base + dataStart + e.begin)
        let dst = out.pointer(Float.self)
        switch e.dtype {
        case "F32": out.raw.copyMemory(from: src, byteCount: count * 4)
        case "F16": for i in 0..<count { dst[i] = TensorDecoding.halfToFloat(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
        case "BF16": for i in 0..<count { dst[i] = Float(bitPattern: UInt32(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16) }
        case "F64": for i in 0..<count { dst[i] = Float(src.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)) }
        default:
            throw GraftError(.unsupported, "\(path): tensor '\(e.name)' has dtype \(e.dtype); adapter weights must be F32, F16, BF16 or F64")
        }
        return out
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// Turns one TensorProto into a HostTensor: checks dims and data length against each other
/// before any allocation sized by the file, reads raw or typed fields or external data, and
/// widens float16/bfloat16/float64 to float32 (the only float type kernels compute in).
enum TensorDecoding {
    /// `mapping`, when the proto's bytes are a mapped model file: raw data of a compute type
    /// that is aligned for its element size is used in place (the tensor keeps the mapping
    /// alive); raw data that has to be copied gives its pages back to the kernel afterwards.
    /// `reserve` is called with the bytes the decoded tensor will hold (in its compute type)
    /// once the dims are validated and before anything is read or allocated; it throws to
    /// refuse the tensor (the weight cap). `anyAlignment`: use the bytes in place (mapped file or
    /// external data, compute types) whatever their alignment — only for tensors nothing reads
    /// through a typed pointer (`ONNXImporter.rowTables`).
    static func decode(_ t: ProtoTensor, externals: ExternalDataResolver, mapping: MappedFile? = nil, anyAlignment: Bool = false,
                       context: @autoclosure () -> String, reserve: (Int) throws -> Void = { _ in }) throws -> HostTensor {
        let what = "tensor '\(t.name)'\(context())"
        guard let fileType = DType(rawValue: t.dataType) else {
            throw GraftError(.unsupported, "\(what) has data type \(DType.onnxName(t.dataType)), which Graft does not support")
        }
        var shape: [Int] = []
        for d in t.dims {
            guard d >= 0, d <= Int64(Shape.maxElements) else {
                throw GraftError(.invalidModel, "\(what) has invalid dimension \(d)")
            }
            shape.append(Int(d))
        }
        let count = try Shape.count(shape, what: what)
        let expectedBytes = count * fileType.byteSize
        try reserve(count * (fileType.isComputeType ? fileType.byteSize : DType.float32.byteSize))

        // Locate the bytes, validated against the dims before anything is allocated.
        if t.isExternal {
            return try decodeExternal(t, fileType: fileType, shape: shape, expectedBytes: expectedBytes, externals: externals,
                                      anyAlignment: anyAlignment, what: what)
        }
        if let raw = t.rawData {
            guard raw.count == expectedBytes else {
                throw GraftError(.invalidModel, "\(what): raw data has \(raw.count) bytes but shape \(shape) of \(fileType) needs \(expectedBytes)")
            }
            if let mapping, let p = raw.baseAddress, fileType.isComputeType, raw.count >= 4096,
               anyAlignment || Int(bitPattern: p) % fileType.byteSize == 0 {
                return HostTensor(dtype: fileType, shape: shape,
                                  storage: TensorStorage(borrowing: UnsafeMutableRawPointer(mutating: p), byteCount: raw.count, keepAlive: mapping))
            }
            let tensor = convert(from: raw.baseAddress, fileType: fileType, shape: shape)
            mapping?.release(t.rawDataOffset..<t.rawDataOffset + raw.count)
            return tensor
        }
        // Typed fields.
        func checkCount(_ n: Int, _ field: String) throws {
            guard n == count else {
                throw GraftError(.invalidModel, "\(what): \(field) has \(n) values but shape \(shape) needs \(count)")
            }
        }
        switch fileType {
        case .float32:
            try checkCount(t.floatData.count, "float_data")
            return t.floatData.withUnsafeBytes { convert(from: $0.baseAddress, fileType: .float32, shape: shape) }
        case .int64:
            try checkCount(t.int64Data.count, "int64_data")
            return t.int64Data.withUnsafeBytes { convert(from: $0.baseAddress, fileType: .int64, shape: shape) }
        case .float64:
            try checkCount(t.doubleData.count, "double_data")
            return t.doubleData.withUnsafeBytes { convert(from: $0.baseAddress, fileType: .float64, shape: shape) }
        case .int32, .bool, .uint8, .int8, .float16, .bfloat16:
            // These are stored widened to int32 in int32_data.
            try checkCount(t.int32Data.count, "int32_data")
            let src = t.int32Data
            let out = HostTensor(zeros: fileType.isComputeType ? fileType : .float32, shape: shape)
            for i in 0..<count {
                let v = src[i]
                switch fileType {
                case .int32: out.pointer(Int32.self)[i] = v
                case .bool: out.pointer(UInt8.self)[i] = v != 0 ? 1 : 0
                case .uint8: out.pointer(UInt8.self)[i] = UInt8(truncatingIfNeeded: v)
                case .int8: out.pointer(Int8.self)[i] = Int8(truncatingIfNeeded: v)
                case .float16: out.pointer(Float.self)[i] = halfToFloat(UInt16(truncatingIfNeeded: v))
                default: out.pointer(Float.self)[i] = Float(bitPattern: UInt32(UInt16(truncatingIfNeeded: v)) << 16)
                }
            }
            return out
        }
    }

    private static func decodeExternal(_ t: ProtoTensor, fileType: DType, shape: [Int], expectedBytes: Int,
                                       externals: ExternalDataResolver, anyAlignment: Bool, what: String) throws -> HostTensor {
        var location = ""
        var offset = 0
        var length: Int?
        for (key, value) in t.external {
            switch key {
            case "location": location = value
            case "offset":
                guard let v = Int(value), v >= 0 else { throw GraftError(.invalidModel, "\(what): external data offset '\(value)' is not a valid byte offset") }
                offset = v
            case "length":
                guard let v = Int(value), v >= 0 else { throw GraftError(.invalidModel, "\(what): external data length '\(value)' is not a valid byte count") }
                length = v
            default: break  // "checksum", "basepath": informational
            }
        }
        let file = try externals.file(for: location, tensor: what)
        let len = length ?? expectedBytes
        guard len == expectedBytes else {
            throw GraftError(.invalidModel, "\(what): external data length \(len) does not match shape \(shape) of \(fileType) (\(expectedBytes) bytes)")
        }
        guard offset <= file.size, len <= file.size - offset else {
            throw GraftError(.invalidModel, "\(what): external data range \(offset)..<\(offset + len) lies outside '\(location)' (\(file.size) bytes)")
        }
        guard let base = file.base else {
            return HostTensor(zeros: fileType.isComputeType ? fileType : .float32, shape: shape)
        }
        let p = base + offset
        // Use the mapping in place when the type needs no widening and the address is aligned
        // for the element type; otherwise copy.
        if fileType.isComputeType, anyAlignment || Int(bitPattern: p) % fileType.byteSize == 0 {
            return HostTensor(dtype: fileType, shape: shape, storage: TensorStorage(borrowing: p, byteCount: len, keepAlive: file))
        }
        return convert(from: UnsafeRawPointer(p), fileType: fileType, shape: shape)
    }

    /// Copies little-endian element bytes (possibly unaligned) into a new tensor, widening
    /// float16/bfloat16/float64 to float32. Every element is written, so the storage is not
    /// zeroed first; compute types are copied as bytes, big ones on several threads.
    private static func convert(from src: UnsafeRawPointer?, fileType: DType, shape: [Int]) -> HostTensor {
        let count = Shape.product(shape)
        guard let src, count > 0 else { return HostTensor(zeros: fileType.isComputeType ? fileType : .float32, shape: shape) }
        if fileType.isComputeType {
            return HostTensor(dtype: fileType, shape: shape,
                              storage: TensorStorage.copy(of: src, byteCount: count * fileType.byteSize, threads: copyThreads))
        }
        let out = HostTensor(dtype: .float32, shape: shape, storage: TensorStorage(uninitialized: count * DType.float32.byteSize))
        let dst = out.pointer(Float.self)
        switch fileType {
        case .float16:
            for i in 0..<count { dst[i] = halfToFloat(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
        case .bfloat16:
            for i in 0..<count { dst[i] = Float(bitPattern: UInt32(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16) }
        default: // float64, the other type that is not a compute type
            for i in 0..<count { dst[i] = Float(src.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)) }
        }
        return out
    }

    /// Threads a model load copies big weights with (`TensorStorage.copy`): the machine's, up to 4.
    static let copyThreads = max(1, min(4, sysconf(Int32(_SC_NPROCESSORS_ONLN))))

    /// IEEE 754 binary16 → binary32, including subnormals, infinities and NaN.
    static func halfToFloat(_ h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exp = Int((h >> 10) & 0x1F)
        let mant = UInt32(h & 0x3FF)
        if exp == 0 {
            // Zero or subnormal: value = mant * 2^-24.
            let v = Float(mant) * Float(sign: .plus, exponent: -24, significand: 1)
            return sign != 0 ? -v : v
        }
        if exp == 31 { return Float(bitPattern: sign | 0x7F80_0000 | (mant << 13)) }
        return Float(bitPattern: sign | UInt32(exp + 112) << 23 | (mant << 13))
    }
}

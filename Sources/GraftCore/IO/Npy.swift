#if canImport(Glibc)
import Glibc
#endif

/// Reads and writes NumPy `.npy` files (format versions 1–3, C order, little endian) for the
/// dtypes Graft computes in: float32 `<f4`, int64 `<i8`, int32 `<i4`, bool `|b1`, uint8 `|u1`,
/// int8 `|i1`. float64 `<f8` is read and narrowed to float32.
package enum Npy {
    private static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]   // \x93NUMPY

    package static func read(path: String) throws -> HostTensor {
        let file = try MappedFile(path: path)
        return try decode(file.bytes, source: path)
    }

    package static func decode(_ bytes: UnsafeRawBufferPointer, source: String) throws -> HostTensor {
        func bad(_ why: String) -> GraftError { GraftError(.invalidArgument, "\(source): not a valid .npy file: \(why)") }
        guard bytes.count >= 10, Array(bytes[0..<6]) == magic else { throw bad("missing the \\x93NUMPY magic") }
        let major = bytes[6]
        let headerLen: Int
        let headerStart: Int
        switch major {
        case 1:
            headerLen = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw bad("truncated header") }
            headerLen = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
            headerStart = 12
        default: throw bad("format version \(major) is not supported")
        }
        guard headerLen <= bytes.count - headerStart else { throw bad("header length \(headerLen) runs past the end of the file") }
        let header = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[headerStart..<headerStart + headerLen]), as: UTF8.self)
        guard let descr = field(header, "descr"), let order = field(header, "fortran_order"), let shapeText = field(header, "shape") else {
            throw bad("header lacks descr, fortran_order or shape: \(header)")
        }
        guard order == "False" else { throw bad("Fortran-ordered arrays are not supported; save with np.ascontiguousarray") }
        let fileType: DType
        switch descr {
        case "'<f4'": fileType = .float32
        case "'<f8'": fileType = .float64
        case "'<i8'": fileType = .int64
        case "'<i4'": fileType = .int32
        case "'|b1'": fileType = .bool
        case "'|u1'": fileType = .uint8
        case "'|i1'": fileType = .int8
        default: throw bad("dtype \(descr) is not supported (float32, float64, int64, int32, bool, uint8, int8 are)")
        }
        let inner = shapeText.trimmingCharacters(in: "() ")
        var shape: [Int] = []
        for part in inner.split(separator: ",") {
            let s = String(part).trimmingCharacters(in: " ")
            if s.isEmpty { continue }
            guard let d = Int(s), d >= 0 else { throw bad("shape \(shapeText) has an invalid dimension '\(s)'") }
            shape.append(d)
        }
        let count = try Shape.count(shape, what: "\(source) array")
        let dataStart = headerStart + headerLen
        let need = count * fileType.byteSize
        guard bytes.count - dataStart >= need else {
            throw bad("data has \(bytes.count - dataStart) bytes but shape \(shape) of \(fileType) needs \(need)")
        }
        let out = HostTensor(zeros: fileType == .float64 ? .float32 : fileType, shape: shape)
        let src = bytes.baseAddress! + dataStart
        if fileType == .float64 {
            let dst = out.pointer(Float.self)
            for i in 0..<count { dst[i] = Float(src.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)) }
        } else if need > 0 {
            out.raw.copyMemory(from: src, byteCount: need)
        }
        if fileType == .bool {
            let p = out.pointer(UInt8.self)
            for i in 0..<count where p[i] > 1 { throw bad("bool array holds byte \(p[i]) at element \(i)") }
        }
        return out
    }

    package static func encode(_ t: HostTensor) -> [UInt8] {
        let descr: String
        switch t.dtype {
        case .float32: descr = "<f4"
        case .int64: descr = "<i8"
        case .int32: descr = "<i4"
        case .bool: descr = "|b1"
        case .uint8: descr = "|u1"
        case .int8: descr = "|i1"
        default: descr = "<f4"   // no other dtype reaches here: only compute types are tensors at run time
        }
        let shapeText = t.shape.isEmpty ? "()" : t.shape.count == 1 ? "(\(t.shape[0]),)" : "(" + t.shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shapeText), }"
        // Pad so that the data starts on a 64-byte boundary; the header ends with "\n".
        let total = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - total % 64) % 64) + "\n"
        var out = magic + [1, 0, UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)]
        out += Array(header.utf8)
        out += Array(UnsafeRawBufferPointer(start: t.raw, count: t.byteCount))
        return out
    }

    package static func write(_ t: HostTensor, path: String) throws {
        let bytes = encode(t)
        guard let f = fopen(path, "wb") else {
            throw GraftError(.io, "cannot create '\(path)'")
        }
        defer { fclose(f) }
        guard fwrite(bytes, 1, bytes.count, f) == bytes.count else {
            throw GraftError(.io, "cannot write '\(path)'")
        }
    }

    /// The text after `'key':` in a header dict, up to the next top-level comma.
    private static func field(_ header: String, _ key: String) -> String? {
        let chars = Array(header)
        let pattern = Array("'\(key)':")
        guard pattern.count <= chars.count,
              let start = (0...(chars.count - pattern.count)).first(where: { Array(chars[$0..<$0 + pattern.count]) == pattern })
        else { return nil }
        var depth = 0
        var value = ""
        for c in chars[(start + pattern.count)...] {
            if c == "(" { depth += 1 }
            if c == ")" { depth -= 1 }
            if depth == 0 && (c == "," || c == "}") { break }
            value.append(c)
        }
        return value.trimmingCharacters(in: " ")
    }
}

private extension String {
    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s.removeFirst() }
        while let l = s.last, set.contains(l) { s.removeLast() }
        return String(s)
    }
}

/// Reads the protobuf wire format over a byte range without copying: length-delimited fields
/// come back as sub-ranges of the same memory (so an initializer's `raw_data` can be used where
/// it lies in the mapped model file). Every read is bounds-checked against the enclosing
/// message; malformed input throws `invalidModel` naming the message and the byte offset.
///
/// Format (https://protobuf.dev/programming-guides/encoding/): a message is a sequence of
/// (key, value) records, key = field_number << 3 | wire_type, keys and varints little-endian
/// base-128 (at most 10 bytes); wire types 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32,
/// 3/4 start/end group (deprecated; skipped).
struct ProtoWire {
    enum WireType: UInt64 {
        case varint = 0, fixed64 = 1, lengthDelimited = 2, startGroup = 3, endGroup = 4, fixed32 = 5
    }

    /// Start of the whole input (offsets in messages are relative to it).
    private let origin: UnsafeRawPointer
    private var position: Int
    private let end: Int
    /// What is being read, for messages ("GraphProto").
    let message: String

    /// A reader over all of `bytes` (non-empty).
    init(_ bytes: UnsafeRawBufferPointer, message: String) {
        origin = UnsafeRawPointer(bytes.baseAddress!)
        position = 0
        end = bytes.count
        self.message = message
    }

    private init(origin: UnsafeRawPointer, position: Int, end: Int, message: String) {
        self.origin = origin
        self.position = position
        self.end = end
        self.message = message
    }

    var isAtEnd: Bool { position >= end }

    private func fail(_ what: String, at offset: Int) -> GraftError {
        GraftError(.invalidModel, "not a valid ONNX model: \(what) in \(message) at byte \(offset) (truncated or corrupt file?)")
    }

    /// The next field's number and wire type, or nil at the end of the message.
    mutating func nextField() throws -> (number: Int, wire: WireType)? {
        guard position < end else { return nil }
        let at = position
        let key = try varint()
        let number = key >> 3
        guard number >= 1, number <= 0x1FFF_FFFF else { throw fail("field number \(number)", at: at) }
        guard let wire = WireType(rawValue: key & 7), wire != .endGroup else {
            throw fail("wire type \(key & 7)", at: at)
        }
        return (Int(number), wire)
    }

    mutating func varint() throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        let at = position
        while true {
            guard position < end else { throw fail("a varint runs past the end", at: at) }
            let byte = origin.load(fromByteOffset: position, as: UInt8.self)
            position += 1
            guard shift < 64 else { throw fail("a varint is longer than 10 bytes", at: at) }
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
    }

    private mutating func fixed<T: FixedWidthInteger>(_: T.Type) throws -> T {
        let size = MemoryLayout<T>.size
        guard end - position >= size else { throw fail("a \(size * 8)-bit value runs past the end", at: position) }
        let v = T(littleEndian: origin.loadUnaligned(fromByteOffset: position, as: T.self))
        position += size
        return v
    }

    /// The payload of a length-delimited field, in place.
    mutating func lengthDelimited() throws -> UnsafeRawBufferPointer {
        let at = position
        let n = try varint()
        guard n <= UInt64(end - position) else {
            throw fail("a field claims \(n) bytes but \(end - position) remain", at: at)
        }
        let bytes = UnsafeRawBufferPointer(start: origin + position, count: Int(n))
        position += Int(n)
        return bytes
    }

    /// Skips a field's value (groups included, nested to any depth without recursion).
    mutating func skip(_ wire: WireType) throws {
        var depth = 0
        var wire = wire
        while true {
            switch wire {
            case .varint: _ = try varint()
            case .fixed64: _ = try fixed(UInt64.self)
            case .fixed32: _ = try fixed(UInt32.self)
            case .lengthDelimited: _ = try lengthDelimited()
            case .startGroup: depth += 1
            case .endGroup: depth -= 1
            }
            if depth == 0 { return }
            let at = position
            guard position < end else { throw fail("a group is not closed", at: at) }
            let key = try varint()
            guard let w = WireType(rawValue: key & 7) else { throw fail("wire type \(key & 7)", at: at) }
            wire = w
        }
    }

    // MARK: Typed field values (each checks the wire type the field must have)

    private func expect(_ wire: WireType, _ want: WireType, _ field: Int) throws {
        guard wire == want else {
            throw fail("field \(field) has wire type \(wire.rawValue), expected \(want.rawValue)", at: position)
        }
    }

    mutating func int64(_ wire: WireType, field: Int) throws -> Int64 {
        try expect(wire, .varint, field)
        return Int64(bitPattern: try varint())
    }

    /// int32 and enum fields: protobuf writes negative values sign-extended to 10 bytes and
    /// readers truncate to 32 bits.
    mutating func int32(_ wire: WireType, field: Int) throws -> Int32 {
        try expect(wire, .varint, field)
        return Int32(truncatingIfNeeded: try varint())
    }

    mutating func float(_ wire: WireType, field: Int) throws -> Float {
        try expect(wire, .fixed32, field)
        return Float(bitPattern: try fixed(UInt32.self))
    }

    mutating func bytes(_ wire: WireType, field: Int) throws -> UnsafeRawBufferPointer {
        try expect(wire, .lengthDelimited, field)
        return try lengthDelimited()
    }

    /// A string field (invalid UTF-8 is replaced, as the C++ runtime keeps bytes for proto2).
    mutating func string(_ wire: WireType, field: Int) throws -> String {
        String(decoding: try bytes(wire, field: field), as: UTF8.self)
    }

    /// A nested message's reader.
    mutating func message(_ wire: WireType, field: Int, _ name: String) throws -> ProtoWire {
        let payload = try bytes(wire, field: field)
        let start = payload.baseAddress.map { UnsafeRawPointer($0) - origin } ?? position
        return ProtoWire(origin: origin, position: start, end: start + payload.count, message: name)
    }

    /// Offset of `bytes` (a range this reader returned) from the start of the input.
    func offset(of bytes: UnsafeRawBufferPointer) -> Int {
        bytes.baseAddress.map { UnsafeRawPointer($0) - origin } ?? 0
    }

    // MARK: Repeated scalars: packed (one length-delimited run) or one value per record

    mutating func appendVarints(_ wire: WireType, field: Int, to values: inout [Int64]) throws {
        if wire == .lengthDelimited {
            var run = try message(wire, field: field, message)
            while !run.isAtEnd { values.append(Int64(bitPattern: try run.varint())) }
        } else {
            values.append(try int64(wire, field: field))
        }
    }

    mutating func appendInt32s(_ wire: WireType, field: Int, to values: inout [Int32]) throws {
        if wire == .lengthDelimited {
            var run = try message(wire, field: field, message)
            while !run.isAtEnd { values.append(Int32(truncatingIfNeeded: try run.varint())) }
        } else {
            values.append(try int32(wire, field: field))
        }
    }

    mutating func appendFloats(_ wire: WireType, field: Int, to values: inout [Float]) throws {
        if wire == .lengthDelimited {
            let run = try lengthDelimited()
            guard run.count % 4 == 0 else { throw fail("packed field \(field) has \(run.count) bytes, not a multiple of 4", at: position) }
            values.reserveCapacity(values.count + run.count / 4)
            for i in 0..<run.count / 4 {
                values.append(Float(bitPattern: UInt32(littleEndian: run.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))))
            }
        } else {
            values.append(try float(wire, field: field))
        }
    }

    mutating func appendDoubles(_ wire: WireType, field: Int, to values: inout [Double]) throws {
        if wire == .lengthDelimited {
            let run = try lengthDelimited()
            guard run.count % 8 == 0 else { throw fail("packed field \(field) has \(run.count) bytes, not a multiple of 8", at: position) }
            values.reserveCapacity(values.count + run.count / 8)
            for i in 0..<run.count / 8 {
                values.append(Double(bitPattern: UInt64(littleEndian: run.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))))
            }
        } else {
            try expect(wire, .fixed64, field)
            values.append(Double(bitPattern: try fixed(UInt64.self)))
        }
    }
}

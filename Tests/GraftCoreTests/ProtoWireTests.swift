import Testing
@testable import GraftCore

/// The protobuf wire decoder behind the importer (Import/ProtoWire.swift, ONNXProto.swift):
/// both encodings of repeated fields, skipped unknown fields, and corrupt input refused with a
/// message instead of a crash.
@Suite struct ProtoWireTests {
    /// y = x + b with b = [1, 2, 3], written field by field so tests can vary the encoding.
    static func model(tensor: (inout ProtoWriter) -> Void, extraModelFields: (inout ProtoWriter) -> Void = { _ in },
                      producer: String = "graft-tests") -> [UInt8] {
        var w = ProtoWriter()
        w.int(1, 8)
        w.string(2, producer)
        extraModelFields(&w)
        w.message(7) { g in
            g.message(1) { n in
                n.string(1, "x"); n.string(1, "b"); n.string(2, "y"); n.string(3, "add0"); n.string(4, "Add")
            }
            g.string(2, "test")
            g.message(5) { tensor(&$0) }
            g.message(11) { OnnxModel.value(&$0, OnnxValue(name: "x", dims: [3])) }
            g.message(12) { OnnxModel.value(&$0, OnnxValue(name: "y", dims: [3])) }
        }
        w.message(8) { o in o.string(1, ""); o.int(2, 17) }
        return w.bytes
    }

    static func floatBytes(_ values: [Float]) -> [UInt8] {
        values.flatMap { v in withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } }
    }

    func initializer(_ bytes: [UInt8]) throws -> [Float]? {
        try bytes.withUnsafeBytes { try ONNXImporter.load(bytes: $0, folder: nil) }.initializers["b"]?.floats()
    }

    @Test func packedAndUnpackedRepeatedFieldsDecodeAlike() throws {
        // dims and float_data one value per record (what the C++ runtime writes for dims)...
        let unpacked = Self.model { t in
            t.int(1, 3); t.int(2, 1)
            for v: Float in [1, 2, 3] { t.float(4, v) }
            t.string(8, "b")
        }
        // ...and as packed runs (what it writes for float_data).
        var packedDims = ProtoWriter()
        packedDims.varint(3)
        let packed = Self.model { t in
            t.data(1, packedDims.bytes); t.int(2, 1)
            t.data(4, Self.floatBytes([1, 2, 3]))
            t.string(8, "b")
        }
        #expect(try initializer(unpacked) == [1, 2, 3])
        #expect(try initializer(packed) == [1, 2, 3])
    }

    @Test func unknownFieldsOfEveryWireTypeAreSkipped() throws {
        let bytes = Self.model(tensor: { t in
            t.int(1, 3); t.int(2, 1); t.data(9, Self.floatBytes([1, 2, 3])); t.string(8, "b")
            t.int(999, -5)                                   // varint
            t.tag(998, 1); t.bytes += [UInt8](repeating: 7, count: 8)  // fixed64
            t.float(997, 1.5)                                // fixed32
        }, extraModelFields: { w in
            w.string(100, "future field")
            w.tag(101, 3); w.int(1, 4); w.tag(102, 3); w.tag(102, 4); w.tag(101, 4)  // nested groups
        })
        #expect(try initializer(bytes) == [1, 2, 3])
    }

    @Test func everyTruncationIsRefusedWithoutCrashing() throws {
        let bytes = Self.model { t in
            t.int(1, 3); t.int(2, 1); t.data(9, Self.floatBytes([1, 2, 3])); t.string(8, "b")
        }
        #expect(try initializer(bytes) == [1, 2, 3])
        // The opset record comes last, so every strict prefix lacks something the importer needs.
        for n in 1..<bytes.count {
            let prefix = Array(bytes[..<n])
            #expect(throws: GraftError.self, "prefix of \(n) bytes") {
                _ = try prefix.withUnsafeBytes { try ONNXImporter.load(bytes: $0, folder: nil) }
            }
        }
    }

    @Test func corruptRecordsAreClearErrors() {
        func refuses(_ bytes: [UInt8], _ fragment: String) {
            let e = expectError(.invalidModel, containing: [fragment]) {
                _ = try bytes.withUnsafeBytes { try ONNXImporter.load(bytes: $0, folder: nil) }
            }
            #expect(e?.code == .invalidModel, "\(e?.message ?? "loaded")")
        }
        // ir_version written as a string.
        var w = ProtoWriter()
        w.string(1, "8")
        refuses(w.bytes, "wire type")
        // A varint of 11 bytes.
        refuses([0x08] + [UInt8](repeating: 0xFF, count: 10) + [0x01], "longer than 10 bytes")
        // A length past the end.
        refuses([0x3A, 0x80, 0x01, 0x00], "remain")
        // Field number 0 and wire types 6/7 do not exist.
        refuses([0x00, 0x01], "field number 0")
        refuses([0x0E], "wire type 6")
        // An end-group record with no start, and a group never closed.
        refuses([0x0C], "wire type 4")
        refuses([0x7B, 0x08, 0x01], "group is not closed")   // field 15 (unknown)
        // Two graphs (protobuf would merge them).
        let one = Self.model { t in t.int(1, 3); t.int(2, 1); t.data(9, Self.floatBytes([1, 2, 3])); t.string(8, "b") }
        var two = ProtoWriter()
        two.bytes = one
        two.message(7) { $0.string(2, "second") }
        refuses(two.bytes, "two graphs")
        // Packed floats whose length is not a multiple of 4.
        refuses(Self.model { t in t.int(1, 3); t.int(2, 1); t.data(4, [0, 0, 0, 0, 0]); t.string(8, "b") }, "multiple of 4")
    }

    @Test func negativeEnumValuesAreSignExtended() {
        // data_type = -1 arrives as a 10-byte varint; it must read as -1, not as a huge number.
        let bytes = Self.model { t in t.int(1, 3); t.int(2, -1); t.data(9, Self.floatBytes([1, 2, 3])); t.string(8, "b") }
        let e = expectError(.unsupported, containing: ["data type", "-1"]) {
            _ = try bytes.withUnsafeBytes { try ONNXImporter.load(bytes: $0, folder: nil) }
        }
        #expect(e?.code == .unsupported, "\(e?.message ?? "loaded")")
    }

    /// Raw data large enough to be used in place when the file is mapped: at every alignment
    /// of its start within the file (moved by the producer string's length), the values must
    /// be the same, whether used in place (aligned) or copied (and its pages released).
    @Test func largeRawDataReadsTheSameAtEveryAlignment() throws {
        let values = (0..<2048).map { Float($0) * 0.5 - 7 }
        let dir = TempDir()
        defer { dir.cleanup() }
        for shift in 0..<8 {
            let bytes = Self.model(tensor: { t in
                t.int(1, 2048); t.int(2, 1); t.data(9, Self.floatBytes(values)); t.string(8, "b")
            }, producer: String(repeating: "p", count: 10 + shift))
            let graph = try ONNXImporter.load(path: dir.write("m\(shift).onnx", bytes))
            #expect(graph.initializers["b"]?.floats() == values, "shift \(shift)")
        }
    }
}

import Testing
@testable import GraftCore

/// The safetensors reader refuses every malformed header with a clear message before reading
/// any tensor, and converts the float dtypes adapters are saved in.
@Suite struct SafetensorsTests {
    /// A file from a header string and a data section.
    static func file(_ header: String, data: [UInt8], in dir: TempDir, name: String = "t.safetensors") -> String {
        let h = Array(header.utf8)
        var bytes: [UInt8] = withUnsafeBytes(of: UInt64(h.count).littleEndian) { Array($0) }
        bytes += h + data
        return dir.write(name, bytes)
    }

    static func floatBytes(_ v: [Float]) -> [UInt8] { v.flatMap { x in withUnsafeBytes(of: x.bitPattern.littleEndian) { Array($0) } } }

    func refuses(_ header: String, data: [UInt8], _ fragment: String) {
        let dir = TempDir()
        defer { dir.cleanup() }
        let path = Self.file(header, data: data, in: dir)
        let e = expectError(.invalidData, containing: ["not a valid safetensors file", fragment]) { _ = try SafetensorsFile(path: path) }
        #expect(e?.code == .invalidData, "\(e?.message ?? "accepted: \(header)")")
    }

    @Test func readsF32F16BF16() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        // a: F32 [2] = 1.5, -2 ; b: F16 [2] = 1, -2 ; c: BF16 [1] = 1.0
        let data = Self.floatBytes([1.5, -2]) + [0x00, 0x3C, 0x00, 0xC0] + [0x80, 0x3F]
        let header = #"{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F16","shape":[2],"data_offsets":[8,12]},"c":{"dtype":"BF16","shape":[1],"data_offsets":[12,14]}}"#
        let f = try SafetensorsFile(path: Self.file(header, data: data, in: dir))
        #expect(f.metadata == ["format": "pt"])
        #expect(f.entries.map(\.name) == ["a", "b", "c"])
        #expect(try f.floats(f.entry(named: "a")!).floats() == [1.5, -2])
        #expect(try f.floats(f.entry(named: "b")!).floats() == [1, -2])
        #expect(try f.floats(f.entry(named: "c")!).floats() == [1])
    }

    @Test func headerLengthPastTheEnd() {
        let dir = TempDir()
        defer { dir.cleanup() }
        var bytes: [UInt8] = withUnsafeBytes(of: UInt64(1000).littleEndian) { Array($0) }
        bytes += Array("{}".utf8)
        let path = dir.write("t.safetensors", bytes)
        let e = expectError(.invalidData, containing: ["header length 1000 runs past the end"]) { _ = try SafetensorsFile(path: path) }
        #expect(e?.code == .invalidData, "\(e?.message ?? "accepted")")
    }

    @Test func tooShort() {
        let dir = TempDir()
        defer { dir.cleanup() }
        let path = dir.write("t.safetensors", [1, 2, 3])
        let e = expectError(.invalidData, containing: ["shorter than its 8-byte header length"]) { _ = try SafetensorsFile(path: path) }
        #expect(e?.code == .invalidData)
    }

    @Test func malformedHeaders() {
        let data = Self.floatBytes([1, 2, 3, 4])
        refuses(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#, data: data, "overlap")
        refuses(#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[1],"data_offsets":[16,20]}}"#, data: data, "ends at byte 20")
        refuses(#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: data, "needs 12")
        refuses(#"{"a":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}}"#, data: data, "unknown dtype 'Q4'")
        refuses(#"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, data: data, "invalid dimension")
        refuses(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#, data: data, "invalid data_offsets")
        refuses(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}"#, data: data, "duplicate key")
        refuses(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#, data: data, "header")
        refuses("[1,2]", data: data, "not a JSON object")
        refuses(#"{"a":{"shape":[2],"data_offsets":[0,8]}}"#, data: data, "no dtype")
        refuses(#"{"a":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,8]}}"#, data: data, "2^40")
    }

    @Test func nonUTF8HeaderIsRefused() {
        let dir = TempDir()
        defer { dir.cleanup() }
        let h: [UInt8] = Array(#"{"a\#u{0}"#.utf8.prefix(3)) + [0xFF, 0xFE] + Array(#"":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}"#.utf8)
        var bytes: [UInt8] = withUnsafeBytes(of: UInt64(h.count).littleEndian) { Array($0) }
        bytes += h
        let path = dir.write("t.safetensors", bytes)
        let e = expectError(.invalidData, containing: ["UTF-8"]) { _ = try SafetensorsFile(path: path) }
        #expect(e?.code == .invalidData, "\(e?.message ?? "accepted")")
    }

    @Test func integerTensorsAreNotAdapterWeights() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let path = Self.file(#"{"i":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}"#, data: [1, 0, 0, 0, 0, 0, 0, 0], in: dir)
        let f = try SafetensorsFile(path: path)
        let e = expectError(.unsupported, containing: ["'i'", "I64"]) { _ = try f.floats(f.entries[0]) }
        #expect(e?.code == .unsupported)
    }
}

@Suite struct JSONTests {
    @Test func parsesValues() throws {
        let v = try JSONValue.parse(#" {"a": [1, 2.5e1, -3], "b": {"c": null, "d": true}, "e": "x\u00e9\n\ud83d\ude00"} "#)
        #expect(v["a"] == .array([.number(1), .number(25), .number(-3)]))
        #expect(v["b"]?["d"] == .bool(true))
        #expect(v["e"]?.string == "xé\n😀")
        #expect(v["a"]?.array?[1].integer == 25)
    }

    @Test func refusesBadJSON() {
        for bad in ["", "{", #"{"a" 1}"#, "[1,]", "01x", #"{"a":1,"a":2}"#, "\"\u{1}\"", String(repeating: "[", count: 100) + String(repeating: "]", count: 100), "1e999", #""\ud800x""#] {
            #expect(throws: GraftError.self, "accepted \(bad.prefix(20))") { _ = try JSONValue.parse(bad) }
        }
    }
}

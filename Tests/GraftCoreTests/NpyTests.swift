import Testing
@testable import GraftCore

@Suite struct NpyTests {
    @Test func roundTripsEveryDtype() throws {
        let cases: [HostTensor] = [
            HostTensor([1.5, -2, 3.25, 0, 7, 8] as [Float], shape: [2, 3]),
            HostTensor([1, -2, 1 << 40] as [Int64], shape: [3]),
            HostTensor([5, -6] as [Int32], shape: [2, 1]),
            HostTensor([true, false, true] as [Bool], shape: [3]),
            HostTensor([] as [Float], shape: [0, 4]),
            HostTensor([42] as [Float], shape: []),
        ]
        for t in cases {
            let bytes = Npy.encode(t)
            let back = try bytes.withUnsafeBytes { try Npy.decode($0, source: "mem") }
            #expect(back.dtype == t.dtype && back.shape == t.shape)
            #expect(Array(UnsafeRawBufferPointer(start: back.raw, count: back.byteCount)) == Array(UnsafeRawBufferPointer(start: t.raw, count: t.byteCount)))
            // Data starts 64-byte aligned, as numpy writes it.
            #expect((bytes.count - t.byteCount) % 64 == 0)
        }
    }

    @Test func refusesBadFiles() {
        let good = Npy.encode(HostTensor([1, 2, 3, 4] as [Float], shape: [4]))
        let bad: [[UInt8]] = [
            [], Array("NUMPY".utf8), Array(good.prefix(good.count - 1)), Array(good.prefix(20)),
            Array(String(decoding: good, as: UTF8.self).replacingOccurrences("'<f4'", "'<c8'").utf8),
            Array(String(decoding: good, as: UTF8.self).replacingOccurrences("False", "True ").utf8),
        ]
        for b in bad {
            let e = expectError(.invalidArgument, containing: ["mem"]) { _ = try b.withUnsafeBytes { try Npy.decode($0, source: "mem") } }
            #expect(e?.code == .invalidArgument, "\(e?.message ?? "accepted \(b.count) bytes")")
        }
    }
}

private extension String {
    func replacingOccurrences(_ a: String, _ b: String) -> String {
        var out = ""
        var rest = Substring(self)
        while let r = rest.firstRange(of: a) {
            out += rest[..<r.lowerBound] + b
            rest = rest[r.upperBound...]
        }
        return out + rest
    }
}

// libFuzzer target for the .npy reader (GraftCore's Npy.decode, the code path of the CLI's
// `--input` / `--input-dir` / `--expect`). graft.h exposes no .npy reader, so scripts/fuzz.sh
// compiles this file together with GraftCore's Npy.swift and the few files it depends on
// (Tensor/, GraftError.swift, IO/MappedFile.swift) into one instrumented Swift executable:
// swiftc -sanitize=fuzzer,address. Any thrown GraftError is an expected outcome; a trap,
// an out-of-bounds access or a non-GraftError error is a finding.

#if canImport(Glibc)
import Glibc
#endif

nonisolated(unsafe) var sink: UInt8 = 0

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNpy(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    do {
        let t = try Npy.decode(bytes, source: "<fuzz>")
        // Touch every element and round-trip through the writer.
        let b = UnsafeRawBufferPointer(start: t.raw, count: t.byteCount)
        var x: UInt8 = 0
        for v in b { x ^= v }
        sink = x
        let encoded = Npy.encode(t)
        let again = try encoded.withUnsafeBytes { try Npy.decode($0, source: "<round trip>") }
        if again.shape != t.shape || again.dtype != t.dtype || memcmp(again.raw, t.raw, t.byteCount) != 0 {
            fatalError("round trip changed the tensor: \(t.dtype)\(t.shape) -> \(again.dtype)\(again.shape)")
        }
    } catch is GraftError {
    } catch {
        fatalError("non-GraftError thrown: \(error)")
    }
    return 0
}

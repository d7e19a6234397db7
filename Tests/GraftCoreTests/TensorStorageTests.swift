#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import GraftCore

/// Weight copies out of a model file (`TensorStorage.copy`): byte-exact from an unaligned
/// source for sizes below, at and across the own-mapping threshold and the 2 MiB parts that
/// threads split, on 1–3 threads; and uninitialized storage is writable end to end.
@Suite struct TensorStorageTests {
    static let sizes = [0, 1, 4095, TensorStorage.ownMappingThreshold - 1, TensorStorage.ownMappingThreshold,
                        (2 << 20) - 4, (2 << 20) + 3, 5 * (1 << 20) + 1]

    @Test(arguments: [1, 2, 3])
    func copyIsByteExact(threads: Int) {
        let maxSize = Self.sizes.max()! + 1
        let source = UnsafeMutableRawPointer.allocate(byteCount: maxSize, alignment: 64)
        defer { source.deallocate() }
        var state: UInt32 = 12345
        for i in 0..<maxSize {
            state = state &* 1_664_525 &+ 1_013_904_223
            source.storeBytes(of: UInt8(truncatingIfNeeded: state >> 24), toByteOffset: i, as: UInt8.self)
        }
        for size in Self.sizes {
            // Offset by one byte: raw data in an ONNX file is rarely aligned.
            let s = TensorStorage.copy(of: UnsafeRawPointer(source + 1), byteCount: size, threads: threads)
            #expect(s.byteCount == size)
            #expect(memcmp(s.base, source + 1, size) == 0, "size \(size), \(threads) threads")
        }
    }

    @Test func uninitializedIsWritable() {
        for size in [TensorStorage.ownMappingThreshold, 3 * (2 << 20) + 5] {
            let s = TensorStorage(uninitialized: size, threads: 2)
            s.base.initializeMemory(as: UInt8.self, repeating: 7, count: size)
            #expect(s.base.load(fromByteOffset: size - 1, as: UInt8.self) == 7)
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// Bytes behind a tensor: owned (64-byte aligned; from the heap, or for big weights a mapping
/// of their own) or borrowed from memory another object keeps alive (a memory-mapped model or
/// external-data file, say).
package final class TensorStorage: @unchecked Sendable {
    package let base: UnsafeMutableRawPointer
    package let byteCount: Int
    private enum Ownership { case heap, mapping(bytes: Int), borrowed }
    private let ownership: Ownership
    private let keepAlive: AnyObject?

    /// Sizes from which `init(uninitialized:)` maps its own pages: below it the heap is cheaper.
    static let ownMappingThreshold = 1 << 20

    /// Allocates `byteCount` zeroed bytes (at least 64, so zero-size tensors still have an
    /// address that kernels may form pointers from).
    package init(byteCount: Int) {
        let n = max(byteCount, 64)
        base = UnsafeMutableRawPointer.allocate(byteCount: n, alignment: 64)
        base.initializeMemory(as: UInt8.self, repeating: 0, count: n)
        self.byteCount = byteCount
        ownership = .heap
        keepAlive = nil
    }

    /// Allocates `byteCount` bytes the caller overwrites at once (weights copied out of a
    /// model file, packed weights). Big ones get an anonymous mapping with transparent huge
    /// pages where the system allows, which `faultIn(base, byteCount)` faults in ahead of the
    /// writes; by default one MADV_POPULATE_WRITE (Linux 5.14+; otherwise page by page as the
    /// writes touch them): a page fault per 4 KiB had dominated load time. `TensorStorage.copy`
    /// and `init(uninitialized:threads:)` (Runtime/ParallelStorage.swift) fault in and fill
    /// big storage on several threads.
    package init(uninitialized byteCount: Int,
                 faultIn: (UnsafeMutableRawPointer, Int) -> Void = { p, n in _ = madvise(p, n, MADV_POPULATE_WRITE) }) {
        self.byteCount = byteCount
        keepAlive = nil
        if byteCount >= Self.ownMappingThreshold,
           let p = mmap(nil, byteCount, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), p != MAP_FAILED {
            _ = madvise(p, byteCount, MADV_HUGEPAGE)
            faultIn(p, byteCount)
            base = p
            ownership = .mapping(bytes: byteCount)
        } else {
            base = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 64), alignment: 64)
            ownership = .heap
        }
    }

    /// Borrows `byteCount` bytes at `pointer`, valid while `keepAlive` lives.
    package init(borrowing pointer: UnsafeMutableRawPointer, byteCount: Int, keepAlive: AnyObject) {
        base = pointer
        self.byteCount = byteCount
        ownership = .borrowed
        self.keepAlive = keepAlive
    }

    deinit {
        switch ownership {
        case .heap: base.deallocate()
        case .mapping(let bytes): munmap(base, bytes)
        case .borrowed: break
        }
    }
}

/// A dense row-major tensor in host memory: initializers, constants folded at load or plan
/// time, and tensors crossing the public API.
package struct HostTensor: @unchecked Sendable {
    package var dtype: DType
    package var shape: [Int]
    package let storage: TensorStorage

    package var count: Int { Shape.product(shape) }
    package var rank: Int { shape.count }
    package var byteCount: Int { count * dtype.byteSize }
    package var raw: UnsafeMutableRawPointer { storage.base }

    package init(dtype: DType, shape: [Int], storage: TensorStorage) {
        self.dtype = dtype
        self.shape = shape
        self.storage = storage
    }

    /// A zero-filled tensor.
    package init(zeros dtype: DType, shape: [Int]) {
        self.init(dtype: dtype, shape: shape, storage: TensorStorage(byteCount: Shape.product(shape) * dtype.byteSize))
    }

    package init(_ values: [Float], shape: [Int]) { self.init(copying: values, dtype: .float32, shape: shape) }
    package init(_ values: [Int64], shape: [Int]) { self.init(copying: values, dtype: .int64, shape: shape) }
    package init(_ values: [Int32], shape: [Int]) { self.init(copying: values, dtype: .int32, shape: shape) }

    /// A tensor holding a copy of `values`, whose element layout must be `dtype`'s.
    private init<T>(copying values: [T], dtype: DType, shape: [Int]) {
        precondition(values.count == Shape.product(shape), "value count does not match shape")
        self.init(zeros: dtype, shape: shape)
        values.withUnsafeBytes { if let base = $0.baseAddress { raw.copyMemory(from: base, byteCount: $0.count) } }
    }

    package init(_ values: [Bool], shape: [Int]) {
        precondition(values.count == Shape.product(shape), "value count does not match shape")
        self.init(zeros: .bool, shape: shape)
        let p = raw.assumingMemoryBound(to: UInt8.self)
        for (i, v) in values.enumerated() { p[i] = v ? 1 : 0 }
    }

    /// Typed view of the elements; `T` must match `dtype` (Float, Int64, Int32, UInt8 for bool).
    package func pointer<T>(_: T.Type) -> UnsafeMutablePointer<T> {
        // Only row tables used in place (ONNXImporter.rowTables) may be unaligned, and those are
        // read through raw pointers alone.
        assert(Int(bitPattern: raw) % MemoryLayout<T>.alignment == 0, "typed access to unaligned tensor bytes")
        return raw.assumingMemoryBound(to: T.self)
    }

    package func floats() -> [Float] {
        precondition(dtype == .float32)
        return Array(UnsafeBufferPointer(start: pointer(Float.self), count: count))
    }

    /// Elements as Int, for integer tensors (int64/int32/uint8/int8/bool): what shape-carrying
    /// inputs (Reshape's shape, Slice's starts, ...) are read with.
    package func integers() -> [Int] {
        let n = count
        switch dtype {
        case .int64: return (0..<n).map { Int(pointer(Int64.self)[$0]) }
        case .int32: return (0..<n).map { Int(pointer(Int32.self)[$0]) }
        case .uint8, .bool: return (0..<n).map { Int(pointer(UInt8.self)[$0]) }
        case .int8: return (0..<n).map { Int(pointer(Int8.self)[$0]) }
        default: return []
        }
    }

    /// A deep copy with its own storage.
    package func copy() -> HostTensor {
        let t = HostTensor(zeros: dtype, shape: shape)
        t.raw.copyMemory(from: raw, byteCount: byteCount)
        return t
    }

    /// The same bytes under another shape (element count must match).
    package func reshaped(_ newShape: [Int]) -> HostTensor {
        precondition(Shape.product(newShape) == count)
        return HostTensor(dtype: dtype, shape: newShape, storage: storage)
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// Big tensor storage faulted in and filled on several threads: what is left of copying
/// weights out of a model file, once page faults are batched, is mostly the kernel clearing
/// the new pages (half of a MiniLM load's CPU time in a profile), which then runs on every
/// core. Kept apart from `TensorStorage` itself so that the tensor files stay free of the
/// runtime's threading (the .npy fuzz harness compiles them alone).
extension TensorStorage {
    /// Uninitialized storage whose pages are faulted in by up to `threads` threads, in 2 MiB
    /// parts (transparent huge pages).
    package convenience init(uninitialized byteCount: Int, threads: Int) {
        self.init(uninitialized: byteCount) { p, n in
            nonisolated(unsafe) let base = p
            Self.forEachPart(n, threads: threads) { lo, hi in _ = madvise(base + lo, hi - lo, MADV_POPULATE_WRITE) }
        }
    }

    /// A copy of `byteCount` bytes at `source` (any alignment); big ones faulted in and copied
    /// in parts across up to `threads` threads.
    package static func copy(of source: UnsafeRawPointer, byteCount: Int, threads: Int) -> TensorStorage {
        let s = TensorStorage(uninitialized: byteCount, threads: threads)
        nonisolated(unsafe) let base = s.base
        // Heap storage (below `ownMappingThreshold`, under one part) is copied on this thread.
        forEachPart(byteCount, threads: threads) { lo, hi in
            (base + lo).copyMemory(from: source + lo, byteCount: hi - lo)
        }
        return s
    }

    /// Calls `body(lo, hi)` for consecutive 2 MiB byte ranges covering 0..<byteCount, spread
    /// over up to `threads` threads.
    private static func forEachPart(_ byteCount: Int, threads: Int, _ body: (Int, Int) -> Void) {
        let part = 2 << 20
        parallelFor((byteCount + part - 1) / part, threads: threads) { r in
            body(r.lowerBound * part, min(r.upperBound * part, byteCount))
        }
    }
}

import Dispatch

/// Splits `0..<count` into at most `threads` contiguous chunks and runs `body` on each,
/// in parallel when `threads > 1` and the work is worth it (`count >= minPerThread * 2`).
/// `body` receives a half-open range; it must not write outside the elements it owns.
///
/// During a session's run the chunks go to that session's `WorkerPool` (see there why);
/// elsewhere (constant folding at load, tests calling kernels directly) to
/// `DispatchQueue.concurrentPerform`.
@inline(__always)
package func parallelFor(_ count: Int, threads: Int, minPerThread: Int = 1, _ body: (Range<Int>) -> Void) {
    let chunks = min(threads, count / max(minPerThread, 1))
    if chunks <= 1 {
        if count > 0 { body(0..<count) }
        return
    }
    let run: (Int) -> Void = { c in
        let lo = count * c / chunks
        let hi = count * (c + 1) / chunks
        if lo < hi { body(lo..<hi) }
    }
    if let pool = CurrentWorkerPool.pool, chunks <= pool.workers + 1, !pool.busy {
        pool.run(chunks: chunks, run)
        return
    }
    withoutActuallyEscaping(run) { escaping in
        // Chunks touch disjoint elements by contract; concurrentPerform returns only when
        // every chunk is done, so the closure never outlives this call.
        nonisolated(unsafe) let run = escaping
        DispatchQueue.concurrentPerform(iterations: chunks) { c in run(c) }
    }
}

import Synchronization
import Testing
@testable import GraftCore

/// The session's worker pool (Runtime/WorkerPool.swift): every chunk of every region runs
/// exactly once, regions never overlap, and pools stop cleanly.
@Suite struct WorkerPoolTests {
    @Test(arguments: [1, 2, 3])
    func everyChunkRunsOncePerRegion(workers: Int) {
        let pool = WorkerPool(workers: workers)
        let counts = UnsafeMutablePointer<Int>.allocate(capacity: 8)
        defer { counts.deallocate() }
        let total = Atomic<Int>(0)
        // Many short regions back to back (as in a run), with every chunk count up to
        // workers + 1, so that workers arrive late, early, or not at all.
        for region in 0..<20_000 {
            let chunks = 1 + region % (workers + 1)
            counts.initialize(repeating: 0, count: 8)
            pool.run(chunks: chunks) { c in
                counts[c] += 1                  // chunk c is owned by one thread
                total.add(c + 1, ordering: .relaxed)
            }
            for c in 0..<chunks where counts[c] != 1 {
                Issue.record("region \(region): chunk \(c) ran \(counts[c]) times")
                return
            }
        }
        var want = 0
        for region in 0..<20_000 { let n = 1 + region % (workers + 1); want += n * (n + 1) / 2 }
        #expect(total.load(ordering: .relaxed) == want)
    }

    @Test func parallelForUsesTheCurrentPoolAndCoversTheRange() {
        let pool = WorkerPool(workers: 1)
        let n = 100_003
        let marks = UnsafeMutablePointer<UInt8>.allocate(capacity: n)
        defer { marks.deallocate() }
        marks.initialize(repeating: 0, count: n)
        CurrentWorkerPool.with(pool) {
            #expect(CurrentWorkerPool.pool === pool)
            parallelFor(n, threads: 2, minPerThread: 1000) { range in
                for i in range { marks[i] &+= 1 }
            }
        }
        #expect(CurrentWorkerPool.pool == nil)
        #expect((0..<n).allSatisfy { marks[$0] == 1 })
    }

    /// A region started inside a chunk (on the caller's thread or a worker's) does not re-enter
    /// the pool: it runs elsewhere and every element is still covered once.
    @Test func nestedRegionsRunElsewhere() {
        let pool = WorkerPool(workers: 1)
        let n = 64, m = 1000
        let marks = UnsafeMutablePointer<UInt8>.allocate(capacity: n * m)
        defer { marks.deallocate() }
        marks.initialize(repeating: 0, count: n * m)
        CurrentWorkerPool.with(pool) {
            parallelFor(n, threads: 2) { outer in
                for i in outer {
                    parallelFor(m, threads: 2, minPerThread: 100) { inner in
                        for j in inner { marks[i * m + j] &+= 1 }
                    }
                }
            }
        }
        #expect((0..<(n * m)).allSatisfy { marks[$0] == 1 })
    }

    @Test func poolsStartAndStopRepeatedly() {
        // Workers that are spinning, sleeping, or never got a region must all be joined.
        for i in 0..<200 {
            let pool = WorkerPool(workers: 2)
            if i % 2 == 0 { pool.run(chunks: 3) { _ in } }
        }
    }
}

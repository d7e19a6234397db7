import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Threads one session keeps for its parallel regions (`parallelFor`), so that a region costs
/// an atomic store and a few hundred nanoseconds instead of waking threads of a general
/// queue: a run of a transformer has hundreds of regions, most of them tens of microseconds
/// long, and with `DispatchQueue.concurrentPerform` the calling thread usually ran every chunk
/// itself before a woken worker arrived (a MiniLM run at two threads did 64% of its work on the
/// calling thread).
///
/// A region is published as one 64-bit word (epoch, chunk count, next chunk); the caller and
/// the workers claim chunks from it by compare-and-swap, so the caller never waits for a
/// worker that has not started (it claims the chunk itself), only for chunks already being
/// run. Workers spin for `spinNanoseconds` after their last chunk (regions follow each other
/// closely during a run), then sleep on a condition variable until the next region.
package final class WorkerPool: @unchecked Sendable {
    /// Worker threads (the caller is the other participant).
    package let workers: Int
    /// How long an idle worker polls for the next region before it sleeps.
    static let spinNanoseconds: UInt64 = 200_000

    /// `GRAFT_WORKER_POOL=0` in the environment (read once): sessions keep no pool and parallel
    /// regions go to `DispatchQueue.concurrentPerform` (no spinning threads; slower at short
    /// sequences). An A/B baseline and a choice for machines shared with other busy processes.
    package static let enabled: Bool = {
        guard let v = getenv("GRAFT_WORKER_POOL") else { return true }
        return String(cString: v) != "0"
    }()

    /// epoch (bits 32–63) | chunk count (16–31) | next unclaimed chunk (0–15).
    private let state = Atomic<UInt64>(0)
    /// Chunks of the current region not yet finished.
    private let remaining = Atomic<Int>(0)
    private let sleepers = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    /// The current region's body; written only while no chunk of any region is claimable.
    private nonisolated(unsafe) var body: ((Int) -> Void)?
    private var mutex = pthread_mutex_t()
    private var wake = pthread_cond_t()
    private var threads: [pthread_t] = []

    /// Starts `workers` threads (≥ 1).
    package init(workers: Int) {
        precondition(workers >= 1 && workers < 0xFFFF)
        self.workers = workers
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&wake, nil)
        for _ in 0..<workers {
            let context = Unmanaged.passUnretained(self).toOpaque()
            var thread = pthread_t()
            let rc = pthread_create(&thread, nil, { raw in
                Unmanaged<WorkerPool>.fromOpaque(raw!).takeUnretainedValue().workerLoop()
                return nil
            }, context)
            if rc == 0 { threads.append(thread) }
        }
    }

    deinit {
        stopping.store(true, ordering: .sequentiallyConsistent)
        pthread_mutex_lock(&mutex)
        pthread_cond_broadcast(&wake)
        pthread_mutex_unlock(&mutex)
        for t in threads { pthread_join(t, nil) }
        pthread_cond_destroy(&wake)
        pthread_mutex_destroy(&mutex)
    }

    /// Whether a region is running: set and read only by the caller's thread (the pool is the
    /// current pool of that thread alone), so that a parallel region started inside a chunk the
    /// caller runs goes elsewhere instead of re-entering the pool (`parallelFor`).
    package private(set) var busy = false

    /// Runs `body(c)` for every c in 0..<chunks on the caller and the workers; returns when all
    /// are done. Not reentrant: one caller at a time (a session runs on one thread at a time).
    package func run(chunks: Int, _ body: (Int) -> Void) {
        precondition(chunks >= 1 && chunks < 0xFFFF && !busy)
        busy = true
        defer { busy = false }
        withoutActuallyEscaping(body) { escaping in
            self.body = escaping
            remaining.store(chunks, ordering: .sequentiallyConsistent)
            let epoch = (state.load(ordering: .relaxed) >> 32) &+ 1
            state.store(epoch << 32 | UInt64(chunks) << 16, ordering: .sequentiallyConsistent)
            if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
                pthread_mutex_lock(&mutex)
                pthread_cond_broadcast(&wake)
                pthread_mutex_unlock(&mutex)
            }
            drain(epoch: epoch)
            // Only chunks a worker has claimed can be outstanding now.
            var spins = 0
            while remaining.load(ordering: .acquiring) > 0 {
                spins += 1
                if spins & 1023 == 0 { sched_yield() }
            }
            self.body = nil
        }
    }

    /// Claims and runs chunks of region `epoch` until none is left.
    private func drain(epoch: UInt64) {
        while true {
            let s = state.load(ordering: .acquiring)
            guard s >> 32 == epoch else { return }
            let chunks = (s >> 16) & 0xFFFF, next = s & 0xFFFF
            guard next < chunks else { return }
            guard state.compareExchange(expected: s, desired: s + 1, ordering: .acquiringAndReleasing).exchanged else { continue }
            // The region cannot end (nor `body` change) before this chunk is counted done.
            body!(Int(next))
            remaining.subtract(1, ordering: .releasing)
        }
    }

    private func workerLoop() {
        var seen: UInt64 = 0
        while true {
            var epoch = state.load(ordering: .acquiring) >> 32
            if epoch == seen {
                epoch = waitForRegion(after: seen)
                if stopping.load(ordering: .acquiring) { return }
            }
            seen = epoch
            drain(epoch: epoch)
        }
    }

    /// Polls for an epoch after `seen` for spinNanoseconds, then sleeps until one is published
    /// (or the pool stops). Returns the new epoch.
    private func waitForRegion(after seen: UInt64) -> UInt64 {
        let start = Self.now()
        var polls = 0
        while true {
            let epoch = state.load(ordering: .acquiring) >> 32
            if epoch != seen || stopping.load(ordering: .relaxed) { return epoch }
            polls += 1
            if polls & 255 == 0, Self.now() &- start > Self.spinNanoseconds { break }
        }
        pthread_mutex_lock(&mutex)
        sleepers.add(1, ordering: .sequentiallyConsistent)
        var epoch = state.load(ordering: .sequentiallyConsistent) >> 32
        while epoch == seen && !stopping.load(ordering: .sequentiallyConsistent) {
            pthread_cond_wait(&wake, &mutex)
            epoch = state.load(ordering: .sequentiallyConsistent) >> 32
        }
        sleepers.subtract(1, ordering: .sequentiallyConsistent)
        pthread_mutex_unlock(&mutex)
        return epoch
    }

    private static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }
}

/// The pool of the session running on this thread (set by `CoreSession.execute` for the
/// duration of a run), which `parallelFor` uses; nil elsewhere (e.g. folding at load).
enum CurrentWorkerPool {
    private static let key: pthread_key_t = {
        var k = pthread_key_t()
        pthread_key_create(&k, nil)
        return k
    }()

    static var pool: WorkerPool? {
        guard let p = pthread_getspecific(key) else { return nil }
        return Unmanaged<WorkerPool>.fromOpaque(p).takeUnretainedValue()
    }

    /// Runs `body` with `pool` as this thread's current pool (restoring the previous one).
    static func with<R>(_ pool: WorkerPool?, _ body: () throws -> R) rethrows -> R {
        let previous = pthread_getspecific(key)
        pthread_setspecific(key, pool.map { Unmanaged.passUnretained($0).toOpaque() })
        defer { pthread_setspecific(key, previous) }
        return try withExtendedLifetime(pool) { try body() }
    }
}

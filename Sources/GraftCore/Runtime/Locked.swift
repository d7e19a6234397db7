#if canImport(Glibc)
import Glibc
#endif

/// A value behind a pthread mutex: Graft's one lock type.
///
/// Why not Synchronization.Mutex: on Linux it locks with futexes inside the prebuilt standard
/// library, which ThreadSanitizer does not see, so TSan reported the data such a Mutex protects
/// as racing (scripts/sanitizers.sh, two sessions packing weights at once); it does intercept
/// pthread mutexes.
package final class Locked<Value>: @unchecked Sendable {
    private var value: Value
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    package init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    package func withLock<R, E: Error>(_ body: (inout Value) throws(E) -> R) throws(E) -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}

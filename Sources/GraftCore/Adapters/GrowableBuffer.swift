/// A growable buffer reused across runs: allocates only when a larger size is asked, and then
/// drops the old contents (callers fill it anew each time). Uninitialised memory, so Element
/// must be a trivial type (Float, Int).
struct GrowableBuffer<Element>: ~Copyable {
    private var pointer: UnsafeMutablePointer<Element>?
    private var capacity = 0

    /// At least `n` elements (at least 16), valid until the next call asks for more.
    mutating func elements(_ n: Int) -> UnsafeMutablePointer<Element> {
        if n > capacity || pointer == nil {
            pointer?.deallocate()
            capacity = max(n, 16)
            pointer = UnsafeMutablePointer<Element>.allocate(capacity: capacity)
        }
        return pointer!
    }

    deinit { pointer?.deallocate() }
}

extension GrowableBuffer where Element == Float {
    /// `elements(n)` under the name the float scratch users read.
    mutating func floats(_ n: Int) -> UnsafeMutablePointer<Float> { elements(n) }
}

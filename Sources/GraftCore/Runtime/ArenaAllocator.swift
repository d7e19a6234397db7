/// Offline best-fit allocator for one plan's arena: values are allocated when their step
/// runs and released after their last use, so buffers whose lifetimes don't overlap share
/// bytes. Works on offsets only; the session owns the memory.
struct ArenaAllocator {
    static let alignment = 64
    private var free: [(offset: Int, size: Int)] = []   // sorted by offset, coalesced
    private(set) var high = 0

    mutating func allocate(_ bytes: Int) -> Int {
        let size = max(Self.round(bytes), Self.alignment)
        var best = -1
        for (i, block) in free.enumerated() where block.size >= size {
            if best < 0 || block.size < free[best].size { best = i }
        }
        if best >= 0 {
            let block = free[best]
            if block.size == size { free.remove(at: best) } else { free[best] = (block.offset + size, block.size - size) }
            return block.offset
        }
        // Grow; reuse a free block that ends at the top.
        if let last = free.last, last.offset + last.size == high {
            free.removeLast()
            high = last.offset + size
            return last.offset
        }
        let offset = high
        high += size
        return offset
    }

    mutating func release(_ offset: Int, _ bytes: Int) {
        let size = max(Self.round(bytes), Self.alignment)
        let i = free.firstIndex { $0.offset > offset } ?? free.count
        free.insert((offset, size), at: i)
        // Coalesce with the next, then the previous block.
        if i + 1 < free.count, free[i].offset + free[i].size == free[i + 1].offset {
            free[i].size += free[i + 1].size
            free.remove(at: i + 1)
        }
        if i > 0, free[i - 1].offset + free[i - 1].size == free[i].offset {
            free[i - 1].size += free[i].size
            free.remove(at: i)
        }
    }

    static func round(_ n: Int) -> Int { (n + alignment - 1) / alignment * alignment }
}

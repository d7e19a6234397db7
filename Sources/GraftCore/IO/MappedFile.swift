#if canImport(Glibc)
import Glibc
#endif

/// A whole file mapped read-only. Model files are parsed from the mapping, and external-data
/// weights are used in place where their alignment allows (no copy, pages shared between
/// processes).
package final class MappedFile: @unchecked Sendable {
    package let path: String
    package let base: UnsafeMutableRawPointer?
    package let size: Int

    /// Pages are faulted in as they are read, not up front: a model file's parse touches only
    /// the protobuf structure (raw data is skipped by length), copied weights are read once
    /// and their pages handed back, and weights used in place are read by their first run.
    /// MAP_POPULATE (used until November 2026) mapped all of it at load: MiniLM
    /// `graft.Model` 30–31 → 23–25 ms median without it, load to first result 64–66 → 60–64 ms.
    package init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw GraftError(.io, "cannot open '\(path)': \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw GraftError(.io, "cannot stat '\(path)': \(String(cString: strerror(errno)))")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw GraftError(.io, "'\(path)' is not a regular file")
        }
        size = Int(st.st_size)
        if size == 0 {
            base = nil
            return
        }
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else {
            throw GraftError(.io, "cannot map '\(path)': \(String(cString: strerror(errno)))")
        }
        base = p
    }

    /// The mapped bytes (empty for an empty file).
    package var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: size) }

    /// Gives the whole pages inside `range` (byte offsets) back to the kernel: for bytes that
    /// were copied out and will not be read again, so they stop counting in the process's
    /// resident memory while the mapping lives on for tensors used in place. Reading them
    /// again would fault them back in from the file.
    package func release(_ range: Range<Int>) {
        guard let base, range.lowerBound >= 0, range.upperBound <= size else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let lo = (range.lowerBound + page - 1) / page * page
        let hi = range.upperBound / page * page
        if hi > lo { _ = madvise(base + lo, hi - lo, MADV_DONTNEED) }
    }

    deinit {
        if let base { munmap(base, size) }
    }
}

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

    /// `populate`: fault every page in up front (MAP_POPULATE) — faster for a file that is
    /// read whole right away, like a model parsed by protobuf.
    package init(path: String, populate: Bool = false) throws {
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
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE | (populate ? MAP_POPULATE : 0), fd, 0)
        guard let p, p != MAP_FAILED else {
            throw GraftError(.io, "cannot map '\(path)': \(String(cString: strerror(errno)))")
        }
        base = p
    }

    /// The mapped bytes (empty for an empty file).
    package var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: size) }

    deinit {
        if let base { munmap(base, size) }
    }
}

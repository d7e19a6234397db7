#if canImport(Glibc)
import Glibc
#endif

/// Finds and maps the files that hold external tensor data, confined to the model's folder:
/// a `location` that is absolute, climbs with `..`, or resolves (through symlinks) outside the
/// folder is refused. Each file is mapped once and shared by the tensors that point into it.
package final class ExternalDataResolver {
    private let folder: String?
    private let refusal: String
    private var files: [String: MappedFile] = [:]

    /// `folder`: the model file's directory; nil when external data is not allowed (the model
    /// came from memory, or the caller disabled it), and `refusal` says why.
    package init(folder: String?, refusal: String = "the model was loaded from memory; load it from a path") {
        self.folder = folder
        self.refusal = refusal
    }

    package func file(for location: String, tensor: String) throws -> MappedFile {
        if let f = files[location] { return f }
        guard let folder else {
            throw GraftError(.invalidModel, "tensor '\(tensor)' keeps its data in external file '\(location)', but \(refusal)")
        }
        guard !location.isEmpty else {
            throw GraftError(.invalidModel, "tensor '\(tensor)' is marked external but has no location")
        }
        guard !location.hasPrefix("/") else {
            throw GraftError(.invalidModel, "tensor '\(tensor)': external data location '\(location)' is an absolute path; only paths inside the model's folder are allowed")
        }
        let parts = location.split(separator: "/", omittingEmptySubsequences: true)
        guard !parts.contains("..") else {
            throw GraftError(.invalidModel, "tensor '\(tensor)': external data location '\(location)' leaves the model's folder ('..' is not allowed)")
        }
        guard let root = realPath(folder) else {
            throw GraftError(.io, "cannot resolve the model folder '\(folder)'")
        }
        let joined = folder + "/" + location
        guard let resolved = realPath(joined) else {
            throw GraftError(.io, "tensor '\(tensor)': external data file '\(joined)' does not exist")
        }
        guard resolved.hasPrefix(root.hasSuffix("/") ? root : root + "/") else {
            throw GraftError(.invalidModel, "tensor '\(tensor)': external data location '\(location)' resolves to '\(resolved)', outside the model's folder '\(root)' (symlinks out of the folder are refused)")
        }
        let f = try MappedFile(path: resolved)
        files[location] = f
        return f
    }

    private func realPath(_ p: String) -> String? {
        guard let c = realpath(p, nil) else { return nil }
        defer { free(c) }
        return String(cString: c)
    }
}

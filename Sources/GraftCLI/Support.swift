#if canImport(Glibc)
import Glibc
#endif
import GraftCore


func printError(_ s: String) {
    let line = s + "\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
}

/// Human-readable byte count.
func formatBytes(_ n: Int) -> String {
    let units = ["B", "KiB", "MiB", "GiB"]
    var v = Double(n)
    var u = 0
    while v >= 1024 && u < units.count - 1 { v /= 1024; u += 1 }
    return u == 0 ? "\(n) B" : String(format1: v) + " " + units[u]
}

extension String {
    /// One decimal place without Foundation.
    init(format1 v: Double) {
        let tenths = Int((v * 10).rounded())
        self = "\(tenths / 10).\(tenths % 10)"
    }
}

/// Text for a few leading elements of a tensor.
func preview(_ t: HostTensor, limit: Int = 6) -> String {
    let n = min(t.count, limit)
    var parts: [String] = []
    for i in 0..<n {
        switch t.dtype {
        case .float32: parts.append(String(t.pointer(Float.self)[i]))
        case .bool: parts.append(t.pointer(UInt8.self)[i] != 0 ? "true" : "false")
        default: parts.append(String(t.integers()[i]))
        }
    }
    return "[" + parts.joined(separator: ", ") + (t.count > limit ? ", …]" : "]")
}

func fileExists(_ path: String) -> Bool { access(path, F_OK) == 0 }

extension String {
    /// Left-aligned in `n` columns (never cut).
    func padding(_ n: Int) -> String { count >= n ? self : self + String(repeating: " ", count: n - count) }
    /// Right-aligned in `n` columns (never cut).
    func padded(left n: Int) -> String { count >= n ? self : String(repeating: " ", count: n - count) + self }
}

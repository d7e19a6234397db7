#if canImport(Glibc)
import Glibc
#endif
import Dispatch
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

/// A repeatable `OPTION NAME=VALUE` argument split at its first "=" (VALUE may hold more "=");
/// `form` is what the error message says the option expects (e.g. "NAME=FILE.npy").
func splitNameValue(_ spec: String, option: String, form: String = "NAME=VALUE") throws -> (name: String, value: String) {
    guard let eq = spec.firstIndex(of: "="), eq != spec.startIndex else {
        throw GraftError(.invalidArgument, "\(option) expects \(form), got '\(spec)'")
    }
    return (String(spec[..<eq]), String(spec[spec.index(after: eq)...]))
}

/// `--limit NAME=VALUE` options as model limits (docs/ROBUSTNESS.md): NAME is a limit's C name
/// (`GRAFT_LIMIT_WEIGHT_BYTES`) or its short form (`weight-bytes`), VALUE a positive integer.
func parseLimits(_ specs: [String]) throws -> Limits {
    var limits = Limits()
    for spec in specs {
        let (name, value) = try splitNameValue(spec, option: "--limit")
        let short = { (k: Limits.Kind) in String(k.name.dropFirst("GRAFT_LIMIT_".count).lowercased().map { $0 == "_" ? "-" : $0 }) }
        guard let kind = Limits.Kind.allCases.first(where: { $0.name == name || short($0) == name }) else {
            throw GraftError(.invalidArgument, "--limit \(spec): unknown limit '\(name)'; limits are \(Limits.Kind.allCases.map(short).joined(separator: ", "))")
        }
        guard let n = Int(value), n >= 1 else {
            throw GraftError(.invalidArgument, "--limit \(spec): the value must be a positive integer")
        }
        limits[kind] = n
    }
    return limits
}

/// A monotonic clock in nanoseconds, and milliseconds since one of its readings.
func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
func ms(since start: UInt64) -> Double { Double(DispatchTime.now().uptimeNanoseconds &- start) / 1e6 }

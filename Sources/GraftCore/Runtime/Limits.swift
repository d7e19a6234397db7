#if canImport(Glibc)
import Glibc
#endif

/// Caps on what one model, and the adapters loaded for it, may make Graft allocate or hold.
/// A file from a stranger must not be able to exhaust memory (Swift traps when an allocation
/// fails, taking the embedding process down): each cap is checked *before* the allocation it
/// bounds and reported as `limitExceeded` with a message naming the cap and its value.
///
/// Set per model at load (the C API's `graft_model_options_set_limit`, the Swift API's
/// `Model(path:limits:)`, Python's `Model(path, limits=...)`); adapters loaded for the model
/// and sessions over it obey the model's caps. docs/ROBUSTNESS.md has the table.
public struct Limits: Sendable, Equatable {
    /// Bytes of one allocation the model's graph may cause: a tensor folded at load or plan
    /// time, any kernel output, one session's work arena (per input-shape plan). Default
    /// 16 GiB, or `GRAFT_MAX_TENSOR_BYTES` from the environment when set (read once).
    public var tensorBytes: Int
    /// Bytes of all the model's weights (initializers, decoded to the types kernels compute
    /// in, and constants folded at load). Default 64 GiB.
    public var weightBytes: Int
    /// Largest rank of one low-rank adapter term. Default 4096.
    public var adapterRank: Int
    /// Terms one adapter may add: low-rank terms (one per site for LoRA, one per expert and
    /// site for MoE-LoRA), routers and channel scales. Default 65,536.
    public var adapterTerms: Int
    /// Bytes of weights one adapter holds (its terms' A and B, routers, channel scales, all
    /// float32). Default 16 GiB.
    public var adapterBytes: Int
    /// Adapters bound to a session at once: a `setAdapters` list, or the distinct adapters of
    /// a per-row (mixed-batch) run. Default 1024.
    public var boundAdapters: Int

    /// The defaults listed above.
    public init() {
        tensorBytes = Limits.defaultTensorBytes
        weightBytes = 1 << 36
        adapterRank = 4096
        adapterTerms = 1 << 16
        adapterBytes = 1 << 34
        boundAdapters = 1024
    }

    package static let defaults = Limits()

    /// 16 GiB unless `GRAFT_MAX_TENSOR_BYTES` (bytes, > 0) says otherwise; the fuzzer lowers it
    /// so that a graph that legitimately computes a huge tensor is refused quickly.
    private static let defaultTensorBytes: Int = {
        if let v = getenv("GRAFT_MAX_TENSOR_BYTES"), let n = Int(String(cString: v)), n > 0 { return n }
        return 1 << 34
    }()

    /// The caps by number, as graft.h's GRAFT_LIMIT_* constants.
    package enum Kind: Int32, CaseIterable, Sendable {
        case tensorBytes = 1, weightBytes, adapterRank, adapterTerms, adapterBytes, boundAdapters

        /// Name used in messages: the C constant, which the other APIs mirror.
        package var name: String {
            switch self {
            case .tensorBytes: "GRAFT_LIMIT_TENSOR_BYTES"
            case .weightBytes: "GRAFT_LIMIT_WEIGHT_BYTES"
            case .adapterRank: "GRAFT_LIMIT_ADAPTER_RANK"
            case .adapterTerms: "GRAFT_LIMIT_ADAPTER_TERMS"
            case .adapterBytes: "GRAFT_LIMIT_ADAPTER_BYTES"
            case .boundAdapters: "GRAFT_LIMIT_BOUND_ADAPTERS"
            }
        }
    }

    package subscript(kind: Kind) -> Int {
        get {
            switch kind {
            case .tensorBytes: tensorBytes
            case .weightBytes: weightBytes
            case .adapterRank: adapterRank
            case .adapterTerms: adapterTerms
            case .adapterBytes: adapterBytes
            case .boundAdapters: boundAdapters
            }
        }
        set {
            switch kind {
            case .tensorBytes: tensorBytes = newValue
            case .weightBytes: weightBytes = newValue
            case .adapterRank: adapterRank = newValue
            case .adapterTerms: adapterTerms = newValue
            case .adapterBytes: adapterBytes = newValue
            case .boundAdapters: boundAdapters = newValue
            }
        }
    }

    /// Every cap must be at least 1 (a cap of 0 would refuse everything).
    package func validated() throws -> Limits {
        for k in Kind.allCases where self[k] < 1 {
            throw GraftError(.invalidArgument, "limit \(k.name) must be at least 1, got \(self[k])")
        }
        return self
    }

    /// Throws `limitExceeded` when `value` is over cap `kind`: "`what` needs/has `value` `unit`,
    /// more than the N-`unit` limit (KIND)".
    package func check(_ kind: Kind, _ value: Int, _ what: @autoclosure () -> String, verb: String = "needs", unit: String = "bytes") throws {
        guard value <= self[kind] else {
            throw GraftError(.limitExceeded, "\(what()) \(verb) \(value) \(unit), more than the limit of \(self[kind]) (\(kind.name); raise it in the model options)")
        }
    }
}

import CGraft
import GraftCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

// Objects behind the opaque C handles. Each handle is an `Unmanaged` retained reference:
// `graft_model *` → ModelBox, `graft_session *` → SessionBox, options → their boxes.

/// A model plus the C strings its introspection functions hand out (valid while it lives).
final class ModelBox {
    struct Value {
        let name: UnsafeMutablePointer<CChar>
        let dtype: Int32
        /// nil when the file records no shape.
        let dims: [(size: Int64, symbol: UnsafeMutablePointer<CChar>?)]?
    }

    let core: CoreModel
    let inputs: [Value]
    let outputs: [Value]

    init(core: CoreModel) {
        self.core = core
        inputs = core.graph.inputs.map(Self.value)
        outputs = core.graph.outputs.map(Self.value)
    }

    deinit {
        for v in inputs + outputs {
            free(v.name)
            for d in v.dims ?? [] { free(d.symbol) }
        }
    }

    private static func value(_ d: ValueDecl) -> Value {
        Value(name: strdup(d.name), dtype: d.dtype.rawValue, dims: d.dims?.map { dim in
            switch dim {
            case .fixed(let n): return (Int64(n), nil)
            case .symbol(let s): return (-1, strdup(s))
            case .unknown: return (-1, nil)
            }
        })
    }
}

/// A session, its model (kept alive) and a flag that refuses a second thread entering it.
final class SessionBox {
    let model: ModelBox
    let core: CoreSession
    private let busy = Atomic<Bool>(false)

    init(model: ModelBox, core: CoreSession) {
        self.model = model
        self.core = core
    }

    /// Runs `body` with the session marked busy; a concurrent caller gets an error instead of
    /// racing on the plan cache and arena.
    func exclusive<T>(_ body: () throws -> T) throws -> T {
        guard busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            throw GraftError(.invalidArgument, "the session is in use by another thread; a session is used by one thread at a time (create one per thread)")
        }
        defer { busy.store(false, ordering: .releasing) }
        return try body()
    }
}

final class ModelOptionsBox {
    var externalData = true
    var siteMap: [String: String] = [:]
    var limits = Limits()
}

final class SessionOptionsBox {
    var threads: Int32 = 1
}

final class RunOptionsBox {
    /// Per-row adapters for runs with these options (nil: use the session's bound adapters).
    var rowAdapters: [CoreAdapter?]?
    /// Modality id per token (nil: none).
    var modalities: [UInt8]?
    /// Auxiliary tensors by name, copied (nil: none), and how generated weights are applied.
    var aux: [String: HostTensor]?
    var merge = MergePolicy.auto
    /// Per-request control of routed experts (RoutingExports.swift; nil: none).
    var routing: RoutingControl?
    /// The record runs write routing decisions into (kept alive here).
    var routingRecord: RoutingRecordBox?
}

/// An adapter plus its name as a C string.
final class AdapterBox {
    let core: CoreAdapter
    let name: UnsafeMutablePointer<CChar>
    /// The generator's auxiliary input name (nil: not a generator).
    let auxInput: UnsafeMutablePointer<CChar>?

    init(core: CoreAdapter) {
        self.core = core
        name = strdup(core.name)
        auxInput = core.generator.map { strdup($0.auxInput) }
    }

    deinit {
        free(name)
        free(auxInput)
    }
}

// MARK: - Handle conversion

func retainedHandle(_ object: AnyObject) -> OpaquePointer {
    OpaquePointer(Unmanaged.passRetained(object).toOpaque())
}

func object<T: AnyObject>(_ handle: OpaquePointer, as _: T.Type) -> T {
    Unmanaged<T>.fromOpaque(UnsafeRawPointer(handle)).takeUnretainedValue()
}

func release(_ handle: OpaquePointer?) {
    guard let handle else { return }
    Unmanaged<AnyObject>.fromOpaque(UnsafeRawPointer(handle)).release()
}

// MARK: - Status conversion

/// Runs an exported body: a thrown GraftError becomes its code and the thread's last error;
/// anything else becomes GRAFT_STATUS_INTERNAL.
@inline(__always)
func guarded(_ body: () throws -> Void) -> graft_status {
    do {
        try body()
        return 0
    } catch let e as GraftError {
        cgraft_set_last_error(e.message)
        return e.code.rawValue
    } catch {
        cgraft_set_last_error("internal error: \(error)")
        return GraftError.Code.internalError.rawValue
    }
}

func invalid(_ message: String) -> GraftError { GraftError(.invalidArgument, message) }

func require<T>(_ pointer: T?, _ what: String) throws -> T {
    guard let pointer else { throw invalid("\(what) must not be NULL") }
    return pointer
}

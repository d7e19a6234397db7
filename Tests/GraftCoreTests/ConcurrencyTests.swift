import Foundation
import Testing
@testable import GraftCore

/// Several threads, each with its own session on one shared model, run the BERT fixture over
/// and over with different adapter bindings while another thread loads adapters through the
/// plugins, binds and swaps them on its own session and drops them. Every output must be
/// bit-for-bit the output the same binding gives when nothing else runs (computed first, in
/// this thread). Bounded by iterations and by time; run it under ThreadSanitizer with
/// `swift build --build-tests --sanitize=thread --scratch-path .build-tsan && swift test
/// --skip-build --sanitize=thread --scratch-path .build-tsan --filter ConcurrencyTests` (with
/// GRAFT_PLUGIN_PATH naming an uninstrumented libGraftPluginLoRA.so: the TSan-built Swift plugin
/// cannot be dlopened, see docs/ROBUSTNESS.md).
@Suite(.serialized) struct ConcurrencyTests {
    static let modelPath = "\(fixturesRoot)/bert_dynamo/model.onnx"
    static let inputDir = "\(fixturesRoot)/bert_dynamo/basic/inputs"
    static let adapterPaths = [
        "lora": "\(fixturesRoot)/adapters/bert/lora_qv_r8",
        "rslora": "\(fixturesRoot)/adapters/bert/rslora_r16",
        "ia3": "\(fixturesRoot)/adapters/bert/ia3",
    ]
    /// Runs per worker thread and loads by the adapter thread (upper bounds).
    static let workerIterations = Int(ProcessInfo.processInfo.environment["GRAFT_STRESS_ITERATIONS"] ?? "") ?? 150
    static let loaderIterations = Int(ProcessInfo.processInfo.environment["GRAFT_STRESS_LOADS"] ?? "") ?? 30
    /// Wall-clock bound: threads stop starting new iterations after this many seconds.
    static let timeLimit = Double(ProcessInfo.processInfo.environment["GRAFT_STRESS_SECONDS"] ?? "") ?? 60

    /// A binding of adapters to a session: names with scales (merged or not), or one adapter
    /// name (or nil: base) per batch row.
    struct Binding: Sendable, CustomStringConvertible {
        let name: String
        let adapters: [(String, Float)]
        let merged: Bool
        let rows: [String?]?
        var description: String { name }
    }

    static let bindings: [Binding] = [
        Binding(name: "base", adapters: [], merged: false, rows: nil),
        Binding(name: "lora", adapters: [("lora", 1)], merged: false, rows: nil),
        Binding(name: "rslora", adapters: [("rslora", 1)], merged: false, rows: nil),
        Binding(name: "ia3", adapters: [("ia3", 1)], merged: false, rows: nil),
        Binding(name: "lora+rslora/2", adapters: [("lora", 1), ("rslora", 0.5)], merged: false, rows: nil),
        Binding(name: "lora merged", adapters: [("lora", 1)], merged: true, rows: nil),
        Binding(name: "rows lora,base", adapters: [], merged: false, rows: ["lora", nil]),
        Binding(name: "rows ia3,rslora", adapters: [], merged: false, rows: ["ia3", "rslora"]),
    ]

    /// Binds `b` on `session` (adapters looked up in `adapters`) and runs it.
    static func run(_ session: CoreSession, _ b: Binding, _ adapters: [String: CoreAdapter],
                    _ inputs: [String: HostTensor]) throws -> [String: HostTensor] {
        if let rows = b.rows {
            try session.setAdapters([])
            return try session.run(inputs, rowAdapters: rows.map { $0.map { adapters[$0]! } })
        }
        try session.setAdapters(b.adapters.map { (adapters[$0.0]!, $0.1) }, merged: b.merged)
        return try session.run(inputs)
    }

    /// Bit-for-bit equality of every output (same dtype, shape and bytes).
    static func mismatch(_ got: [String: HostTensor], _ want: [String: HostTensor]) -> String? {
        guard Set(got.keys) == Set(want.keys) else { return "outputs \(got.keys.sorted()) vs \(want.keys.sorted())" }
        for (name, w) in want {
            let g = got[name]!
            guard g.dtype == w.dtype, g.shape == w.shape else { return "\(name): \(g.dtype)\(g.shape) vs \(w.dtype)\(w.shape)" }
            if memcmp(g.raw, w.raw, w.byteCount) != 0 { return "\(name): bytes differ (max|Δ| \(maxAbsDiff(g, w)))" }
        }
        return nil
    }

    /// Results shared by the threads, behind an NSLock (a pthread mutex, which ThreadSanitizer
    /// understands; Synchronization.Mutex's lock runs in the uninstrumented toolchain library,
    /// so TSan reports the data it protects as racing).
    final class Shared<Value>: @unchecked Sendable {
        private let lock = NSLock()
        private var value: Value
        init(_ value: Value) { self.value = value }
        func withLock<R>(_ body: (inout Value) -> R) -> R {
            lock.lock()
            defer { lock.unlock() }
            return body(&value)
        }
    }

    /// Starts `count` threads running `body(index)` and waits for all of them.
    static func onThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
        let group = DispatchGroup()
        for i in 0..<count {
            group.enter()
            let t = Thread {
                body(i)
                group.leave()
            }
            t.stackSize = 8 << 20
            t.start()
        }
        group.wait()
    }

    @Test func sessionsShareModelWhileAdaptersLoadAndSwap() throws {
        let model = try CoreModel(path: Self.modelPath)
        var inputs: [String: HostTensor] = [:]
        for d in model.graph.inputs { inputs[d.name] = try Npy.read(path: "\(Self.inputDir)/\(d.name).npy") }
        var shared: [String: CoreAdapter] = [:]
        for (name, path) in Self.adapterPaths { shared[name] = try PluginRegistry.loadAdapter(model: model, path: path) }

        // References: each binding on a fresh session with nothing else running, per thread count.
        let threadCounts = [1, 2]
        var refs: [Int: [String: [String: HostTensor]]] = [:]
        for n in threadCounts {
            for b in Self.bindings {
                refs[n, default: [:]][b.name] = try Self.run(try CoreSession(model: model, threads: n), b, shared, inputs)
            }
        }
        // Adapters do something (else the comparison would prove little).
        for b in Self.bindings where b.name != "base" {
            #expect(Self.mismatch(refs[1]![b.name]!, refs[1]!["base"]!) != nil, "binding \(b.name) gives the base outputs")
        }

        let workers = 4
        let deadline = Date().addingTimeInterval(Self.timeLimit)
        let failures = Shared<[String]>([])
        let runs = Shared(0), loads = Shared(0)
        let frozenRefs = refs, frozenShared = shared, frozenInputs = inputs
        Self.onThreads(workers + 1) { t in
            do {
                if t < workers {
                    // Worker: its own session; threads 1 or 2 alternately; bindings in a
                    // per-thread rotation over the adapters loaded up front.
                    let threads = threadCounts[t % threadCounts.count]
                    let session = try CoreSession(model: model, threads: threads)
                    for i in 0..<Self.workerIterations where Date() < deadline {
                        let b = Self.bindings[(i * 3 + t) % Self.bindings.count]
                        let out = try Self.run(session, b, frozenShared, frozenInputs)
                        if let m = Self.mismatch(out, frozenRefs[threads]![b.name]!) {
                            failures.withLock { $0.append("worker \(t) (threads \(threads)) iteration \(i) \(b.name): \(m)") }
                        }
                        runs.withLock { $0 += 1 }
                    }
                } else {
                    // Loader: loads fresh adapters from disk, binds and swaps them on its own
                    // session, checks the outputs, then drops them (the adapters die here).
                    for i in 0..<Self.loaderIterations where Date() < deadline {
                        var fresh: [String: CoreAdapter] = [:]
                        for (name, path) in Self.adapterPaths.sorted(by: { $0.key < $1.key }) {
                            fresh[name] = try PluginRegistry.loadAdapter(model: model, path: path)
                            loads.withLock { $0 += 1 }
                        }
                        let session = try CoreSession(model: model)
                        for k in 0..<3 {
                            let b = Self.bindings[(i + k * 5) % Self.bindings.count]
                            let out = try Self.run(session, b, fresh, frozenInputs)
                            if let m = Self.mismatch(out, frozenRefs[1]![b.name]!) {
                                failures.withLock { $0.append("loader iteration \(i) \(b.name): \(m)") }
                            }
                        }
                        try session.setAdapters([])
                        fresh.removeAll()
                    }
                }
            } catch {
                failures.withLock { $0.append("thread \(t): \(error)") }
            }
        }
        let f = failures.withLock { $0 }
        #expect(f.isEmpty, "\(f.count) failures: \(f.prefix(10).joined(separator: "\n"))")
        let (r, l) = (runs.withLock { $0 }, loads.withLock { $0 })
        #expect(r >= workers, "only \(r) concurrent runs completed")
        #expect(l >= 1, "no adapter was loaded concurrently")
        print("ConcurrencyTests: \(r) concurrent runs on \(workers) sessions, \(l) adapter loads, \(f.count) mismatches")
    }

    /// Many threads load the same adapters through the plugins at once (the registry, the
    /// plugins' `claims`/`load` and the host's safetensors reader are entered concurrently);
    /// every load gives the same weights.
    @Test func concurrentAdapterLoadsAgree() throws {
        let model = try CoreModel(path: Self.modelPath)
        let reference = try PluginRegistry.loadAdapter(model: model, path: Self.adapterPaths["lora"]!)
        let failures = Shared<[String]>([])
        Self.onThreads(4) { t in
            for _ in 0..<3 {
                do {
                    let a = try PluginRegistry.loadAdapter(model: model, path: Self.adapterPaths[t % 2 == 0 ? "lora" : "ia3"]!)
                    if t % 2 == 0 {
                        guard a.sites == reference.sites else {
                            failures.withLock { $0.append("thread \(t): sites \(a.sites) vs \(reference.sites)") }
                            continue
                        }
                        for (site, terms) in a.lowRank {
                            for (x, y) in zip(terms, reference.lowRank[site]!)
                            where memcmp(x.a.raw, y.a.raw, x.a.byteCount) != 0 || memcmp(x.b.raw, y.b.raw, x.b.byteCount) != 0 {
                                failures.withLock { $0.append("thread \(t): site \(site) weights differ") }
                            }
                        }
                    }
                } catch {
                    failures.withLock { $0.append("thread \(t): \(error)") }
                }
            }
        }
        let f = failures.withLock { $0 }
        #expect(f.isEmpty, "\(f.joined(separator: "\n"))")
    }
}

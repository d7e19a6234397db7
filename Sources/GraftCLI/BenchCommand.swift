#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Dispatch
import GraftCore

/// A quick Graft-only latency figure: load time, then min / median / p90 of N runs on inputs
/// made from the declared shapes. Side-by-side numbers (ONNX Runtime, PyTorch) come from
/// benchmarks/bench.py.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time a model on synthetic inputs: load time, then min/median/p90 latency.",
        discussion: """
            Inputs are made from the declared shapes. A symbolic dim takes its value from \
            --shape (which binds the symbols of that input for every other input too) or --dim, \
            else 1. Integer inputs: names with 'mask' are ones, 'token_type'/'segment' zeros, \
            'position' 0..n-1 along the last axis, anything else (ids) random in [1, --vocab). \
            Float inputs are uniform in [-1, 1); bool inputs are true. Everything is seeded.
            """)

    @Argument(help: "Path to the .onnx file.")
    var model: String

    @Option(name: .customLong("shape"), help: "An input's shape as NAME=1x128 (repeatable).")
    var shapes: [String] = []

    @Option(name: .customLong("dim"), help: "A symbolic dim's value as SYMBOL=N (repeatable), e.g. batch=8.")
    var dims: [String] = []

    @Option(help: "Upper bound (exclusive) for random token ids.")
    var vocab: Int = 1000

    @Option(help: "Timed runs.")
    var iterations: Int = 50

    @Option(help: "Untimed runs first (planning, caches).")
    var warmup: Int = 5

    @Option(help: "Threads the session may use.")
    var threads: Int = 1

    @Option(name: .customLong("limit"), help: "A model limit as NAME=VALUE (repeatable), e.g. weight-bytes=100000000 or GRAFT_LIMIT_TENSOR_BYTES=1000000 (docs/ROBUSTNESS.md).")
    var limits: [String] = []

    @OptionGroup var adapterOptions: AdapterOptions

    @Option(help: "Seed for the synthetic inputs.")
    var seed: UInt64 = 1234

    @Flag(help: "Also time every step of the timed runs and print the time per operator type (adds two clock reads per step).")
    var profile = false

    func validate() throws {
        guard iterations >= 1 else { throw ValidationError("--iterations must be at least 1") }
        guard warmup >= 0 else { throw ValidationError("--warmup must not be negative") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        guard vocab >= 2 else { throw ValidationError("--vocab must be at least 2") }
    }

    func run() throws {
        try reportingErrors {
            try adapterOptions.loadPlugins()
            let t0 = now()
            let core = try CoreModel(path: model, limits: try parseLimits(limits))
            let loadMs = ms(since: t0)

            let timed = try adapterOptions.loadAdapters(for: core)
            let loaded = timed.map(\.adapter), adapterMs = timed.map(\.ms)
            let aux = try adapterOptions.auxTensors()

            let inputs = try makeInputs(core)
            let ts = now()
            let session = try CoreSession(model: core, threads: threads)
            try adapterOptions.bind(loaded, to: session)
            _ = try session.run(inputs, aux: aux)
            let firstRunMs = ms(since: ts)

            let described = core.graph.inputs.map { "\($0.name)=\(inputs[$0.name]!.shape.map(String.init).joined(separator: "x"))" }
            print("model     \(model)")
            print("inputs    \(described.joined(separator: " "))")
            print("threads   \(threads)")
            // Kernel steps per run (after folding, fusion and plan-time evaluation; GRAFT_FUSE=0 shows the unfused count).
            print("steps     \(try session.plan(for: session.bind(inputs)).stepCount)")
            if !loaded.isEmpty {
                let list = zip(loaded, adapterMs).map { "\($0.0.name) (\($0.0.plugin), \($0.0.sites.count) sites, load \(fmt($0.1)) ms)" }
                print("adapters  \(list.joined(separator: ", ")) \(adapterOptions.merged ? "merged" : "unmerged")")
            }

            for _ in 1..<max(warmup, 1) { _ = try session.run(inputs, aux: aux) }

            let stepProfile = profile ? StepProfile() : nil
            session.profile = stepProfile
            let tty = isatty(1) != 0
            var samples: [Double] = []
            samples.reserveCapacity(iterations)
            let started = now()
            for i in 0..<iterations {
                let t = now()
                _ = try session.run(inputs, aux: aux)
                samples.append(ms(since: t))
                if tty {
                    let line = "\r  run \(i + 1)/\(iterations)  last \(fmt(samples.last!)) ms  median so far \(fmt(median(samples))) ms   "
                    _ = line.withCString { write(1, $0, strlen($0)) }
                }
            }
            if tty { _ = "\r\u{1B}[K".withCString { write(1, $0, strlen($0)) } }
            print("ran       \(iterations) iterations after \(max(warmup, 1)) warm-up in \(fmt(ms(since: started) / 1000)) s")

            let sorted = samples.sorted()
            print("latency   min \(fmt(sorted[0])) ms  median \(fmt(median(sorted))) ms  p90 \(fmt(percentile(sorted, 0.9))) ms  max \(fmt(sorted.last!)) ms")
            print("load      model \(fmt(loadMs)) ms  session + first run \(fmt(firstRunMs)) ms  (load to first result \(fmt(loadMs + firstRunMs)) ms)")
            if let stepProfile { printProfile(stepProfile) }
            return ()
        }
    }

    /// Time per operator type over the timed runs, longest first: steps of that type per run,
    /// mean ms per run, share of the summed step time.
    private func printProfile(_ p: StepProfile) {
        let entries = p.entries
        let total = entries.reduce(0) { $0 + $1.seconds }
        guard p.runs > 0, total > 0 else { return }
        print("profile   per operator type, mean over \(p.runs) runs (step wall time, adapters included)")
        let width = max(8, entries.map(\.opType.count).max() ?? 8)
        print("  " + "operator".padding(width) + "steps".padded(left: 7) + "ms/run".padded(left: 9) + "share".padded(left: 8))
        for e in entries {
            let ms = e.seconds * 1000 / Double(p.runs)
            let tenths = Int((e.seconds / total * 1000).rounded())
            let share = "\(tenths / 10).\(tenths % 10)%"
            print("  " + e.opType.padding(width) + String(e.steps).padded(left: 7) + fmt(ms).padded(left: 9) + share.padded(left: 8))
        }
        print("  " + "total".padding(width) + "".padded(left: 7) + fmt(total * 1000 / Double(p.runs)).padded(left: 9))
    }

    /// Synthetic inputs from the declared shapes (see `discussion`).
    private func makeInputs(_ core: CoreModel) throws -> [String: HostTensor] {
        var symbols: [String: Int] = [:]
        for spec in dims {
            let (name, value) = try splitNameValue(spec, option: "--dim")
            guard let n = Int(value), n >= 0 else { throw GraftError(.invalidArgument, "--dim \(spec): the value is not a size") }
            symbols[name] = n
        }
        var given: [String: [Int]] = [:]
        for spec in shapes {
            let (name, value) = try splitNameValue(spec, option: "--shape")
            guard let decl = core.graph.inputs.first(where: { $0.name == name }) else {
                let names = core.graph.inputs.map(\.name).joined(separator: ", ")
                throw GraftError(.invalidArgument, "--shape names '\(name)', which is not an input (inputs: \(names))")
            }
            let parts = value.split(separator: "x").map { Int($0) }
            guard !parts.isEmpty, parts.allSatisfy({ $0 != nil && $0! >= 0 }) else {
                throw GraftError(.invalidArgument, "--shape \(spec): expected sizes like 1x128")
            }
            let shape = parts.map { $0! }
            if let declared = decl.dims {
                guard declared.count == shape.count else {
                    throw GraftError(.invalidArgument, "--shape \(spec): '\(name)' has rank \(declared.count) (\(declared))")
                }
                for (d, n) in zip(declared, shape) {
                    if case .symbol(let s) = d, symbols[s] == nil { symbols[s] = n }
                }
            }
            given[name] = shape
        }
        var rng = SplitMix(seed: seed)
        var out: [String: HostTensor] = [:]
        for decl in core.graph.inputs {
            let shape: [Int]
            if let g = given[decl.name] {
                shape = g
            } else if let declared = decl.dims {
                shape = declared.map { d -> Int in
                    switch d {
                    case .fixed(let n): return n
                    case .symbol(let s): return symbols[s] ?? 1
                    case .unknown: return 1
                    }
                }
            } else {
                throw GraftError(.invalidArgument, "input '\(decl.name)' declares no shape; give it with --shape \(decl.name)=...")
            }
            out[decl.name] = try synthesize(decl, shape: shape, &rng)
        }
        return out
    }

    private func synthesize(_ decl: ValueDecl, shape: [Int], _ rng: inout SplitMix) throws -> HostTensor {
        let t = HostTensor(zeros: decl.dtype, shape: shape)
        let n = t.count
        let lower = decl.name.lowercased()
        let last = shape.last ?? 1
        func intValue(_ i: Int) -> Int64 {
            if lower.contains("mask") { return 1 }
            if lower.contains("token_type") || lower.contains("segment") { return 0 }
            if lower.contains("position") { return Int64(last == 0 ? 0 : i % last) }
            return Int64(1 + Int(rng.next() % UInt64(vocab - 1)))
        }
        switch decl.dtype {
        case .float32:
            let p = t.pointer(Float.self)
            for i in 0..<n { p[i] = rng.uniform() }
        case .int64:
            let p = t.pointer(Int64.self)
            for i in 0..<n { p[i] = intValue(i) }
        case .int32:
            let p = t.pointer(Int32.self)
            for i in 0..<n { p[i] = Int32(truncatingIfNeeded: intValue(i)) }
        case .bool, .uint8:
            let p = t.pointer(UInt8.self)
            for i in 0..<n { p[i] = decl.dtype == .bool ? 1 : UInt8(truncatingIfNeeded: intValue(i)) }
        case .int8:
            let p = t.pointer(Int8.self)
            for i in 0..<n { p[i] = Int8(truncatingIfNeeded: intValue(i)) }
        default:
            throw GraftError(.unsupported, "input '\(decl.name)' is \(decl.dtype); bench makes float32, integer and bool inputs only")
        }
        return t
    }
}

/// Deterministic generator for synthetic inputs.
private typealias SplitMix = SplitMix64

extension SplitMix64 {
    /// Uniform in [-1, 1).
    fileprivate mutating func uniform() -> Float { unit() * 2 - 1 }
}


private func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

/// Nearest-rank percentile of sorted samples.
private func percentile(_ sorted: [Double], _ q: Double) -> Double {
    let rank = Int((q * Double(sorted.count)).rounded(.up))
    return sorted[min(max(rank, 1), sorted.count) - 1]
}

/// Three significant-ish decimals without Foundation: 12.345, 0.123.
private func fmt(_ v: Double) -> String {
    let thousandths = Int((v * 1000).rounded())
    let frac = thousandths % 1000
    let pad = frac < 10 ? "00" : frac < 100 ? "0" : ""
    return "\(thousandths / 1000).\(pad)\(frac)"
}

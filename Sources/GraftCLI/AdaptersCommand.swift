import ArgumentParser
import GraftCore

/// Loads adapters onto a model and runs the same inputs under the base model, each adapter,
/// and a mixed batch, comparing with reference outputs and timing the swaps.
struct Adapters: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a model under several adapters (and a mixed batch), check them against references, time the swaps.",
        discussion: """
            References are read from REFERENCE-DIR/CASE/OUTPUT.npy, where CASE is "base", an \
            adapter's name, or "mixed"; a case without reference files is run and timed only.
            """)

    @Argument(help: "Path to the .onnx file.")
    var model: String

    @Option(name: .customLong("adapter"), help: "An adapter as NAME=PATH (repeatable); PATH is a PEFT directory or anything a plugin claims.")
    var adapters: [String] = []

    @Option(help: "Folder with NAME.npy for every model input.")
    var inputDir: String

    @Option(help: "Folder with one sub-folder of reference outputs per case.")
    var referenceDir: String?

    @Option(help: "A mixed batch: one adapter name per row, '-' for the base model (e.g. a,-,b).")
    var mixed: String?

    @Option(help: "Inputs for the mixed batch (default: --input-dir).")
    var mixedInputDir: String?

    @Option(help: "Largest allowed absolute difference from a reference.")
    var tolerance: Float = 1e-4

    @Option(help: "Threads the session may use.")
    var threads: Int = 1

    @Option(help: "Plugin shared objects to load first (repeatable).")
    var plugin: [String] = []

    @Option(help: "A JSON file naming adapter sites: node (or output) name → module name.")
    var siteMap: String?

    func run() throws {
        let failed: Bool = try reportingErrors {
            for p in plugin { try PluginRegistry.load(path: p) }
            let core = try CoreModel(path: model, siteMap: try siteMap.map(SiteDiscovery.readSiteMap) ?? [:])
            var loaded: [(name: String, adapter: CoreAdapter)] = []
            for spec in adapters {
                let (name, path) = try splitNameValue(spec, option: "--adapter", form: "NAME=PATH")
                let start = now()
                let a = try PluginRegistry.loadAdapter(model: core, path: path)
                let loadMs = ms(since: start)
                loaded.append((name, a))
                print("loaded \(name) with plugin \(a.plugin): \(a.sites.count) sites, \(formatMs(loadMs)) ms")
            }
            let session = try CoreSession(model: core, threads: threads)
            let inputs = try readInputs(core, inputDir)
            var failed = false

            func report(_ name: String, _ outputs: [String: HostTensor], runMs: Double) throws {
                var line = "\(name.padding(14)) run \(formatMs(runMs)) ms"
                for decl in core.graph.outputs {
                    let path = "\(referenceDir ?? "")/\(name)/\(fileName(decl.name)).npy"
                    guard referenceDir != nil, fileExists(path) else { continue }
                    let diff = try maxAbsDifference(outputs[decl.name]!, try Npy.read(path: path), name: decl.name)
                    let ok = diff <= tolerance
                    failed = failed || !ok
                    line += "  \(decl.name): max|Δ| \(diff) \(ok ? "ok" : "FAIL")"
                }
                print(line)
            }
            func timed(_ body: () throws -> [String: HostTensor]) throws -> ([String: HostTensor], Double) {
                _ = try body()   // plan and warm up
                let start = now()
                let out = try body()
                return (out, ms(since: start))
            }

            try session.setAdapters([])
            let (base, baseMs) = try timed { try session.run(inputs) }
            try report("base", base, runMs: baseMs)
            for (name, a) in loaded {
                try session.setAdapters([(a, 1)])
                let (out, ms) = try timed { try session.run(inputs) }
                try report(name, out, runMs: ms)
            }
            if let mixed {
                let rows: [CoreAdapter?] = try mixed.split(separator: ",").map { n in
                    if n == "-" { return nil }
                    guard let a = loaded.first(where: { $0.name == n }) else {
                        throw GraftError(.invalidArgument, "--mixed names '\(n)', which is not a loaded adapter")
                    }
                    return a.adapter
                }
                let mixedInputs = try readInputs(core, mixedInputDir ?? inputDir)
                let (out, ms) = try timed { try session.run(mixedInputs, rowAdapters: rows) }
                try report("mixed", out, runMs: ms)
            }
            if loaded.count >= 2 {
                // Swap between two bound adapters: pointer work, no weight copies or planning.
                let n = 1000
                let start = now()
                for i in 0..<n { try session.setAdapters([(loaded[i % 2].adapter, 1)]) }
                let us = ms(since: start) * 1e3 / Double(n)
                print("swap (set adapters): \(formatMs(us)) µs on average over \(n) swaps")
            }
            return failed
        }
        if failed { throw ExitCode(1) }
    }

    private func readInputs(_ core: CoreModel, _ dir: String) throws -> [String: HostTensor] {
        var named: [String: HostTensor] = [:]
        for decl in core.graph.inputs { named[decl.name] = try Npy.read(path: "\(dir)/\(fileName(decl.name)).npy") }
        return named
    }
}

private func formatMs(_ v: Double) -> String {
    let hundredths = Int((v * 100).rounded())
    let frac = hundredths % 100
    return "\(hundredths / 100).\(frac < 10 ? "0" : "")\(frac)"
}

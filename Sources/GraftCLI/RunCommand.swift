import ArgumentParser
import GraftCore

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a model on .npy inputs; write or check .npy outputs.")

    @Argument(help: "Path to the .onnx file.")
    var model: String

    @Option(name: .customLong("input"), help: "An input as NAME=FILE.npy (repeatable).")
    var inputs: [String] = []

    @Option(help: "A folder holding NAME.npy for every input not given with --input.")
    var inputDir: String?

    @Option(help: "Write each output to DIR/NAME.npy (':' and '/' in names become '_').")
    var outputDir: String?

    @Option(help: "Compare each output with DIR/NAME.npy (named as for --output-dir) and fail when they differ by more than --tolerance.")
    var expect: String?

    @Option(help: "Largest allowed absolute difference for --expect.")
    var tolerance: Float = 1e-4

    @Option(help: "Threads the session may use.")
    var threads: Int = 1

    @Option(name: .customLong("limit"), help: "A model limit as NAME=VALUE (repeatable), e.g. weight-bytes=100000000 or GRAFT_LIMIT_TENSOR_BYTES=1000000 (docs/ROBUSTNESS.md).")
    var limits: [String] = []

    @OptionGroup var adapterOptions: AdapterOptions

    func run() throws {
        let failed: Bool = try reportingErrors {
            try adapterOptions.loadPlugins()
            let core = try CoreModel(path: model, limits: try parseLimits(limits))
            let adapters = try adapterOptions.loadAdapters(for: core).map(\.adapter)
            var named: [String: HostTensor] = [:]
            for spec in inputs {
                let (name, file) = try splitNameValue(spec, option: "--input", form: "NAME=FILE.npy")
                named[name] = try Npy.read(path: file)
            }
            if let dir = inputDir {
                for decl in core.graph.inputs where named[decl.name] == nil {
                    named[decl.name] = try Npy.read(path: "\(dir)/\(fileName(decl.name)).npy")
                }
            }
            let session = try CoreSession(model: core, threads: threads)
            try adapterOptions.bind(adapters, to: session)
            let outputs = try session.run(named, aux: try adapterOptions.auxTensors())
            var failed = false
            for decl in core.graph.outputs {
                let t = outputs[decl.name]!
                var line = "\(decl.name)  \(t.dtype)\(t.shape)  \(preview(t))"
                if let dir = expect {
                    let ref = try Npy.read(path: "\(dir)/\(fileName(decl.name)).npy")
                    let diff = try maxAbsDifference(t, ref, name: decl.name)
                    let ok = diff <= tolerance
                    failed = failed || !ok
                    line += "  max|Δ| vs \(dir): \(diff) \(ok ? "ok" : "FAIL (tolerance \(tolerance))")"
                }
                print(line)
                if let dir = outputDir {
                    try Npy.write(t, path: "\(dir)/\(fileName(decl.name)).npy")
                }
            }
            return failed
        }
        if failed { throw ExitCode(1) }
    }
}

/// Largest absolute elementwise difference between two tensors of the same shape.
func maxAbsDifference(_ a: HostTensor, _ b: HostTensor, name: String) throws -> Float {
    guard a.shape == b.shape else {
        throw GraftError(.shapeMismatch, "output '\(name)' has shape \(a.shape) but the reference has \(b.shape)")
    }
    if a.dtype == .float32 && b.dtype == .float32 {
        let p = a.pointer(Float.self), q = b.pointer(Float.self)
        var m: Float = 0
        for i in 0..<a.count {
            let d = abs(p[i] - q[i])
            if d > m || d.isNaN { m = d }
        }
        return m
    }
    let x = a.integers(), y = b.integers()
    return Float(zip(x, y).map { abs($0 - $1) }.max() ?? 0)
}

/// File name for a tensor name: exporters generate names such as `onnx::Shape_422` or
/// `/encoder/layer.0/Add_output_0`; ':' and '/' become '_'.
func fileName(_ tensorName: String) -> String {
    String(tensorName.map { $0 == ":" || $0 == "/" ? "_" : $0 })
}

import ArgumentParser
import GraftCore

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a model's inputs, outputs, opsets, operator histogram and weight size.")

    @Argument(help: "Path to the .onnx file.")
    var model: String

    @Option(help: "A JSON file naming adapter sites: node (or output) name → module name.")
    var siteMap: String?

    func run() throws {
        try reportingErrors {
            let imported = try ONNXImporter.load(path: model)
            let core = try CoreModel(graph: imported, source: model, siteMap: try siteMap.map(SiteDiscovery.readSiteMap) ?? [:])
            print("model:     \(model)")
            print("producer:  \(imported.producer.isEmpty ? "(unknown)" : imported.producer)")
            let opsets = imported.opsets.sorted { $0.key < $1.key }.map { "\($0.key.isEmpty ? "ai.onnx" : $0.key) \($0.value)" }
            print("format:    IR \(imported.irVersion), opsets \(opsets.joined(separator: ", "))")
            print("inputs:")
            for v in imported.inputs { print("  \(describe(v))") }
            print("outputs:")
            for v in imported.outputs {
                let inferred = core.symbolicShapes?[v.name].map { "  (inferred: [" + $0.map(\.description).joined(separator: ", ") + "])" } ?? ""
                print("  \(describe(v))\(inferred)")
            }
            let bytes = imported.initializers.values.reduce(0) { $0 + $1.byteCount }
            print("weights:   \(imported.initializers.count) initializers, \(formatBytes(bytes))")
            print("nodes:     \(imported.nodes.count) in the file, \(core.graph.nodes.count) after folding, dead-node removal and fusion")
            var histogram: [String: Int] = [:]
            for n in imported.nodes { histogram[KernelRegistry.key(domain: n.domain, opType: n.opType), default: 0] += 1 }
            print("sites:     \(core.sites.count) linear layers adapters can attach to")
            for site in core.sites {
                print("  \(site.name)  \(site.inFeatures) → \(site.outFeatures)  (\(site.nodeName.isEmpty ? site.output : site.nodeName))")
            }
            print("operators:")
            for (op, n) in histogram.sorted(by: { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }) {
                print("  \(String(repeating: " ", count: max(0, 6 - String(n).count)))\(n)  \(op)")
            }
        }
    }

    private func describe(_ v: ValueDecl) -> String {
        let dims = v.dims.map { "[" + $0.map(\.description).joined(separator: ", ") + "]" } ?? "(shape not recorded)"
        return "\(v.name)  \(v.dtype)  \(dims)"
    }
}

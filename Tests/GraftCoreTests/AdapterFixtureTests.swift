import Foundation
import Testing
@testable import GraftCore

/// Adapters made by PEFT, loaded through the plugins onto both exporters' ONNX files, against
/// PyTorch + PEFT references (max |Δ| ≤ 1e-4), merged against unmerged (≤ 1e-5), and a mixed
/// batch against the per-row references. The plugins are the built `libGraftPlugin*.so` beside
/// the test binary (`swift build` builds them).
@Suite(.serialized) struct AdapterFixtureTests {
    struct Case: Sendable {
        let model: String
        let name: String
        let adapters: [(String, Float)]
        let rows: [String?]?
        let inputs: String
        let outputs: [String: String]
        let perRow: [String: String]?
        let appliesTo: [String]
    }

    static let tolerance: Float = 1e-4
    static let mergeTolerance: Float = 1e-5

    static let manifest: (adapters: [String: String], cases: [Case]) = {
        guard let data = FileManager.default.contents(atPath: fixturesRoot + "/adapters/manifest.json"),
              let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let adapters = json["adapters"] as? [[String: Any]], let cases = json["cases"] as? [[String: Any]]
        else { return ([:], []) }
        var paths: [String: String] = [:]
        for a in adapters { paths["\(a["model"]!)/\(a["name"]!)"] = "\(fixturesRoot)/\(a["path"]!)" }
        let parsed: [Case] = cases.compactMap { c in
            guard let model = c["model"] as? String, let name = c["case"] as? String, let inputs = c["inputs"] as? String,
                  let outputs = c["outputs"] as? [String: String], let applies = c["applies_to"] as? [String] else { return nil }
            var list: [(String, Float)] = []
            var rows: [String?]?
            if let l = c["adapters"] as? [[String: Any]] {
                list = l.map { ($0["name"] as! String, Float($0["scale"] as! Double)) }
            } else if let d = c["adapters"] as? [String: Any], let r = d["per_row"] as? [String] {
                rows = r.map { $0 == "__base__" ? nil : $0 }
            }
            var perRow: [String: String]?
            if let p = c["per_row_outputs"] as? [String: String] { perRow = p }
            return Case(model: model, name: name, adapters: list, rows: rows, inputs: inputs, outputs: outputs, perRow: perRow, appliesTo: applies)
        }
        return (paths, parsed)
    }()

    static let fixtures = ["bert_torchscript", "bert_dynamo", "llama_torchscript", "llama_dynamo"]

    @Test func pluginsAreBuilt() {
        let names = PluginRegistry.plugins.map(\.name)
        #expect(names.contains("lora") && names.contains("ia3"),
                "plugins found beside the test binary: \(names); problems: \(PluginRegistry.problems) (run `swift build` first)")
    }

    @Test(arguments: fixtures)
    func casesMatchPEFT(_ fixture: String) throws {
        let model = try CoreModel(path: "\(fixturesRoot)/\(fixture)/model.onnx")
        let cases = Self.manifest.cases.filter { $0.appliesTo.contains(fixture) }
        #expect(cases.count >= 3, "\(fixture): \(cases.count) adapter cases in the manifest")
        var loaded: [String: CoreAdapter] = [:]
        func adapter(_ model_: String, _ name: String) throws -> CoreAdapter {
            if let a = loaded[name] { return a }
            let a = try PluginRegistry.loadAdapter(model: model, path: try #require(Self.manifest.adapters["\(model_)/\(name)"]))
            loaded[name] = a
            return a
        }
        let session = try CoreSession(model: model)
        for c in cases {
            var inputs: [String: HostTensor] = [:]
            for d in model.graph.inputs { inputs[d.name] = try Npy.read(path: "\(fixturesRoot)/\(c.inputs)/\(d.name).npy") }
            if let rows = c.rows {
                try session.setAdapters([])
                let out = try session.run(inputs, rowAdapters: try rows.map { try $0.map { try adapter(c.model, $0) } })
                for (name, ref) in c.outputs {
                    let d = maxAbsDiff(out[name]!, try Npy.read(path: "\(fixturesRoot)/\(ref)"))
                    #expect(d <= Self.tolerance, "\(fixture) \(c.name) \(name): max|Δ| \(d)")
                    if let p = c.perRow?[name] {
                        let dp = maxAbsDiff(out[name]!, try Npy.read(path: "\(fixturesRoot)/\(p)"))
                        #expect(dp <= Self.tolerance, "\(fixture) \(c.name) \(name) vs per-row references: max|Δ| \(dp)")
                    }
                }
                continue
            }
            let bindings = try c.adapters.map { (try adapter(c.model, $0.0), $0.1) }
            try session.setAdapters(bindings)
            let unmerged = try session.run(inputs)
            for (name, ref) in c.outputs {
                let d = maxAbsDiff(unmerged[name]!, try Npy.read(path: "\(fixturesRoot)/\(ref)"))
                #expect(d <= Self.tolerance, "\(fixture) \(c.name) \(name): max|Δ| \(d)")
            }
            guard !bindings.isEmpty else { continue }
            if bindings.contains(where: { !$0.0.isMergeable }) {
                // Routed (MoE-LoRA) terms cannot be folded into W: the host must refuse, not approximate.
                let e = expectError(.unsupported, containing: ["cannot be merged"]) { try session.setAdapters(bindings, merged: true) }
                #expect(e?.code == .unsupported, "\(fixture) \(c.name): merged binding \(e?.message ?? "accepted")")
                continue
            }
            try session.setAdapters(bindings, merged: true)
            let merged = try session.run(inputs)
            for name in c.outputs.keys {
                let d = maxAbsDiff(merged[name]!, unmerged[name]!)
                #expect(d <= Self.mergeTolerance, "\(fixture) \(c.name) \(name): merged vs unmerged max|Δ| \(d)")
            }
        }
    }

    /// Binding and unbinding adapters leaves the base model bit-for-bit as it was.
    @Test func noAdapterEqualsBaseExactly() throws {
        let model = try CoreModel(path: "\(fixturesRoot)/bert_dynamo/model.onnx")
        var inputs: [String: HostTensor] = [:]
        for d in model.graph.inputs { inputs[d.name] = try Npy.read(path: "\(fixturesRoot)/bert_dynamo/basic/inputs/\(d.name).npy") }
        let fresh = try CoreSession(model: model).run(inputs)
        let session = try CoreSession(model: model)
        let a = try PluginRegistry.loadAdapter(model: model, path: try #require(Self.manifest.adapters["bert/lora_qv_r8"]))
        try session.setAdapters([(a, 1)])
        let adapted = try session.run(inputs)
        try session.setAdapters([])
        let back = try session.run(inputs)
        try session.setAdapters([(a, 1)], merged: true)
        _ = try session.run(inputs)
        try session.setAdapters([])
        let backFromMerged = try session.run(inputs)
        let allRowsBase = try session.run(inputs, rowAdapters: [nil, nil])
        for name in fresh.keys {
            #expect(maxAbsDiff(back[name]!, fresh[name]!) == 0)
            #expect(maxAbsDiff(backFromMerged[name]!, fresh[name]!) == 0)
            #expect(maxAbsDiff(allRowsBase[name]!, fresh[name]!) == 0)
            #expect(maxAbsDiff(adapted[name]!, fresh[name]!) > 1e-3, "the adapter changes \(name)")
        }
    }

    @Test func adapterForAnotherModelIsRefused() throws {
        let m1 = try CoreModel(path: "\(fixturesRoot)/bert_dynamo/model.onnx")
        let m2 = try CoreModel(path: "\(fixturesRoot)/bert_torchscript/model.onnx")
        let a = try PluginRegistry.loadAdapter(model: m1, path: try #require(Self.manifest.adapters["bert/lora_qv_r8"]))
        let e = expectError(.invalidArgument, containing: ["another model"]) { try CoreSession(model: m2).setAdapters([(a, 1)]) }
        #expect(e?.code == .invalidArgument, "\(e?.message ?? "accepted")")
    }

    @Test func mixedBatchRowCountMustMatch() throws {
        let model = try CoreModel(path: "\(fixturesRoot)/bert_dynamo/model.onnx")
        var inputs: [String: HostTensor] = [:]
        for d in model.graph.inputs { inputs[d.name] = try Npy.read(path: "\(fixturesRoot)/bert_dynamo/basic/inputs/\(d.name).npy") }
        let e = expectError(.invalidArgument, containing: ["3 rows", "batch has 2"]) { _ = try CoreSession(model: model).run(inputs, rowAdapters: [nil, nil, nil]) }
        #expect(e?.code == .invalidArgument, "\(e?.message ?? "accepted")")
    }

    @Test func noPluginClaimsAPlainFolder() throws {
        let model = try CoreModel(path: "\(fixturesRoot)/bert_dynamo/model.onnx")
        let dir = TempDir()
        defer { dir.cleanup() }
        let e = expectError(.unsupported, containing: ["no plugin claims"]) { _ = try PluginRegistry.loadAdapter(model: model, path: dir.path) }
        #expect(e?.code == .unsupported, "\(e?.message ?? "accepted")")
    }

    /// A site map renames sites; an adapter then finds them by the new names. Keys that are
    /// not linear layers are refused.
    @Test func siteMapOverridesNames() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let path = dir.write("sites.json", Array(#"{"node_MatMul_52": "custom.q"}"#.utf8))
        let model = try CoreModel(path: "\(fixturesRoot)/bert_dynamo/model.onnx", siteMap: try SiteDiscovery.readSiteMap(path: path))
        #expect(model.sites[0].name == "custom.q")
        #expect(try model.sites.find(module: "q").index == 0)
        let bad = dir.write("bad.json", Array(#"{"node_Softmax_1": "x"}"#.utf8))
        let e = expectError(.invalidArgument, containing: ["node_Softmax_1", "not a linear layer"]) {
            _ = try CoreModel(path: "\(fixturesRoot)/bert_dynamo/model.onnx", siteMap: try SiteDiscovery.readSiteMap(path: bad))
        }
        #expect(e?.code == .invalidArgument, "\(e?.message ?? "accepted")")
    }

    /// A PEFT key naming a layer the model lacks is refused with the closest site names.
    @Test func unknownTargetListsClosestSites() throws {
        let model = try CoreModel(path: "\(fixturesRoot)/bert_dynamo/model.onnx")
        let e = expectError(.invalidArgument, containing: ["encoder.layer.7.attention.self.query", "closest sites", "encoder.layer.0.attention.self.query"]) {
            _ = try model.sites.find(module: "encoder.layer.7.attention.self.query")
        }
        #expect(e?.code == .invalidArgument, "\(e?.message ?? "accepted")")
    }

    /// A LoRA with `graft_modalities: [1]` acts only on tokens of modality 1: with row 0's
    /// tokens modality 1 and row 1's modality 0, row 0 matches PEFT's LoRA output and row 1
    /// the base output (BERT rows do not interact).
    @Test func modalityGatedLoRA() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let src = try #require(Self.manifest.adapters["bert/lora_qv_r8"])
        let config = try String(contentsOfFile: src + "/adapter_config.json", encoding: .utf8)
        let gated = config.replacingOccurrences(of: "{", with: #"{"graft_modalities": [1], "#, options: [], range: config.range(of: "{"))
        _ = dir.write("adapter_config.json", Array(gated.utf8))
        _ = dir.write("adapter_model.safetensors", Array(try Data(contentsOf: URL(fileURLWithPath: src + "/adapter_model.safetensors"))))
        let model = try CoreModel(path: "\(fixturesRoot)/bert_dynamo/model.onnx")
        let adapter = try PluginRegistry.loadAdapter(model: model, path: dir.path)
        var inputs: [String: HostTensor] = [:]
        for d in model.graph.inputs { inputs[d.name] = try Npy.read(path: "\(fixturesRoot)/bert_dynamo/basic/inputs/\(d.name).npy") }
        let session = try CoreSession(model: model)
        try session.setAdapters([(adapter, 1)])
        let seq = inputs["input_ids"]!.shape[1]
        let out = try session.run(inputs, modalities: Array(repeating: 1, count: seq) + Array(repeating: 0, count: seq))["last_hidden_state"]!
        let lora = try Npy.read(path: "\(fixturesRoot)/adapters/bert/refs/lora_qv_r8/last_hidden_state.npy")
        let base = try Npy.read(path: "\(fixturesRoot)/adapters/bert/refs/base/last_hidden_state.npy")
        let half = out.count / 2
        let got = out.floats(), l = lora.floats(), b = base.floats()
        let d0 = (0..<half).map { abs(got[$0] - l[$0]) }.max()!
        let d1 = (half..<out.count).map { abs(got[$0] - b[$0]) }.max()!
        #expect(d0 <= Self.tolerance && d1 <= Self.tolerance, "row 0 vs LoRA \(d0), row 1 vs base \(d1)")
        let e = expectError(.invalidArgument, containing: ["modality id per token"]) { _ = try session.run(inputs) }
        #expect(e?.code == .invalidArgument)
    }
}

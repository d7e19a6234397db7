import Foundation
import Testing
@testable import GraftCore

/// VLoRA: per-image low-rank weights from an ONNX generator (Plugins/VLoRA, plugin ABI 1.2
/// add_generator), against the PyTorch references of Tests/Fixtures/make_vlora_fixtures.py
/// (generated deltas merged into the weights; max |Δ| ≤ 1e-4), on both exporters of the tiny Llama.
@Suite(.serialized) struct VLoRATests {
    static let tolerance: Float = 1e-4
    static let mergeTolerance: Float = 1e-5
    static let root = "\(fixturesRoot)/vlora"
    static let adapterPath = "\(root)/llama_qv_r4"
    static let fixtures = ["llama_torchscript", "llama_dynamo"]

    static func features(_ name: String) throws -> HostTensor { try Npy.read(path: "\(root)/refs/features/\(name).npy") }
    static func inputs(_ model: CoreModel, _ folder: String) throws -> [String: HostTensor] {
        var out: [String: HostTensor] = [:]
        for d in model.graph.inputs { out[d.name] = try Npy.read(path: "\(folder)/\(d.name).npy") }
        return out
    }
    static func basic(_ model: CoreModel) throws -> [String: HostTensor] { try inputs(model, "\(fixturesRoot)/llama_torchscript/basic/inputs") }
    static func ref(_ c: String) throws -> HostTensor { try Npy.read(path: "\(root)/refs/\(c)/logits.npy") }
    /// [n, N_v, d_v] from per-image features (nil: zeros, a row without an image).
    static func stacked(_ images: [String?]) throws -> HostTensor {
        let one = try features("img0")
        let t = HostTensor(zeros: .float32, shape: [images.count] + one.shape)
        for (i, name) in images.enumerated() {
            guard let name else { continue }
            let f = try features(name)
            (t.raw + i * f.byteCount).copyMemory(from: f.raw, byteCount: f.byteCount)
        }
        return t
    }
    /// Rows [from, to) of a [batch, ...] tensor.
    static func rows(_ t: HostTensor, _ r: Range<Int>) -> HostTensor {
        let per = t.count / t.shape[0]
        let out = HostTensor(zeros: t.dtype, shape: [r.count] + t.shape.dropFirst())
        out.raw.copyMemory(from: t.raw + r.lowerBound * per * 4, byteCount: r.count * per * 4)
        return out
    }

    @Test func pluginIsBuilt() {
        #expect(PluginRegistry.plugins.map(\.name).contains("vlora"), "problems: \(PluginRegistry.problems) (run `swift build` first)")
    }

    /// The generator run by Graft gives PyTorch's factors for img0.
    @Test func generatedFactorsMatchPyTorch() throws {
        let model = try CoreModel(path: "\(fixturesRoot)/llama_torchscript/model.onnx")
        let vlora = try PluginRegistry.loadAdapter(model: model, path: Self.adapterPath)
        #expect(vlora.isGenerator && vlora.lowRank.isEmpty)
        let g = try vlora.generate(aux: ["image_features": try Self.features("img0")])
        #expect(!g.isGenerator && g.lowRank.count == 4)
        var checked = 0
        for layer in 0..<2 {
            for proj in ["q_proj", "v_proj"] {
                let module = "model.layers.\(layer).self_attn.\(proj)"
                let term = try #require(g.lowRank[try model.sites.find(module: module).index]?.first)
                #expect(term.rank == 4 && term.scale == (proj == "q_proj" ? 0.5 : 0.25))
                for (role, t) in [("lora_A", term.a), ("lora_B", term.b)] {
                    let path = "\(Self.root)/refs/factors/img0/\(module).\(role).npy"
                    guard FileManager.default.fileExists(atPath: path) else { continue }   // the fixed factor
                    let d = maxAbsDiff(t, try Npy.read(path: path))
                    #expect(d <= 1e-5, "\(module).\(role): max|Δ| \(d)")
                    checked += 1
                }
            }
        }
        #expect(checked == 7)
    }

    /// One image for the batch, unmerged and merged (forced and by the cost rule), and as a
    /// request adapter made once and bound for several runs, against the merged reference.
    @Test(arguments: fixtures)
    func singleImageMatchesReference(_ fixture: String) throws {
        let model = try CoreModel(path: "\(fixturesRoot)/\(fixture)/model.onnx")
        let vlora = try PluginRegistry.loadAdapter(model: model, path: Self.adapterPath)
        let inputs = try Self.basic(model)
        let ref = try Self.ref("single")
        let aux = ["image_features": try Self.features("img0")]
        let session = try CoreSession(model: model)
        try session.setAdapters([(vlora, 1)])
        let unmerged = try session.run(inputs, aux: aux, merge: .unmerged)["logits"]!
        #expect(session.lastRunMergedGenerated == false)
        let merged = try session.run(inputs, aux: aux, merge: .merged)["logits"]!
        #expect(session.lastRunMergedGenerated == true)
        #expect(maxAbsDiff(unmerged, ref) <= Self.tolerance, "\(fixture) unmerged: \(maxAbsDiff(unmerged, ref))")
        #expect(maxAbsDiff(merged, ref) <= Self.tolerance, "\(fixture) merged: \(maxAbsDiff(merged, ref))")
        #expect(maxAbsDiff(merged, unmerged) <= Self.mergeTolerance, "\(fixture) merged vs unmerged: \(maxAbsDiff(merged, unmerged))")

        // A request adapter: generated once, bound across runs (decode steps), merged or not.
        let request = try vlora.generate(aux: aux)
        for m in [false, true] {
            try session.setAdapters([(request, 1)], merged: m)
            for _ in 0..<2 {
                let out = try session.run(inputs)["logits"]!
                #expect(maxAbsDiff(out, ref) <= Self.tolerance, "\(fixture) request adapter merged=\(m): \(maxAbsDiff(out, ref))")
            }
        }
    }

    /// `.auto` merges when Σ tokens·r·(in+out) > Σ r·in·out: for this adapter (q 64→64 and v
    /// 64→32 in two layers, r 4) that is more than 49152 / 1792 ≈ 27.4 tokens. 2×7 tokens run
    /// unmerged, 2×16 merged; both equal the forced other mode.
    @Test func autoPolicyFollowsTokenCount() throws {
        let model = try CoreModel(path: "\(fixturesRoot)/llama_torchscript/model.onnx")
        let vlora = try PluginRegistry.loadAdapter(model: model, path: Self.adapterPath)
        let aux = ["image_features": try Self.features("img1")]
        let session = try CoreSession(model: model)
        try session.setAdapters([(vlora, 1)])
        let base = try CoreSession(model: model)
        for (seq, wantMerged) in [(7, false), (13, false), (14, true), (16, true)] {
            let ids = HostTensor((0..<(2 * seq)).map { Int64(1 + ($0 * 37) % 255) }, shape: [2, seq])
            let mask = HostTensor([Int64](repeating: 1, count: 2 * seq), shape: [2, seq])
            let pos = HostTensor((0..<(2 * seq)).map { Int64($0 % seq) }, shape: [2, seq])
            let inputs = ["input_ids": ids, "attention_mask": mask, "position_ids": pos]
            let auto = try session.run(inputs, aux: aux)["logits"]!
            #expect(session.lastRunMergedGenerated == wantMerged, "2×\(seq) tokens: merged \(String(describing: session.lastRunMergedGenerated))")
            let other = try session.run(inputs, aux: aux, merge: wantMerged ? .unmerged : .merged)["logits"]!
            #expect(session.lastRunMergedGenerated == !wantMerged)
            #expect(maxAbsDiff(auto, other) <= Self.mergeTolerance, "2×\(seq): merged vs unmerged \(maxAbsDiff(auto, other))")
            #expect(maxAbsDiff(auto, try base.run(inputs)["logits"]!) > 1e-2, "the image moves the logits")
        }
    }

    /// Rows with different images and a row without one, in one pass: per-row references, and
    /// the no-image row bit-for-bit the base model.
    @Test(arguments: fixtures)
    func mixedBatchMatchesPerRow(_ fixture: String) throws {
        let model = try CoreModel(path: "\(fixturesRoot)/\(fixture)/model.onnx")
        let vlora = try PluginRegistry.loadAdapter(model: model, path: Self.adapterPath)
        let inputs = try Self.inputs(model, "\(Self.root)/refs/mixed/inputs")
        let ref = try Self.ref("mixed/per_row")
        let base = try CoreSession(model: model).run(inputs)["logits"]!
        let session = try CoreSession(model: model)

        // Per-row adapters with one image per row (row 1's features are not read).
        let a = try session.run(inputs, rowAdapters: [vlora, nil, vlora], aux: ["image_features": try Self.stacked(["img1", nil, "img2"])])["logits"]!
        // Request adapters made per image.
        let g1 = try vlora.generate(aux: ["image_features": try Self.features("img1")])
        let g2 = try vlora.generate(aux: ["image_features": try Self.features("img2")])
        let b = try session.run(inputs, rowAdapters: [g1, nil, g2])["logits"]!
        for (label, out) in [("aux per row", a), ("request adapters", b)] {
            #expect(maxAbsDiff(out, ref) <= Self.tolerance, "\(fixture) mixed \(label): \(maxAbsDiff(out, ref))")
            #expect(maxAbsDiff(Self.rows(out, 1..<2), Self.rows(base, 1..<2)) == 0, "\(fixture) \(label): the no-image row is the base model exactly")
        }
        // Bound, with an image for every row: rows 0 and 2 as above.
        try session.setAdapters([(vlora, 1)])
        let c = try session.run(inputs, aux: ["image_features": try Self.stacked(["img1", "img1", "img2"])])["logits"]!
        #expect(maxAbsDiff(Self.rows(c, 0..<1), Self.rows(ref, 0..<1)) <= Self.tolerance)
        #expect(maxAbsDiff(Self.rows(c, 2..<3), Self.rows(ref, 2..<3)) <= Self.tolerance)
        #expect(session.lastRunMergedGenerated == false)
    }

    /// A task LoRA (PEFT's lora_qvo_r8) and the image delta on the same sites, unmerged, merged,
    /// both bound merged, and with a request adapter.
    @Test(arguments: fixtures)
    func composesWithTaskLoRA(_ fixture: String) throws {
        let model = try CoreModel(path: "\(fixturesRoot)/\(fixture)/model.onnx")
        let vlora = try PluginRegistry.loadAdapter(model: model, path: Self.adapterPath)
        let lora = try PluginRegistry.loadAdapter(model: model, path: "\(fixturesRoot)/adapters/llama/lora_qvo_r8")
        let inputs = try Self.basic(model)
        let ref = try Self.ref("compose")
        let aux = ["image_features": try Self.features("img0")]
        let session = try CoreSession(model: model)
        var outs: [(String, HostTensor)] = []
        try session.setAdapters([(lora, 1), (vlora, 1)])
        outs.append(("unmerged", try session.run(inputs, aux: aux, merge: .unmerged)["logits"]!))
        outs.append(("generated merged", try session.run(inputs, aux: aux, merge: .merged)["logits"]!))
        try session.setAdapters([(lora, 1), (vlora, 1)], merged: true)
        outs.append(("all merged", try session.run(inputs, aux: aux)["logits"]!))
        #expect(session.lastRunMergedGenerated == true)
        outs.append(("lora merged, image unmerged", try session.run(inputs, aux: aux, merge: .unmerged)["logits"]!))
        try session.setAdapters([(lora, 1), (try vlora.generate(aux: aux), 1)])
        outs.append(("request adapter", try session.run(inputs)["logits"]!))
        for (label, out) in outs {
            #expect(maxAbsDiff(out, ref) <= Self.tolerance, "\(fixture) compose \(label): \(maxAbsDiff(out, ref))")
        }
        // The bound LoRA's merged weights are untouched by the runs' generated merges.
        try session.setAdapters([(lora, 1)], merged: true)
        let loraOnly = try session.run(inputs)["logits"]!
        try session.setAdapters([(lora, 1)])
        #expect(maxAbsDiff(loraOnly, try session.run(inputs)["logits"]!) <= Self.mergeTolerance)
    }

    /// Per-row composition: a row with the image's request adapter plus the task LoRA
    /// (`CoreAdapter.compose`), a row with the LoRA only and a base row, in one batch.
    @Test func composedAdaptersPerRow() throws {
        let model = try CoreModel(path: "\(fixturesRoot)/llama_torchscript/model.onnx")
        let vlora = try PluginRegistry.loadAdapter(model: model, path: Self.adapterPath)
        let lora = try PluginRegistry.loadAdapter(model: model, path: "\(fixturesRoot)/adapters/llama/lora_qvo_r8")
        let inputs = try Self.basic(model)
        let ref = try Self.ref("compose")
        let g0 = try vlora.generate(aux: ["image_features": try Self.features("img0")])
        let both = try CoreAdapter.compose([(g0, 1), (lora, 1)])
        #expect(both.name == "llama_qv_r4+lora_qvo_r8" && both.isMergeable)
        let session = try CoreSession(model: model)
        let base = try session.run(inputs)["logits"]!
        try session.setAdapters([(lora, 1)])
        let loraOnly = try session.run(inputs)["logits"]!
        try session.setAdapters([])
        let a = try session.run(inputs, rowAdapters: [both, nil])["logits"]!
        #expect(maxAbsDiff(Self.rows(a, 0..<1), Self.rows(ref, 0..<1)) <= Self.tolerance)
        #expect(maxAbsDiff(Self.rows(a, 1..<2), Self.rows(base, 1..<2)) == 0)
        let b = try session.run(inputs, rowAdapters: [both, lora])["logits"]!
        #expect(maxAbsDiff(Self.rows(b, 0..<1), Self.rows(ref, 0..<1)) <= Self.tolerance)
        #expect(maxAbsDiff(Self.rows(b, 1..<2), Self.rows(loraOnly, 1..<2)) <= Self.mergeTolerance)
        // Scales fold into the terms: compose([(lora, 0.5)]) bound equals lora bound at 0.5.
        try session.setAdapters([(try CoreAdapter.compose([(lora, 0.5)]), 1)])
        let half = try session.run(inputs)["logits"]!
        try session.setAdapters([(lora, 0.5)])
        #expect(maxAbsDiff(half, try session.run(inputs)["logits"]!) <= 1e-6)
        let other = try CoreModel(path: "\(fixturesRoot)/llama_dynamo/model.onnx")
        let foreign = try PluginRegistry.loadAdapter(model: other, path: "\(fixturesRoot)/adapters/llama/lora_qvo_r8")
        let refused: [([(CoreAdapter, Float)], String)] = [([(vlora, 1)], "compose the request adapter"), ([(lora, 1), (foreign, 1)], "another model"),
                                                           ([(lora, .nan)], "not finite"), ([], "no adapters")]
        for (parts, fragment) in refused {
            let e = expectError(.invalidArgument, containing: [fragment]) { _ = try CoreAdapter.compose(parts) }
            #expect(e?.code == .invalidArgument, "\(e?.message ?? "accepted")")
        }
    }

    /// Generated weights end with their run: the next run without them is the base model exactly.
    @Test func generatedWeightsDoNotLeak() throws {
        let model = try CoreModel(path: "\(fixturesRoot)/llama_torchscript/model.onnx")
        let vlora = try PluginRegistry.loadAdapter(model: model, path: Self.adapterPath)
        let inputs = try Self.basic(model)
        let base = try CoreSession(model: model).run(inputs)["logits"]!
        let session = try CoreSession(model: model)
        try session.setAdapters([(vlora, 1)])
        for m in [MergePolicy.merged, .unmerged] {
            _ = try session.run(inputs, aux: ["image_features": try Self.features("img0")], merge: m)
            #expect(maxAbsDiff(try session.run(inputs, rowAdapters: [nil, nil])["logits"]!, base) == 0)
        }
        try session.setAdapters([])
        #expect(maxAbsDiff(try session.run(inputs)["logits"]!, base) == 0)
    }

    @Test func badAuxiliaryInputsAreRefused() throws {
        let model = try CoreModel(path: "\(fixturesRoot)/llama_torchscript/model.onnx")
        let vlora = try PluginRegistry.loadAdapter(model: model, path: Self.adapterPath)
        let inputs = try Self.basic(model)
        let session = try CoreSession(model: model)
        let img = try Self.features("img0")
        try session.setAdapters([(vlora, 1)])
        var errors: [GraftError?] = []
        errors.append(expectError(.invalidArgument, containing: ["auxiliary input 'image_features'", "llama_qv_r4"]) { _ = try session.run(inputs) })
        errors.append(expectError(.shapeMismatch, containing: ["'image_features'", "[patches, 24]", "[12, 23]"]) {
            _ = try session.run(inputs, aux: ["image_features": HostTensor(zeros: .float32, shape: [12, 23])])
        })
        errors.append(expectError(.invalidArgument, containing: ["'image_features'", "must be float32", "int64"]) {
            _ = try session.run(inputs, aux: ["image_features": HostTensor(zeros: .int64, shape: [12, 24])])
        })
        errors.append(expectError(.shapeMismatch, containing: ["3 images for a batch of 2 rows"]) {
            _ = try session.run(inputs, aux: ["image_features": try Self.stacked(["img0", "img1", "img2"])])
        })
        errors.append(expectError(.invalidArgument, containing: ["'pixels' is not an auxiliary input", "'image_features'"]) {
            _ = try session.run(inputs, aux: ["image_features": img, "pixels": img])
        })
        errors.append(expectError(.unsupported, containing: ["cannot be merged"]) {
            _ = try session.run(inputs, aux: ["image_features": try Self.stacked(["img0", "img1"])], merge: .merged)
        })
        errors.append(expectError(.unsupported, containing: ["cannot be merged"]) {
            _ = try session.run(inputs, rowAdapters: [vlora, nil], aux: ["image_features": img], merge: .merged)
        })
        try session.setAdapters([])
        errors.append(expectError(.invalidArgument, containing: ["'image_features'", "no bound or per-row adapter"]) {
            _ = try session.run(inputs, aux: ["image_features": img])
        })
        errors.append(expectError(.invalidArgument, containing: ["'pixels' is not an auxiliary input of adapter"]) {
            _ = try vlora.generate(aux: ["pixels": img])
        })
        let lora = try PluginRegistry.loadAdapter(model: model, path: "\(fixturesRoot)/adapters/llama/lora_qvo_r8")
        errors.append(expectError(.invalidArgument, containing: ["has no generator"]) { _ = try lora.generate(aux: ["image_features": img]) })
        for e in errors { #expect(e != nil && e!.code != .internalError, "\(e?.message ?? "accepted")") }
    }

    /// Copies the adapter into a temporary folder with `edit` applied to its config.
    static func variant(_ dir: TempDir, _ edit: (inout [String: Any]) -> Void) throws -> String {
        for f in ["generator.onnx", "adapter_model.safetensors"] {
            _ = dir.write(f, Array(try Data(contentsOf: URL(fileURLWithPath: "\(adapterPath)/\(f)"))))
        }
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(adapterPath)/adapter_config.json"))) as! [String: Any]
        edit(&config)
        _ = dir.write("adapter_config.json", Array(try JSONSerialization.data(withJSONObject: config)))
        return dir.path
    }

    static func editTarget(_ c: inout [String: Any], _ i: Int, _ key: String, _ value: Any?) {
        var targets = c["targets"] as! [[String: Any]]
        targets[i][key] = value
        c["targets"] = targets
    }

    @Test func badGeneratorsAreRefused() throws {
        let model = try CoreModel(path: "\(fixturesRoot)/llama_torchscript/model.onnx")
        let cases: [(String, GraftError.Code, [String], (inout [String: Any]) -> Void)] = [
            ("unknown output", .invalidModel, ["has no output 'nope'", "model.layers.0.self_attn.q_proj"], { Self.editTarget(&$0, 0, "lora_A", "nope") }),
            ("unused output", .invalidModel, ["'model.layers.1.self_attn.v_proj.lora_A'", "not tied to any site"], { c in
                c["targets"] = Array((c["targets"] as! [[String: Any]]).prefix(3))
            }),
            ("output used twice", .invalidModel, ["used twice"], { Self.editTarget(&$0, 1, "lora_A", "model.layers.0.self_attn.q_proj.lora_A") }),
            ("wrong rank", .shapeMismatch, ["model.layers.0.self_attn.q_proj", "needs A [3, 64]"], { Self.editTarget(&$0, 0, "r", 3) }),
            ("wrong site", .shapeMismatch, ["model.layers.0.self_attn.k_proj", "needs B [32, 4]"], { Self.editTarget(&$0, 0, "module", "model.layers.0.self_attn.k_proj") }),
            ("aux name", .invalidModel, ["exactly one input, named 'pixels'", "'image_features'"], { $0["aux_input"] = "pixels" }),
            ("escaping path", .invalidArgument, ["leaves the adapter's folder"], { $0["generator"] = "../llama_qv_r4/generator.onnx" }),
            ("absolute path", .invalidArgument, ["must be relative"], { $0["generator"] = "\(Self.adapterPath)/generator.onnx" }),
            ("missing generator", .io, ["does not exist"], { $0["generator"] = "gone.onnx" }),
            ("missing fixed tensor", .invalidData, ["no tensor 'nope'"], { Self.editTarget(&$0, 3, "lora_B", ["fixed": "nope"]) }),
            ("fixed of wrong shape", .shapeMismatch, ["expected [4, 64]"], { Self.editTarget(&$0, 3, "lora_A", ["fixed": "model.layers.1.self_attn.v_proj.lora_B"]); Self.editTarget(&$0, 3, "lora_B", "model.layers.1.self_attn.v_proj.lora_A") }),
            ("unknown target key", .invalidData, ["unknown key \"alpha\""], { Self.editTarget(&$0, 0, "alpha", 2) }),
            ("not a generator model", .invalidModel, ["generator", "not a valid ONNX"], { $0["generator"] = "adapter_model.safetensors" }),
        ]
        for (label, code, fragments, edit) in cases {
            let dir = TempDir()
            defer { dir.cleanup() }
            let path = try Self.variant(dir, edit)
            let e = expectError(code, containing: fragments) { _ = try PluginRegistry.loadAdapter(model: model, path: path) }
            #expect(e != nil && e!.code == code, "\(label): \(e?.message ?? "accepted")")
        }
    }
}

import Foundation
import Testing
@testable import GraftCore

/// MixLoRA checkpoints (peft_type MIXLORA: block-level mixtures over the llama MLP) through the
/// MoE-LoRA plugin and the host's block mixtures, against the `mixlora` package's own outputs
/// (Tests/Fixtures/mixlora, made by make_mixlora_fixtures.py) on both exporters, to 1e-4; and
/// bad checkpoints, each a clear error.
///
/// Nested in AdapterFixtureTests so that it runs serialized with it (plugin discovery, see
/// MoELoRAPluginTests).
extension AdapterFixtureTests {
    @Suite(.serialized) struct MixLoRATests {
        static let root = "\(fixturesRoot)/mixlora"
        static let fixtures = ["llama_torchscript", "llama_dynamo"]
        static let tolerance: Float = 1e-4

        struct Case {
            let adapter: String
            let inputs: String
            let logits: String
        }

        static let cases: [Case] = {
            guard let data = FileManager.default.contents(atPath: root + "/manifest.json"),
                  let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let cases = json["cases"] as? [[String: Any]] else { return [] }
            return cases.compactMap { c in
                guard let a = c["adapter"] as? String, let i = c["inputs"] as? String,
                      let o = (c["outputs"] as? [String: String])?["logits"] else { return nil }
                return Case(adapter: a, inputs: i, logits: o)
            }
        }()

        static func inputs(_ model: CoreModel, _ folder: String) throws -> [String: HostTensor] {
            var inputs: [String: HostTensor] = [:]
            for d in model.graph.inputs { inputs[d.name] = try Npy.read(path: "\(fixturesRoot)/\(folder)/\(d.name).npy") }
            return inputs
        }

        static func adapterPath(_ name: String) -> String { "\(root)/llama/\(name)" }

        /// Rows [from, to) of a [batch, seq, vocab] tensor's batch axis, flattened.
        static func rows(_ t: HostTensor, _ r: Int) -> [Float] {
            let per = t.count / t.shape[0]
            return Array(UnsafeBufferPointer(start: t.pointer(Float.self) + r * per, count: per))
        }

        @Test(arguments: fixtures)
        func blocksAreRecognised(_ fixture: String) throws {
            let model = try CoreModel(path: "\(fixturesRoot)/\(fixture)/model.onnx")
            #expect(model.blocks.count == 2, "\(fixture): \(model.blocks.count) gated MLP blocks")
            for (i, b) in model.blocks.enumerated() {
                #expect(model.sites[b.gate].name.hasSuffix("layers.\(i).mlp.gate_proj"))
                #expect(model.sites[b.up].name.hasSuffix("layers.\(i).mlp.up_proj"))
                #expect(model.sites[b.down].name.hasSuffix("layers.\(i).mlp.down_proj"))
                #expect(b.activationOps.sorted() == ["Mul", "Sigmoid"], "\(fixture) block \(i): \(b.activationOps)")
            }
            let bert = try CoreModel(path: "\(fixturesRoot)/bert_dynamo/model.onnx")
            #expect(bert.blocks.isEmpty, "bert's MLP is not gated")
        }

        @Test(arguments: fixtures)
        func matchesMixLoRAPackage(_ fixture: String) throws {
            #expect(Self.cases.count >= 4, "cases in \(Self.root)/manifest.json: \(Self.cases.count)")
            let model = try CoreModel(path: "\(fixturesRoot)/\(fixture)/model.onnx")
            let session = try CoreSession(model: model)
            var loaded: [String: CoreAdapter] = [:]
            for c in Self.cases {
                let adapter = try loaded[c.adapter] ?? PluginRegistry.loadAdapter(model: model, path: Self.adapterPath(c.adapter))
                loaded[c.adapter] = adapter
                #expect(adapter.plugin == "moe-lora" && adapter.blocks.count == 2)
                try session.setAdapters([(adapter, 1)])
                let out = try session.run(try Self.inputs(model, c.inputs))["logits"]!
                let ref = try Npy.read(path: "\(fixturesRoot)/\(c.logits)")
                let d = maxAbsDiff(out, ref)
                #expect(d <= Self.tolerance, "\(fixture) \(c.adapter) \(c.inputs): max|Δ| \(d) against the mixlora package")
            }
        }

        /// Two threads split the block's tokens (basic and leftpad stacked: 28 tokens, two ranges of
        /// 14): the same answers as the package, row by row.
        @Test func threadsSplitTheTokens() throws {
            let model = try CoreModel(path: "\(fixturesRoot)/llama_dynamo/model.onnx")
            let adapter = try PluginRegistry.loadAdapter(model: model, path: Self.adapterPath("mixlora_e4_top2"))
            let a = try Self.inputs(model, "llama_torchscript/basic/inputs"), b = try Self.inputs(model, "llama_torchscript/leftpad/inputs")
            var stacked: [String: HostTensor] = [:]
            for (name, t) in a {
                let u = b[name]!
                let both = HostTensor(zeros: t.dtype, shape: [t.shape[0] + u.shape[0]] + t.shape.dropFirst())
                both.raw.copyMemory(from: t.raw, byteCount: t.byteCount)
                (both.raw + t.byteCount).copyMemory(from: u.raw, byteCount: u.byteCount)
                stacked[name] = both
            }
            let session = try CoreSession(model: model, threads: 2)
            try session.setAdapters([(adapter, 1)])
            let out = try session.run(stacked)["logits"]!
            let refs = [try Npy.read(path: "\(Self.root)/llama/refs/mixlora_e4_top2/basic/logits.npy"),
                        try Npy.read(path: "\(Self.root)/llama/refs/mixlora_e4_top2/leftpad/logits.npy")]
            for row in 0..<4 {
                let d = zip(Self.rows(out, row), Self.rows(refs[row / 2], row % 2)).map { abs($0 - $1) }.max()!
                #expect(d <= Self.tolerance, "row \(row) with 2 threads: max|Δ| \(d)")
            }
        }

        /// Per-row: the mixture on row 0 only; row 0 is the package's reference, row 1 the base model
        /// (the block's own activation and Mul then run and feed the rows the mixture does not cover).
        @Test(arguments: fixtures)
        func perRowMixtureLeavesOtherRowsAlone(_ fixture: String) throws {
            let model = try CoreModel(path: "\(fixturesRoot)/\(fixture)/model.onnx")
            let adapter = try PluginRegistry.loadAdapter(model: model, path: Self.adapterPath("mixlora_e4_top2"))
            let session = try CoreSession(model: model)
            let out = try session.run(try Self.inputs(model, "llama_torchscript/basic/inputs"), rowAdapters: [adapter, nil])["logits"]!
            let ref = try Npy.read(path: "\(Self.root)/llama/refs/mixlora_e4_top2/basic/logits.npy")
            let base = try Npy.read(path: "\(fixturesRoot)/\(fixture)/basic/torch/logits.npy")
            let d0 = zip(Self.rows(out, 0), Self.rows(ref, 0)).map { abs($0 - $1) }.max()!
            let d1 = zip(Self.rows(out, 1), Self.rows(base, 1)).map { abs($0 - $1) }.max()!
            #expect(d0 <= Self.tolerance && d1 <= Self.tolerance, "\(fixture): row 0 vs package \(d0), row 1 vs base \(d1)")
        }

        /// Scale 0 zeroes every expert's deltas: all experts are the base MLP, weights sum to 1, so
        /// the output is the base model's (through the block path: W_d applied to Σ w h).
        @Test func scaleZeroIsTheBaseModel() throws {
            let model = try CoreModel(path: "\(fixturesRoot)/llama_dynamo/model.onnx")
            let adapter = try PluginRegistry.loadAdapter(model: model, path: Self.adapterPath("mixlora_e3_top1_gelu"))
            let session = try CoreSession(model: model)
            try session.setAdapters([(adapter, 0)])
            let inputs = try Self.inputs(model, "llama_torchscript/basic/inputs")
            let base = try Npy.read(path: "\(fixturesRoot)/llama_dynamo/basic/torch/logits.npy")
            // act_fn gelu replaces the llama's SiLU even with zero deltas: not the base model.
            #expect(maxAbsDiff(try session.run(inputs)["logits"]!, base) > 1e-3)
            let silu = TempDir()
            defer { silu.cleanup() }
            let path = try Self.copy("mixlora_e3_top1_gelu", to: silu, config: { $0.replacingOccurrences(of: "\"gelu\"", with: "\"silu\"") })
            try session.setAdapters([(try PluginRegistry.loadAdapter(model: model, path: path), 0)])
            let d = maxAbsDiff(try session.run(inputs)["logits"]!, base)
            #expect(d <= Self.tolerance, "scale 0 with act silu vs the base model: max|Δ| \(d)")
        }

        @Test func cannotMergeOrStackTwoMixtures() throws {
            let model = try CoreModel(path: "\(fixturesRoot)/llama_dynamo/model.onnx")
            let a = try PluginRegistry.loadAdapter(model: model, path: Self.adapterPath("mixlora_e4_top2"))
            let b = try PluginRegistry.loadAdapter(model: model, path: Self.adapterPath("mixlora_e3_top1_gelu"))
            let session = try CoreSession(model: model)
            #expect(!a.isMergeable)
            let merged = expectError(.unsupported, containing: ["cannot be merged"]) { try session.setAdapters([(a, 1)], merged: true) }
            #expect(merged != nil && merged?.code != .internalError, "\(merged?.message ?? "merged without error")")
            let both = expectError(.invalidArgument, containing: ["both replace the MLP block", "bind one"]) { try session.setAdapters([(a, 1), (b, 1)]) }
            #expect(both != nil && both?.code != .internalError, "\(both?.message ?? "bound two mixtures without error")")
            // Different rows of one batch may use different mixtures.
            let out = try session.run(try Self.inputs(model, "llama_torchscript/basic/inputs"), rowAdapters: [a, b])["logits"]!
            let refA = try Npy.read(path: "\(Self.root)/llama/refs/mixlora_e4_top2/basic/logits.npy")
            let refB = try Npy.read(path: "\(Self.root)/llama/refs/mixlora_e3_top1_gelu/basic/logits.npy")
            let d0 = zip(Self.rows(out, 0), Self.rows(refA, 0)).map { abs($0 - $1) }.max()!
            let d1 = zip(Self.rows(out, 1), Self.rows(refB, 1)).map { abs($0 - $1) }.max()!
            #expect(d0 <= Self.tolerance && d1 <= Self.tolerance, "rows with different mixtures: \(d0), \(d1)")
        }

        /// A copy of a fixture adapter with its config edited (and, optionally, no safetensors).
        static func copy(_ name: String, to dir: TempDir, config edit: (String) -> String, safetensors: Bool = true) throws -> String {
            let path = dir.path + "/" + name
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            let text = try String(contentsOfFile: adapterPath(name) + "/adapter_config.json", encoding: .utf8)
            try edit(text).write(toFile: path + "/adapter_config.json", atomically: true, encoding: .utf8)
            if safetensors {
                try FileManager.default.copyItem(atPath: adapterPath(name) + "/adapter_model.safetensors", toPath: path + "/adapter_model.safetensors")
            }
            return path
        }

        /// Edits of mixlora_e4_top2's config (E 4, top-2, silu, r 4) and the error each must give.
        static let badConfigs: [(edit: @Sendable (String) -> String, code: GraftError.Code, fragments: [String])] = [
            ({ $0.replacingOccurrences(of: "\"num_experts\": 4", with: "\"num_experts\": 5") }, .shapeMismatch,
             ["moe_gate.weight has shape [4, 64]", "num_experts 5"]),
            ({ $0.replacingOccurrences(of: "\"num_experts\": 4", with: "\"num_experts\": 3") }, .invalidData,
             ["experts.3.lora_", "num_experts 3"]),
            ({ $0.replacingOccurrences(of: "\"top_k\": 2", with: "\"top_k\": 5") }, .invalidData, ["top_k is 5, more than num_experts (4)"]),
            ({ $0.replacingOccurrences(of: ",\n  \"act_fn\": \"silu\"", with: "") }, .invalidData, ["no \"act_fn\"", "\"silu\""]),
            ({ $0.replacingOccurrences(of: "\"act_fn\": \"silu\"", with: "\"act_fn\": \"sweesh\"") }, .invalidData,
             ["act_fn \"sweesh\" is not an activation name"]),
            ({ $0.replacingOccurrences(of: "\"act_fn\": \"silu\"", with: "\"act_fn\": \"gelu_pytorch_tanh\"") }, .unsupported,
             ["act_fn \"gelu_pytorch_tanh\" is not supported"]),
            ({ $0.replacingOccurrences(of: "\"act_fn\": \"silu\"", with: "\"act_fn\": 3") }, .invalidData, ["\"act_fn\" must be an activation name"]),
            ({ $0.replacingOccurrences(of: "\"routing_strategy\": \"mixlora\"", with: "\"routing_strategy\": \"dynamic\"") }, .unsupported,
             ["routing_strategy must be \"mixlora\""]),
            ({ $0.replacingOccurrences(of: "\"r\": 4", with: "\"r\": 8") }, .shapeMismatch, ["has shape [4, 64]", "expected [8, 64]"]),
            ({ $0.replacingOccurrences(of: "\"use_rslora\": false", with: "\"use_dora\": true") }, .unsupported, ["DoRA"]),
            ({ $0.replacingOccurrences(of: "\"use_rslora\": false", with: "\"expert_lora\": {\"r\": 2}") }, .unsupported, ["expert_lora"]),
            ({ $0.replacingOccurrences(of: "\"k_proj\",", with: "") }, .invalidData, ["self_attn.k_proj", "does not name k_proj"]),
            ({ $0.replacingOccurrences(of: "\"up_proj\",", with: "") }, .invalidData, ["mlp.up_proj", "does not name up_proj"]),
        ]

        @Test func badCheckpointsAreClearErrors() throws {
            let model = try CoreModel(path: "\(fixturesRoot)/llama_dynamo/model.onnx")
            let original = try String(contentsOfFile: Self.adapterPath("mixlora_e4_top2") + "/adapter_config.json", encoding: .utf8)
            for (i, bad) in Self.badConfigs.enumerated() {
                #expect(bad.edit(original) != original, "edit \(i) changes nothing: the test would not test")
                let dir = TempDir()
                defer { dir.cleanup() }
                let path = try Self.copy("mixlora_e4_top2", to: dir, config: bad.edit)
                let e = expectError(bad.code, containing: bad.fragments) { _ = try PluginRegistry.loadAdapter(model: model, path: path) }
                #expect(e != nil && e?.code != .internalError, "case \(i): \(e?.message ?? "loaded without error")")
            }
        }

        /// A checkpoint without layer 1's router (and experts): the model's layer 1 is not left as the base MLP.
        @Test func missingLayerIsAClearError() throws {
            let model = try CoreModel(path: "\(fixturesRoot)/llama_dynamo/model.onnx")
            let dir = TempDir()
            defer { dir.cleanup() }
            let path = try Self.copy("mixlora_e4_top2", to: dir, config: { $0 }, safetensors: false)
            let file = try SafetensorsFile(path: Self.adapterPath("mixlora_e4_top2") + "/adapter_model.safetensors")
            var tensors: [(String, [Int], [Float])] = []
            for entry in file.entries where !entry.name.hasPrefix("mixlora.layers.1.") {
                let t = try file.floats(entry)
                tensors.append((entry.name, entry.shape, Array(UnsafeBufferPointer(start: t.pointer(Float.self), count: t.count))))
            }
            Self.writeSafetensors(path + "/adapter_model.safetensors", tensors)
            let e = expectError(.invalidData, containing: ["the model has layer 1", "mixlora.layers.1.mlp.moe_gate.weight"]) {
                _ = try PluginRegistry.loadAdapter(model: model, path: path)
            }
            #expect(e != nil && e?.code != .internalError, "\(e?.message ?? "loaded without error")")
        }

        static func writeSafetensors(_ path: String, _ tensors: [(String, [Int], [Float])]) {
            var header = "{", data: [UInt8] = [], offset = 0
            for (i, (name, shape, values)) in tensors.enumerated() {
                header += (i == 0 ? "" : ",") + "\"\(name)\":{\"dtype\":\"F32\",\"shape\":[\(shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + 4 * values.count)]}"
                for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { data += $0 } }
                offset += 4 * values.count
            }
            header += "}"
            let h = Array(header.utf8)
            var bytes: [UInt8] = []
            withUnsafeBytes(of: UInt64(h.count).littleEndian) { bytes += $0 }
            _ = FileManager.default.createFile(atPath: path, contents: Data(bytes + h + data))
        }

        /// The package's own file is a pickle: refused, naming the one-line conversion.
        @Test func pickleIsRefusedWithTheConversion() throws {
            let model = try CoreModel(path: "\(fixturesRoot)/llama_dynamo/model.onnx")
            let dir = TempDir()
            defer { dir.cleanup() }
            let path = try Self.copy("mixlora_e4_top2", to: dir, config: { $0 }, safetensors: false)
            _ = dir.write("mixlora_e4_top2/adapter_model.bin", Array("PK\u{3}\u{4} not read".utf8))
            let e = expectError(.unsupported, containing: ["adapter_model.bin is a Python pickle", "torch.load('adapter_model.bin', weights_only=True)",
                                                          "adapter_model.safetensors"]) { _ = try PluginRegistry.loadAdapter(model: model, path: path) }
            #expect(e != nil && e?.code != .internalError, "\(e?.message ?? "loaded without error")")
        }

        /// A model without gated MLP blocks: the sites are not found (the host lists close names).
        @Test func modelWithoutTheLayersIsAClearError() throws {
            let bert = try CoreModel(path: "\(fixturesRoot)/bert_dynamo/model.onnx")
            let e = expectError(.invalidArgument, containing: ["no linear layer of the model is named"]) {
                _ = try PluginRegistry.loadAdapter(model: bert, path: Self.adapterPath("mixlora_e4_top2"))
            }
            #expect(e != nil && e?.code != .internalError, "\(e?.message ?? "loaded without error")")
        }
    }
}

import Foundation
import Testing
@testable import GraftCore

/// The MoE-LoRA plugin (Plugins/MoELoRA, peft_type GRAFT_MOE_LORA) through the real host:
/// equivalences that need no reference file, and hostile configs and weights, each a clear error.
/// The fixtures' numbers against PyTorch are AdapterFixtureTests (the manifest's moe_* cases).
///
/// Nested in AdapterFixtureTests so that it runs serialized with it (and is selected by the same
/// `--filter AdapterFixtureTests`): PluginRegistry.discover() marks discovery done before it has
/// loaded the plugins, so a suite calling it concurrently can see a partial plugin list.
extension AdapterFixtureTests {
    @Suite(.serialized) struct MoELoRAPluginTests {
        static let model = "\(fixturesRoot)/bert_dynamo/model.onnx"
        static let adapters = "\(fixturesRoot)/adapters/bert"
        static let query = "encoder.layer.0.attention.self.query"

        static func inputs(_ model: CoreModel) throws -> [String: HostTensor] {
            var inputs: [String: HostTensor] = [:]
            for d in model.graph.inputs { inputs[d.name] = try Npy.read(path: "\(fixturesRoot)/bert_dynamo/basic/inputs/\(d.name).npy") }
            return inputs
        }

        static func run(_ model: CoreModel, _ adapter: CoreAdapter) throws -> [String: HostTensor] {
            let session = try CoreSession(model: model)
            try session.setAdapters([(adapter, 1)])
            return try session.run(try inputs(model))
        }

        static func maxDiff(_ a: [String: HostTensor], _ b: [String: HostTensor]) -> Float {
            a.keys.map { maxAbsDiff(a[$0]!, b[$0]!) }.max() ?? .infinity
        }

        /// A copy of a fixture directory with another adapter_config.json.
        static func withConfig(_ fixture: String, _ config: String, in dir: TempDir, name: String = "moe") throws -> String {
            let path = dir.path + "/" + name
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            try config.write(toFile: path + "/adapter_config.json", atomically: true, encoding: .utf8)
            try FileManager.default.copyItem(atPath: "\(adapters)/\(fixture)/adapter_model.safetensors", toPath: path + "/adapter_model.safetensors")
            return path
        }

        /// A safetensors file of float32 tensors (values 0.01·i, which only the shapes matter for).
        static func writeWeights(_ path: String, _ tensors: [(String, [Int])]) {
            var header = "{", data: [UInt8] = [], offset = 0
            for (i, (name, shape)) in tensors.enumerated() {
                let count = shape.reduce(1, *)
                header += (i == 0 ? "" : ",") + "\"\(name)\":{\"dtype\":\"F32\",\"shape\":[\(shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + 4 * count)]}"
                for j in 0..<count { withUnsafeBytes(of: (Float(j % 7) * 0.01).bitPattern.littleEndian) { data += $0 } }
                offset += 4 * count
            }
            header += "}"
            let h = Array(header.utf8)
            var bytes: [UInt8] = []
            withUnsafeBytes(of: UInt64(h.count).littleEndian) { bytes += $0 }
            _ = FileManager.default.createFile(atPath: path, contents: Data(bytes + h + data))
        }

        /// Tensors of a valid 2-expert, rank-2 mixture on the first query (64 → 64), with a router bias.
        static func validTensors(module: String = query, experts: Int = 2, rank: Int = 2) -> [(String, [Int])] {
            let p = "base_model.model.\(module)."
            return [(p + "router.weight", [experts, 64]), (p + "router.bias", [experts])]
                + (0..<experts).flatMap { e in [(p + "experts.\(e).lora_A.weight", [rank, 64]), (p + "experts.\(e).lora_B.weight", [64, rank])] }
        }

        static let validConfig = #"{"peft_type": "GRAFT_MOE_LORA", "r": 2, "lora_alpha": 4, "num_experts": 2, "router": {"gate": "topk", "top_k": 1, "renormalize": true, "bias": true}}"#

        @Test func pluginIsBuilt() {
            let names = PluginRegistry.plugins.map(\.name)
            #expect(names.contains("moe-lora"), "plugins: \(names); problems: \(PluginRegistry.problems) (run `swift build` first)")
        }

        /// One expert with a softmax gate (g = 1) over lora_qv_r8's A and B is that LoRA, to float rounding.
        @Test func oneExpertEqualsPlainLoRA() throws {
            let model = try CoreModel(path: Self.model)
            let moe = try PluginRegistry.loadAdapter(model: model, path: "\(Self.adapters)/moe_e1_lora_qv_r8")
            let lora = try PluginRegistry.loadAdapter(model: model, path: "\(Self.adapters)/lora_qv_r8")
            #expect(moe.plugin == "moe-lora" && lora.plugin == "lora")
            #expect(!moe.isMergeable && lora.isMergeable)
            let d = Self.maxDiff(try Self.run(model, moe), try Self.run(model, lora))
            #expect(d <= 1e-5, "E = 1 MoE vs plain LoRA: max|Δ| \(d)")
        }

        /// Top-k with k = E and no renormalisation is the softmax gate; top-2 of 4 is not.
        @Test func topKOfAllEqualsSoftmax() throws {
            let dir = TempDir()
            defer { dir.cleanup() }
            let model = try CoreModel(path: Self.model)
            func config(_ router: String) -> String {
                #"{"peft_type": "GRAFT_MOE_LORA", "r": 4, "lora_alpha": 8, "num_experts": 4, "target_modules": ["query", "value"], "router": "# + router + "}"
            }
            let soft = try PluginRegistry.loadAdapter(model: model, path: try Self.withConfig("moe_topk2", config(#"{"gate": "softmax", "bias": true}"#), in: dir, name: "soft"))
            let all = try PluginRegistry.loadAdapter(model: model, path: try Self.withConfig("moe_topk2", config(#"{"gate": "topk", "top_k": 4, "renormalize": false, "bias": true}"#), in: dir, name: "all"))
            let top2 = try PluginRegistry.loadAdapter(model: model, path: "\(Self.adapters)/moe_topk2")
            let s = try Self.run(model, soft)
            let d = Self.maxDiff(s, try Self.run(model, all))
            #expect(d <= 1e-6, "top-4 of 4, unnormalised, vs softmax: max|Δ| \(d)")
            #expect(Self.maxDiff(s, try Self.run(model, top2)) > 1e-3, "top-2 must differ from softmax")
        }

        /// adapter_config.json texts on moe_topk2's weights (E 4, r 4, router bias, query + value).
        static let badConfigs: [(config: String, code: GraftError.Code, fragments: [String])] = {
            func c(_ body: String) -> String { #"{"peft_type": "GRAFT_MOE_LORA", "# + body + "}" }
            let router = #""router": {"gate": "topk", "top_k": 2, "renormalize": true, "bias": true}"#
            return [
                (c(#""r": 4, "lora_alpha": 8, "# + router), .invalidData, ["no \"num_experts\""]),
                (c(#""r": 4, "num_experts": "4", "# + router), .invalidData, ["\"num_experts\" must be an integer", "a string"]),
                (c(#""r": 4, "num_experts": 4.5, "# + router), .invalidData, ["\"num_experts\" must be an integer", "4.5"]),
                (c(#""r": 4, "num_experts": 0, "# + router), .invalidData, ["\"num_experts\" must be an integer in 1...1024"]),
                (c(#""r": 4, "num_experts": 1e300, "# + router), .invalidData, ["\"num_experts\" must be an integer in 1...1024"]),
                (c(#""r": 4, "num_experts": 3, "router": {"gate": "softmax", "bias": true}"#), .invalidData, ["experts.3.lora_", "expert 3", "num_experts 3"]),
                (c(#""r": 4, "num_experts": 5, "# + router), .invalidData, ["num_experts 5", "no lora_A.weight for expert 4", "experts.4.lora_A.weight"]),
                (c(#""r": 4, "num_experts": 4"#), .invalidData, ["no \"router\" object"]),
                (c(#""r": 4, "num_experts": 4, "router": "topk""#), .invalidData, ["\"router\" must be an object", "a string"]),
                (c(#""r": 4, "num_experts": 4, "router": {"bias": true}"#), .invalidData, ["router has no \"gate\""]),
                (c(#""r": 4, "num_experts": 4, "router": {"gate": "laplace"}"#), .invalidData, ["\"router.gate\" must be one of", "laplace"]),
                (c(#""r": 4, "num_experts": 4, "router": {"gate": 1}"#), .invalidData, ["\"router.gate\" must be one of", "a number"]),
                (c(#""r": 4, "num_experts": 4, "router": {"gate": "topk", "renormalize": true, "bias": true}"#), .invalidData, ["gate \"topk\" needs router.top_k"]),
                (c(#""r": 4, "num_experts": 4, "router": {"gate": "topk", "top_k": 2, "bias": true}"#), .invalidData, ["gate \"topk\" needs router.renormalize"]),
                (c(#""r": 4, "num_experts": 4, "router": {"gate": "topk", "top_k": 5, "renormalize": true, "bias": true}"#), .invalidData, ["top_k is 5, more than num_experts (4)"]),
                (c(#""r": 4, "num_experts": 4, "router": {"gate": "topk", "top_k": 0, "renormalize": true, "bias": true}"#), .invalidData, ["\"router.top_k\" must be an integer"]),
                (c(#""r": 4, "num_experts": 4, "router": {"gate": "topk", "top_k": 2, "renormalize": "yes", "bias": true}"#), .invalidData, ["\"router.renormalize\" must be true or false"]),
                (c(#""r": 4, "num_experts": 4, "router": {"gate": "softmax", "top_k": 2, "bias": true}"#), .invalidData, ["router.top_k applies only to gate \"topk\"", "\"softmax\""]),
                (c(#""r": 4, "num_experts": 4, "router": {"gate": "sigmoid", "renormalize": true, "bias": true}"#), .invalidData, ["router.renormalize applies only"]),
                (c(#""r": 4, "num_experts": 4, "router": {"gate": "threshold", "threshold": 1.5, "renormalize": false, "bias": true}"#), .invalidData, ["\"router.threshold\" must be a number in [0, 1]"]),
                (c(#""r": 4, "num_experts": 4, "router": {"gate": "topk", "topk": 2, "renormalize": true, "bias": true}"#), .invalidData, ["unknown key \"topk\""]),
                (c(#""r": 4, "num_experts": 4, "router": {"gate": "softmax", "bias": "yes"}"#), .invalidData, ["\"router.bias\" must be true or false"]),
                (c(#""r": 4, "num_experts": 4, "router": {"gate": "softmax"}"#), .invalidData, ["router.bias", "does not set router.bias to true"]),
                (c(#""r": 8, "num_experts": 4, "# + router), .shapeMismatch, ["experts.0.lora_A.weight has shape [4, 64]", "r 8"]),
                (c(#""r": "4", "num_experts": 4, "# + router), .invalidData, ["\"r\" must be an integer"]),
                (c(#""r": -1, "num_experts": 4, "# + router), .invalidData, ["\"r\" must be an integer"]),
                (c(#""r": 4, "lora_alpha": "x", "num_experts": 4, "# + router), .invalidData, ["\"lora_alpha\" must be a finite number"]),
                (c(#""r": 4, "num_experts": 4, "target_modules": ["query"], "# + router), .invalidData, ["adapts encoder.layer.0.attention.self.value", "target_modules [\"query\"]"]),
                (c(#""r": 4, "num_experts": 4, "target_modules": "query", "# + router), .invalidData, ["\"target_modules\" must be a list of module names"]),
                (c(#""r": 4, "num_experts": 4, "use_rslora": true, "# + router), .unsupported, ["use_rslora"]),
                (c(#""r": 4, "num_experts": 4, "rank_pattern": {"query": 2}, "# + router), .unsupported, ["rank_pattern"]),
                (#"{"peft_type": "GRAFT_MOE_LORA", "r": 4, "num_experts": 4, "router": {"gate": "topk", "top_k": 2, "renormalize": true, "bias": tru}}"#,
                 .unsupported, ["no plugin claims"]),   // claims reads the config: broken JSON is nobody's
            ]
        }()

        @Test func badConfigsAreClearErrors() throws {
            let dir = TempDir()
            defer { dir.cleanup() }
            let model = try CoreModel(path: Self.model)
            for (i, bad) in Self.badConfigs.enumerated() {
                let path = try Self.withConfig("moe_topk2", bad.config, in: dir, name: "bad\(i)")
                let e = expectError(bad.code, containing: bad.fragments) { _ = try PluginRegistry.loadAdapter(model: model, path: path) }
                #expect(e?.code == bad.code, "\(bad.config): \(e?.message ?? "accepted")")
            }
        }

        /// Hostile weight files next to a valid config.
        @Test func badWeightsAreClearErrors() throws {
            let dir = TempDir()
            defer { dir.cleanup() }
            let model = try CoreModel(path: Self.model)
            let p = "base_model.model.\(Self.query)."
            let valid = Self.validTensors()
            func drop(_ key: String) -> [(String, [Int])] { valid.filter { $0.0 != p + key } }
            func reshape(_ key: String, _ shape: [Int]) -> [(String, [Int])] { valid.map { $0.0 == p + key ? ($0.0, shape) : $0 } }
            let cases: [(String, [(String, [Int])], GraftError.Code, [String])] = [
                ("valid", valid, .invalidArgument, []),
                ("no router", drop("router.weight"), .invalidData, ["no router", p + "router.weight is missing"]),
                ("no bias", drop("router.bias"), .invalidData, ["router.bias true", "no " + p + "router.bias"]),
                ("no B", drop("experts.1.lora_B.weight"), .invalidData, ["no lora_B.weight for expert 1", "num_experts 2"]),
                ("router rows", reshape("router.weight", [3, 64]), .shapeMismatch, ["router.weight has shape [3, 64]", "num_experts 2", "expected [2, 64]"]),
                ("router cols", reshape("router.weight", [2, 32]), .shapeMismatch, ["router.weight has shape [2, 32]", "expected [2, 64]", "in_features 64"]),
                ("router 1-D", reshape("router.weight", [128]), .shapeMismatch, ["router.weight has shape [128]"]),
                ("bias", reshape("router.bias", [2, 1]), .shapeMismatch, ["router.bias has shape [2, 1]", "expected [2]"]),
                ("A in", reshape("experts.0.lora_A.weight", [2, 32]), .shapeMismatch, ["experts.0.lora_A.weight has shape [2, 32]", "expected [2, 64]"]),
                ("B out", reshape("experts.1.lora_B.weight", [32, 2]), .shapeMismatch, ["experts.1.lora_B.weight has shape [32, 2]", "expected [64, 2]"]),
                ("rank", reshape("experts.0.lora_B.weight", [64, 3]), .shapeMismatch, ["lora_B.weight [64, 3]", "r 2", "expected [2, 64] and [64, 2]"]),
                ("unknown module", Self.validTensors(module: "encoder.layer.7.attention.self.query"), .invalidArgument,
                 ["encoder.layer.7.attention.self.query", "closest sites", Self.query]),
                ("plain LoRA key", valid + [(p + "lora_A.weight", [2, 64])], .invalidData, ["a LoRA weight outside any expert", "peft_type \"LORA\""]),
                ("expert 01", valid + [(p + "experts.01.lora_A.weight", [2, 64])], .invalidData, ["\"01\" is not an expert index"]),
                ("expert 2", valid + [(p + "experts.2.lora_A.weight", [2, 64])], .invalidData, ["expert 2", "num_experts 2"]),
                ("other key", valid + [("base_model.model.classifier.weight", [2, 64])], .invalidData, ["classifier.weight", "reads only"]),
                ("no prefix", valid + [("router.weight", [2, 64])], .invalidData, ["does not start with \"base_model.model.\""]),
                ("empty", [], .invalidData, ["holds no tensors"]),
            ]
            for (i, c) in cases.enumerated() {
                let path = dir.path + "/w\(i)"
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
                try Self.validConfig.write(toFile: path + "/adapter_config.json", atomically: true, encoding: .utf8)
                Self.writeWeights(path + "/adapter_model.safetensors", c.1)
                if c.3.isEmpty {
                    let a = try PluginRegistry.loadAdapter(model: model, path: path)
                    #expect(a.routers.count == 1 && a.lowRank.values.joined().count == 2 && !a.isMergeable, "\(c.0)")
                    continue
                }
                let e = expectError(c.2, containing: c.3) { _ = try PluginRegistry.loadAdapter(model: model, path: path) }
                #expect(e?.code == c.2, "\(c.0): \(e?.message ?? "accepted")")
            }
            // A pickle alone is refused with the conversion command.
            let pickle = dir.path + "/pickle"
            try FileManager.default.createDirectory(atPath: pickle, withIntermediateDirectories: true)
            try Self.validConfig.write(toFile: pickle + "/adapter_config.json", atomically: true, encoding: .utf8)
            _ = FileManager.default.createFile(atPath: pickle + "/adapter_model.bin", contents: Data([0x80, 0x02]))
            let e = expectError(.unsupported, containing: ["pickle", "safetensors"]) { _ = try PluginRegistry.loadAdapter(model: model, path: pickle) }
            #expect(e?.code == .unsupported, "\(e?.message ?? "accepted")")
        }

        /// A mixed batch: row 0 under the top-2 mixture, row 1 base (BERT rows do not interact).
        @Test func mixedBatchRows() throws {
            let model = try CoreModel(path: Self.model)
            let moe = try PluginRegistry.loadAdapter(model: model, path: "\(Self.adapters)/moe_topk2")
            let out = try CoreSession(model: model).run(try Self.inputs(model), rowAdapters: [moe, nil])
            for name in ["last_hidden_state", "pooler_output"] {
                let got = out[name]!.floats()
                let m = try Npy.read(path: "\(Self.adapters)/refs/moe_topk2/\(name).npy").floats()
                let b = try Npy.read(path: "\(Self.adapters)/refs/base/\(name).npy").floats()
                let half = got.count / 2
                let d0 = (0..<half).map { abs(got[$0] - m[$0]) }.max()!
                let d1 = (half..<got.count).map { abs(got[$0] - b[$0]) }.max()!
                #expect(d0 <= 1e-4 && d1 <= 1e-4, "\(name): row 0 vs moe_topk2 \(d0), row 1 vs base \(d1)")
            }
        }

        /// Routers and terms the plugin hands the host for the top-2 fixture.
        @Test func topK2BuildsOneRouterPerModule() throws {
            let model = try CoreModel(path: Self.model)
            let a = try PluginRegistry.loadAdapter(model: model, path: "\(Self.adapters)/moe_topk2")
            #expect(a.name == "moe_topk2")
            #expect(a.routers.count == 4)
            for r in a.routers {
                #expect(r.experts == 4 && r.topK == 2 && r.renormalize && r.bias != nil)
            }
            let terms = a.lowRank.values.joined()
            #expect(terms.count == 16)
            #expect(terms.allSatisfy { $0.rank == 4 && $0.scale == 2 && $0.router != nil })
        }
    }
}

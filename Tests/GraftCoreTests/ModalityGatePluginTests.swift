import Foundation
import Testing
@testable import GraftCore

/// The ModalityGate plugin (Plugins/ModalityGate, peft_type GRAFT_MODALITY_GATE): the bert
/// fixtures of Tests/Fixtures/make_modality_fixtures.py against plain PyTorch (1e-4, both
/// exporters); site-level invariants on a two-layer chain whose sites act row by row, so each
/// token's output row is its value at every site; and bad configs, weights and ids as clear errors.
/// Nested in AdapterFixtureTests to run serialized with the other plugin-loading suites.
extension AdapterFixtureTests {
    @Suite(.serialized) struct ModalityGatePluginTests {
        static let root = "\(fixturesRoot)/modality_gate"
        nonisolated(unsafe) static let manifest: [String: Any] = {
            guard let data = FileManager.default.contents(atPath: root + "/manifest.json"),
                  let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return [:] }
            return json
        }()

        static func inputs(_ model: CoreModel, _ folder: String = "bert_torchscript/basic/inputs") throws -> [String: HostTensor] {
            var inputs: [String: HostTensor] = [:]
            for d in model.graph.inputs { inputs[d.name] = try Npy.read(path: "\(fixturesRoot)/\(folder)/\(d.name).npy") }
            return inputs
        }

        static func ids(_ file: String) throws -> [UInt8] {
            try Npy.read(path: "\(fixturesRoot)/\(file)").integers().map { UInt8($0) }
        }

        static func run(_ model: CoreModel, _ adapters: [CoreAdapter], ids: [UInt8]?, inputs folder: String = "bert_torchscript/basic/inputs") throws -> [String: HostTensor] {
            let session = try CoreSession(model: model)
            try session.setAdapters(adapters.map { ($0, 1) })
            return try session.run(try inputs(model, folder), modalities: ids)
        }

        static func load(_ model: CoreModel, _ name: String) throws -> CoreAdapter {
            try PluginRegistry.loadAdapter(model: model, path: "\(root)/\(name)")
        }

        @Test func pluginIsBuilt() {
            let names = PluginRegistry.plugins.map(\.name)
            #expect(names.contains("modality-gate"), "plugins: \(names); problems: \(PluginRegistry.problems) (run `swift build` first)")
        }

        @Test(arguments: ["bert_torchscript", "bert_dynamo", "llama_torchscript", "llama_dynamo"])
        func casesMatchPyTorch(_ fixture: String) throws {
            let all = try #require(Self.manifest["cases"] as? [String: [String: Any]], "run make_modality_fixtures.py")
            let cases = all.filter { fixture.hasPrefix(($0.value["model"] as? String ?? "?") + "_") }
            #expect(cases.count == (fixture.hasPrefix("bert") ? 8 : 2))
            let model = try CoreModel(path: "\(fixturesRoot)/\(fixture)/model.onnx")
            for (name, c) in cases.sorted(by: { $0.key < $1.key }) {
                let adapters = try (c["adapters"] as! [String]).map { try Self.load(model, $0) }
                let out = try Self.run(model, adapters, ids: try Self.ids(c["ids"] as! String), inputs: c["inputs"] as! String)
                var worst: Float = 0
                for (k, path) in c["outputs"] as! [String: String] {
                    worst = max(worst, maxAbsDiff(out[k]!, try Npy.read(path: "\(fixturesRoot)/\(path)")))
                }
                #expect(worst <= AdapterFixtureTests.tolerance, "\(fixture) \(name): max|Δ| \(worst) vs PyTorch")
            }
        }

        /// A text-only request through an image-only hard gate is the base model, bit for bit.
        @Test func textOnlyRequestThroughImageGateIsBase() throws {
            let model = try CoreModel(path: "\(fixturesRoot)/bert_dynamo/model.onnx")
            let gated = try Self.run(model, [try Self.load(model, "mg_hard_image")], ids: [UInt8](repeating: 0, count: 14))
            let base = try CoreSession(model: model).run(try Self.inputs(model))
            for (k, v) in base { #expect(v.floats() == gated[k]!.floats(), "\(k) differs from the base model") }
            #expect(Self.maxDiff(base, try Self.run(model, [try Self.load(model, "mg_hard_image")], ids: try Self.ids("modality_gate/ids.npy"))) > 1e-3)
        }

        /// mg_hard_three (one expert per modality, hard gates) = its experts as three LoRAs each
        /// gated to its modality ("graft_modalities"), bound together.
        @Test func hardGateEqualsEachModalitysLoRA() throws {
            let model = try CoreModel(path: "\(fixturesRoot)/bert_dynamo/model.onnx")
            let ids = try Self.ids("modality_gate/ids.npy")
            let gate = try Self.run(model, [try Self.load(model, "mg_hard_three")], ids: ids)
            let loras = try Self.run(model, try ["lora_m0", "lora_m1", "lora_m2"].map { try Self.load(model, $0) }, ids: ids)
            #expect(Self.maxDiff(gate, loras) <= 1e-5)
        }

        static func maxDiff(_ a: [String: HostTensor], _ b: [String: HostTensor]) -> Float {
            a.keys.map { maxAbsDiff(a[$0]!, b[$0]!) }.max() ?? .infinity
        }

        // MARK: - Site level, on a chain y = (x · W1) · W2 (two sites "l1" 4→4, "l2" 4→3)

        static let tokens = 6
        static let x: [Float] = (0..<(tokens * 4)).map { Float(($0 * 7) % 11) * 0.1 - 0.5 }
        /// Modality ids: text 0, image 1, audio 2, 9 (no expert serves it) and 40 (above 31: no
        /// modality bit at all).
        static let chainIDs: [UInt8] = [0, 1, 2, 1, 9, 40]

        static func chain(in dir: TempDir) throws -> CoreModel {
            let w1: [Float] = (0..<16).map { Float($0 % 5) * 0.1 - 0.2 }, w2: [Float] = (0..<12).map { Float($0 % 7) * 0.1 - 0.3 }
            let m = OnnxModel(nodes: [OnnxNode(op: "MatMul", inputs: ["x", "l1.weight"], outputs: ["h"], name: "l1"),
                                      OnnxNode(op: "MatMul", inputs: ["h", "l2.weight"], outputs: ["y"], name: "l2")],
                              inputs: [OnnxValue(name: "x", dims: ["t", 4])], outputs: [OnnxValue(name: "y", dims: ["t", 3])],
                              initializers: [.floats("l1.weight", w1, [4, 4]), .floats("l2.weight", w2, [4, 3])])
            return try loadModel(m.encode(), in: dir)
        }

        /// Float32 safetensors from explicit values.
        static func writeSafetensors(_ path: String, _ tensors: [(String, [Int], [Float])]) {
            var header = "{", data: [UInt8] = []
            for (i, (name, shape, values)) in tensors.enumerated() {
                header += (i == 0 ? "" : ",") + "\"\(name)\":{\"dtype\":\"F32\",\"shape\":[\(shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(data.count),\(data.count + 4 * values.count)]}"
                for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { data += $0 } }
            }
            header += "}"
            var bytes: [UInt8] = []
            withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { bytes += $0 }
            _ = FileManager.default.createFile(atPath: path, contents: Data(bytes + Array(header.utf8) + data))
        }

        /// Expert e's rank-2 factors at a site of `fin` → `fout` features.
        static func factors(_ e: Int, _ site: Int, fin: Int, fout: Int) -> (a: [Float], b: [Float]) {
            ((0..<(2 * fin)).map { Float(($0 + 3 * e + site) % 7) * 0.15 - 0.4 }, (0..<(fout * 2)).map { Float(($0 * 2 + e + 5 * site) % 9) * 0.1 - 0.35 })
        }

        static let chainSites: [(String, Int, Int)] = [("l1", 4, 4), ("l2", 4, 3)]

        /// A directory with `config` and experts 0..<experts at both chain sites.
        static func chainAdapter(_ dir: TempDir, _ name: String, _ config: String, experts: [Int], key: (Int, String) -> String) throws -> String {
            let path = dir.path + "/" + name
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            try config.write(toFile: path + "/adapter_config.json", atomically: true, encoding: .utf8)
            var tensors: [(String, [Int], [Float])] = []
            for (s, (site, fin, fout)) in chainSites.enumerated() {
                for e in experts {
                    let f = factors(e, s, fin: fin, fout: fout)
                    tensors.append(("base_model.model.\(site).\(key(e, "A"))", [2, fin], f.a))
                    tensors.append(("base_model.model.\(site).\(key(e, "B"))", [fout, 2], f.b))
                }
            }
            writeSafetensors(path + "/adapter_model.safetensors", tensors)
            return path
        }

        static func runChain(_ model: CoreModel, _ adapters: [CoreAdapter], ids: [UInt8]?) throws -> [Float] {
            let s = try CoreSession(model: model)
            try s.setAdapters(adapters.map { ($0, 1) })
            return try s.run(["x": HostTensor(x, shape: [tokens, 4])], modalities: ids)["y"]!.floats()
        }

        static func row(_ y: [Float], _ t: Int) -> [Float] { Array(y[(t * 3)..<(t * 3 + 3)]) }

        static func hardConfig(_ groups: String) -> String {
            #"{"peft_type": "GRAFT_MODALITY_GATE", "r": 2, "lora_alpha": 2, "num_experts": "# + "\(groups.filter { $0 == "[" }.count - 1)" + #", "expert_modalities": "# + groups + "}"
        }

        /// Tokens of other modalities (and of an id no expert serves) keep the base value at every
        /// gated site exactly; image tokens do not.
        @Test func otherModalitiesKeepBaseValuesAtEverySite() throws {
            let dir = TempDir()
            defer { dir.cleanup() }
            let model = try Self.chain(in: dir)
            let path = try Self.chainAdapter(dir, "image", Self.hardConfig("[[1]]"), experts: [0]) { "experts.\($0).lora_\($1).weight" }
            let adapter = try PluginRegistry.loadAdapter(model: model, path: path)
            let gated = try Self.runChain(model, [adapter], ids: Self.chainIDs)
            let base = try Self.runChain(model, [], ids: nil)
            for t in 0..<Self.tokens {
                if Self.chainIDs[t] == 1 {
                    #expect(zip(Self.row(gated, t), Self.row(base, t)).contains { abs($0 - $1) > 1e-3 }, "image token \(t) must change")
                } else {
                    #expect(Self.row(gated, t) == Self.row(base, t), "token \(t) (modality \(Self.chainIDs[t])) must keep the base value")
                }
            }
        }

        /// Hard gates over modalities = each modality's LoRA on its own tokens, at the site level.
        @Test func hardGatesEqualPerModalityLoRAAtSites() throws {
            let dir = TempDir()
            defer { dir.cleanup() }
            let model = try Self.chain(in: dir)
            let gate = try PluginRegistry.loadAdapter(model: model, path: try Self.chainAdapter(dir, "gate", Self.hardConfig("[[0], [1], [2]]"), experts: [0, 1, 2]) { "experts.\($0).lora_\($1).weight" })
            let loras = try (0..<3).map { m in
                try PluginRegistry.loadAdapter(model: model, path: try Self.chainAdapter(dir, "lora\(m)", #"{"peft_type": "LORA", "r": 2, "lora_alpha": 2, "graft_modalities": [\#(m)]}"#, experts: [m]) { _, w in "lora_\(w).weight" })
            }
            let a = try Self.runChain(model, [gate], ids: Self.chainIDs), b = try Self.runChain(model, loras, ids: Self.chainIDs)
            #expect(zip(a, b).allSatisfy { abs($0 - $1) <= 1e-6 }, "\(a) vs \(b)")
            // By hand at the first site for the image token 1: h = x W1 + s B_1 A_1 x.
            let base = try Self.runChain(model, [], ids: nil)
            #expect(Self.row(a, 4) == Self.row(base, 4) && Self.row(a, 5) == Self.row(base, 5), "ids 9 and 40 are served by no expert")
        }

        /// Routing within modality groups needs ids of the right length; masks that leave a token
        /// no expert of its group are an error.
        @Test func routedGroupsNeedIdsAndSatisfiableMasks() throws {
            let model = try CoreModel(path: "\(fixturesRoot)/bert_dynamo/model.onnx")
            let moma = try Self.load(model, "mg_moma_top1")
            #expect(moma.routers.count == 4 && moma.routers.allSatisfy { $0.expertModalities == [1, 1, 2, 2] })
            _ = expectError(.invalidArgument, containing: ["routes tokens within modality groups", "modality id per token"]) { _ = try Self.run(model, [moma], ids: nil) }
            _ = expectError(.shapeMismatch, containing: ["modality ids cover 3 tokens", "sees 14 rows"]) { _ = try Self.run(model, [moma], ids: [0, 1, 0]) }
            let text = RoutingControl()
            try text.setMask(moma, router: 0, mode: .allow, mask: [true, true, false, false])
            let session = try CoreSession(model: model)
            try session.setAdapters([(moma, 1)])
            _ = expectError(.invalidArgument, containing: ["leave token 2 no expert among those its modality may use"]) {
                _ = try session.run(try Self.inputs(model), modalities: try Self.ids("modality_gate/ids.npy"), routing: text)
            }
            // The same mask on a text-only request is fine, and the record shows only experts 0, 1.
            text.record = RoutingRecord()
            _ = try session.run(try Self.inputs(model), modalities: [UInt8](repeating: 0, count: 14), routing: text)
            let w = text.record!.entries[0].weights.floats()
            #expect((0..<14).allSatisfy { t in w[t * 4 + 2] == 0 && w[t * 4 + 3] == 0 && abs(w[t * 4] + w[t * 4 + 1] - 1) < 1e-6 })
        }

        static let badConfigs: [(String, GraftError.Code, [String])] = {
            func c(_ body: String) -> String { #"{"peft_type": "GRAFT_MODALITY_GATE", "r": 4, "lora_alpha": 8, "# + body + "}" }
            let router = #""router": {"gate": "topk", "top_k": 1, "renormalize": true, "bias": true}"#
            return [
                (c(#""num_experts": 4, "# + router), .invalidData, ["no \"expert_modalities\""]),
                (c(#""num_experts": 4, "expert_modalities": [[0], [0], [1]], "# + router), .invalidData, ["\"expert_modalities\" must be a list of num_experts (4) lists"]),
                (c(#""num_experts": 4, "expert_modalities": [[0], [0], [1], []], "# + router), .invalidData, ["\"expert_modalities[3]\" must be a non-empty list"]),
                (c(#""num_experts": 4, "expert_modalities": [[0], [0], [1], [32]], "# + router), .invalidData, ["\"expert_modalities[3]\" must be an integer in 0...31", "(32)"]),
                (c(#""num_experts": 4, "expert_modalities": [[0], [0], [1], [1, 1]], "# + router), .invalidData, ["lists modality 1 twice"]),
                (c(#""num_experts": 4, "expert_modalities": [[0], [0], [1], ["image"]], "# + router), .invalidData, ["must be an integer in 0...31", "a string"]),
                (c(#""num_experts": 4, "expert_modalities": [[0], [0], [1], [1]]"#), .invalidData, [".router.", "but adapter_config.json has no \"router\""]),
                (c(#""num_experts": 4, "expert_modalities": [[0], [0], [1], [1]], "router": {"gate": "topk", "top_k": 5, "renormalize": true, "bias": true}"#), .invalidData, ["top_k is 5, more than num_experts (4)"]),
                (c(#""num_experts": 4, "expert_modalities": [[0], [0], [1], [1]], "router": {"gate": "softmax", "bias": true, "noise": 1}"#), .invalidData, ["unknown key \"noise\""]),
                (c(#""num_experts": 4, "expert_modalities": [[0], [0], [1], [1]], "router": {"gate": "softmax", "bias": false}"#), .invalidData, ["does not set router.bias to true"]),
                (c(#""num_experts": 4, "expert_modalities": [[0], [0], [1], [1]], "graft_modalities": [1], "# + router), .unsupported, ["graft_modalities"]),
                (c(#""num_experts": 3, "expert_modalities": [[0], [0], [1]], "# + router), .invalidData, ["expert 3", "num_experts 3"]),
            ]
        }()

        @Test func badConfigsAreClearErrors() throws {
            let dir = TempDir()
            defer { dir.cleanup() }
            let model = try CoreModel(path: "\(fixturesRoot)/bert_dynamo/model.onnx")
            for (i, bad) in Self.badConfigs.enumerated() {
                let path = dir.path + "/bad\(i)"
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
                try bad.0.write(toFile: path + "/adapter_config.json", atomically: true, encoding: .utf8)
                try FileManager.default.copyItem(atPath: Self.root + "/mg_moma_top1/adapter_model.safetensors", toPath: path + "/adapter_model.safetensors")
                let e = expectError(bad.1, containing: bad.2) { _ = try PluginRegistry.loadAdapter(model: model, path: path) }
                #expect(e?.code == bad.1, "\(bad.0): \(e?.message ?? "accepted")")
            }
            // A routed config over hard-gate weights (no router.weight).
            let path = dir.path + "/norouter"
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            try #"{"peft_type": "GRAFT_MODALITY_GATE", "r": 4, "lora_alpha": 8, "num_experts": 3, "expert_modalities": [[0], [1], [2]], "router": {"gate": "softmax"}}"#
                .write(toFile: path + "/adapter_config.json", atomically: true, encoding: .utf8)
            try FileManager.default.copyItem(atPath: Self.root + "/mg_hard_three/adapter_model.safetensors", toPath: path + "/adapter_model.safetensors")
            _ = expectError(.invalidData, containing: ["has a router", "router.weight"]) { _ = try PluginRegistry.loadAdapter(model: model, path: path) }
        }

        /// A router whose shape does not fit num_experts or the site: SHAPE_MISMATCH naming both.
        @Test func mismatchedRouterShapesAreClearErrors() throws {
            let dir = TempDir()
            defer { dir.cleanup() }
            let model = try Self.chain(in: dir)
            let config = #"{"peft_type": "GRAFT_MODALITY_GATE", "r": 2, "lora_alpha": 2, "num_experts": 2, "expert_modalities": [[0], [1]], "router": {"gate": "softmax"}}"#
            for (shape, fragments) in [([3, 4], ["router.weight has shape [3, 4]", "expected [2, 4]"]), ([2, 5], ["router.weight has shape [2, 5]", "in_features"])] {
                let path = try Self.chainAdapter(dir, "r\(shape[0])x\(shape[1])", config, experts: [0, 1]) { "experts.\($0).lora_\($1).weight" }
                var tensors: [(String, [Int], [Float])] = []
                for (s, (site, fin, fout)) in Self.chainSites.enumerated() {
                    tensors.append(("base_model.model.\(site).router.weight", s == 0 ? shape : [2, 4], [Float](repeating: 0.1, count: s == 0 ? shape[0] * shape[1] : 8)))
                    for e in 0..<2 {
                        let f = Self.factors(e, s, fin: fin, fout: fout)
                        tensors += [("base_model.model.\(site).experts.\(e).lora_A.weight", [2, fin], f.a), ("base_model.model.\(site).experts.\(e).lora_B.weight", [fout, 2], f.b)]
                    }
                }
                Self.writeSafetensors(path + "/adapter_model.safetensors", tensors)
                let e = expectError(.shapeMismatch, containing: fragments) { _ = try PluginRegistry.loadAdapter(model: model, path: path) }
                #expect(e?.code == .shapeMismatch)
            }
            // A valid routed chain adapter loads and, without ids, refuses to run.
            let path = try Self.chainAdapter(dir, "ok", config, experts: [0, 1]) { "experts.\($0).lora_\($1).weight" }
            var tensors: [(String, [Int], [Float])] = []
            for (s, (site, fin, fout)) in Self.chainSites.enumerated() {
                tensors.append(("base_model.model.\(site).router.weight", [2, fin], [Float](repeating: 0.1, count: 2 * fin)))
                for e in 0..<2 {
                    let f = Self.factors(e, s, fin: fin, fout: fout)
                    tensors += [("base_model.model.\(site).experts.\(e).lora_A.weight", [2, fin], f.a), ("base_model.model.\(site).experts.\(e).lora_B.weight", [fout, 2], f.b)]
                }
            }
            Self.writeSafetensors(path + "/adapter_model.safetensors", tensors)
            let ok = try PluginRegistry.loadAdapter(model: model, path: path)
            _ = expectError(.invalidArgument, containing: ["modality id per token"]) { _ = try Self.runChain(model, [ok], ids: nil) }
            // Ids 9 and 40 leave their tokens on the base model through the routed path too.
            let routed = try Self.runChain(model, [ok], ids: Self.chainIDs), base = try Self.runChain(model, [], ids: nil)
            #expect(Self.row(routed, 4) == Self.row(base, 4) && Self.row(routed, 5) == Self.row(base, 5))
            #expect(Self.row(routed, 0) != Self.row(base, 0))
        }
    }
}

// Tests of the adapter plugins (Plugins/LoRA, Plugins/examples/ia3, Plugins/examples/minimal)
// through their real shared objects and the fake host of FakeHost.swift. Needs the plugin
// products built first (`swift build`; scripts/test.sh does it), found beside the test binary.
import CGraftPlugin
import Foundation
import Testing

/// The linear layers of the bert fixture (hidden 64, intermediate 128, 2 layers).
let bertSites: [Site] = (0..<2).flatMap { l -> [Site] in
    let p = "encoder.layer.\(l)."
    return [
        Site(name: p + "attention.self.query", inFeatures: 64, outFeatures: 64),
        Site(name: p + "attention.self.key", inFeatures: 64, outFeatures: 64),
        Site(name: p + "attention.self.value", inFeatures: 64, outFeatures: 64),
        Site(name: p + "attention.output.dense", inFeatures: 64, outFeatures: 64),
        Site(name: p + "intermediate.dense", inFeatures: 64, outFeatures: 128),
        Site(name: p + "output.dense", inFeatures: 128, outFeatures: 64),
    ]
} + [Site(name: "pooler.dense", inFeatures: 64, outFeatures: 64)]

/// The attention layers of the llama fixture (hidden 64, 2 KV heads of 16).
let llamaSites: [Site] = (0..<2).flatMap { l -> [Site] in
    let p = "model.layers.\(l).self_attn."
    return [
        Site(name: p + "q_proj", inFeatures: 64, outFeatures: 64),
        Site(name: p + "k_proj", inFeatures: 64, outFeatures: 32),
        Site(name: p + "v_proj", inFeatures: 64, outFeatures: 32),
        Site(name: p + "o_proj", inFeatures: 64, outFeatures: 64),
    ]
}

/// The fixtures' manifest (made by PyTorch + PEFT): what PEFT resolved per module.
struct Manifest {
    let adapters: [[String: Any]]

    init() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Paths.adapters + "/manifest.json"))
        adapters = (try JSONSerialization.jsonObject(with: data) as? [String: Any])?["adapters"] as? [[String: Any]] ?? []
    }

    func resolved(_ model: String, _ name: String) -> [[String: Any]] {
        adapters.first { $0["model"] as? String == model && $0["name"] as? String == name }?["resolved_modules"] as? [[String: Any]] ?? []
    }
}

/// Shared objects are opened once (they are never unloaded).
let loraPlugin = Result { try LoadedPlugin("GraftPluginLoRA") }
let ia3Plugin = Result { try LoadedPlugin("GraftPluginIA3") }
let minimalPlugin = Result { try LoadedPlugin("GraftPluginMinimal") }

/// A copy of a fixture adapter directory, with its config replaced when `config` is given.
func copyOfFixture(_ relative: String, config: String? = nil, dropping: [String] = []) throws -> String {
    let source = Paths.adapters + "/" + relative
    let dir = try temporaryDirectory((relative as NSString).lastPathComponent)
    for file in try FileManager.default.contentsOfDirectory(atPath: source) where !dropping.contains(file) {
        try FileManager.default.copyItem(atPath: source + "/" + file, toPath: dir + "/" + file)
    }
    if let config { try config.write(toFile: dir + "/adapter_config.json", atomically: true, encoding: .utf8) }
    return dir
}

/// Hostile adapter_config.json texts: none may crash a plugin, and none may load.
let hostileConfigs: [String] = [
    "", "{", "}", "[]", "null", "\"LORA\"", "{\"peft_type\": }", "{\"peft_type\": \"LORA\"",
    "{\"peft_type\": \"LORA\", \"r\": \"8\"}", "{\"peft_type\": \"LORA\", \"r\": -1}", "{\"peft_type\": \"LORA\", \"r\": 1e400}",
    "{\"peft_type\": \"LORA\", \"r\": 8.5}", "{\"peft_type\": \"LORA\", \"lora_alpha\": \"x\"}",
    "{\"peft_type\": \"LORA\", \"rank_pattern\": [1]}", "{\"peft_type\": \"LORA\", \"rank_pattern\": {\"q\": \"x\"}}",
    "{\"peft_type\": \"LORA\", \"alpha_pattern\": {\"(\": 3}}", "{\"peft_type\": \"LORA\", \"target_modules\": 5}",
    "{\"peft_type\": \"LORA\", \"target_modules\": [1, 2]}", "{\"peft_type\": \"LORA\", \"use_rslora\": \"yes\"}",
    "{\"peft_type\": \"IA3\", \"target_modules\": [\"key\"], \"feedforward_modules\": [\"key\"] \"x\": 1}",
    "{\"peft_type\": \"IA3\", \"target_modules\": [\"\\ud800\"], \"feedforward_modules\": 7}",
    "{\"peft_type\": \"IA3\", \"target_modules\": \"(key|value)\"}",
    "{\"peft_type\": \"\\u0000\"}", "{\"a\": \"\u{01}\"}", "{\"peft_type\": \"LORA\"}  trailing",
    String(repeating: "[", count: 100_000), String(repeating: "{\"a\":", count: 10_000) + "1" + String(repeating: "}", count: 10_000),
    "{\"peft_type\": \"IA3\", \"target_modules\": [" + String(repeating: "\"x\",", count: 10_000) + "\"y\"]}",
    "{\"peft_type\": \"IA3\", \"target_modules\": [\"" + String(repeating: "a", count: 5000) + "\"]}",
    "\u{FEFF}{\"peft_type\": \"LORA\"}", "{\"peft_type\": \"LORA\", \"r\": 0}", "{\"peft_type\": \"LORA\", \"r\": -0.0e-1}",
]

@Suite("Adapter plugins with a fake host", .serialized)
struct PluginTests {
    // MARK: LoRA

    @Test func loraEntryAndClaims() throws {
        let lora = try loraPlugin.get()
        #expect(lora.table.pointee.abi_version == UInt32(GRAFT_PLUGIN_ABI_MAJOR) << 16 | UInt32(GRAFT_PLUGIN_ABI_MINOR))
        #expect(lora.table.pointee.struct_size == UInt32(MemoryLayout<graft_plugin>.size))
        #expect(String(cString: lora.table.pointee.name) == "lora")
        #expect(lora.claims(Paths.adapters + "/bert/lora_qv_r8") == 1)
        #expect(lora.claims(Paths.adapters + "/bert/rslora_r16/") == 1)
        #expect(lora.claims(Paths.adapters + "/bert/ia3") == 0)
        #expect(lora.claims(Paths.adapters + "/bert/lora_qv_r8/adapter_config.json") == 0)
        #expect(lora.claims("/nonexistent") == 0)
        #expect(lora.claims(Paths.adapters) == 0)
    }

    @Test func entryRefusesAnotherMajor() throws {
        let lora = try loraPlugin.get()
        let ia3 = try ia3Plugin.get()
        var other = makeHostAPI(abiVersion: 2 << 16)
        hostLog = []
        #expect(lora.entry(&other) == nil)
        #expect(hostLog.last?.contains("host has 2.0") == true)
        #expect(ia3.entry(&other) == nil)
        var small = makeHostAPI()
        small.struct_size = 16
        #expect(lora.entry(&small) == nil)
        #expect(ia3.entry(&small) == nil)
    }

    @Test(arguments: [("bert", "lora_qv_r8"), ("bert", "rslora_r16"), ("llama", "lora_qvo_r8")])
    func loraFixtureTermsMatchPEFT(model: String, name: String) throws {
        let lora = try loraPlugin.get()
        let path = Paths.adapters + "/\(model)/\(name)"
        let (status, builder, error) = lora.load(path, sites: model == "bert" ? bertSites : llamaSites)
        #expect(status == GRAFT_PLUGIN_OK, "\(error)")
        #expect(builder.name == name)
        let expected = try Manifest().resolved(model, name)
        #expect(!expected.isEmpty)
        #expect(builder.terms.count == expected.count)
        let file = try #require(TestSafetensors(path: path + "/adapter_model.safetensors"))
        for module in expected {
            let moduleName = module["module"] as! String
            let term = try #require(builder.terms.first { builder.sites[$0.site].name == moduleName }, "no term at \(moduleName)")
            #expect(term.rank == module["r"] as! Int, "\(moduleName)")
            #expect(abs(Double(term.scale) - (module["scaling"] as! Double)) < 1e-6, "\(moduleName)")
            #expect(term.activation == GRAFT_ACTIVATION_IDENTITY)
            #expect(term.a == file.values("base_model.model.\(moduleName).lora_A.weight"))
            #expect(term.b == file.values("base_model.model.\(moduleName).lora_B.weight"))
        }
    }

    @Test func loraRefusals() throws {
        let lora = try loraPlugin.get()
        let base = try String(contentsOfFile: Paths.adapters + "/bert/lora_qv_r8/adapter_config.json", encoding: .utf8)
        func edited(_ key: String, _ json: String) -> String {
            // The fixture's config with one top-level value replaced (key order is not kept).
            var object = try! JSONSerialization.jsonObject(with: Data(base.utf8)) as! [String: Any]
            object[key] = try! JSONSerialization.jsonObject(with: Data(json.utf8), options: .fragmentsAllowed)
            return String(decoding: try! JSONSerialization.data(withJSONObject: object), as: UTF8.self)
        }
        let cases: [(config: String, status: Int32, says: String)] = [
            (edited("use_dora", "true"), GRAFT_PLUGIN_UNSUPPORTED, "DoRA"),
            (edited("bias", "\"all\""), GRAFT_PLUGIN_UNSUPPORTED, "\"bias\": \"all\""),
            (edited("bias", "\"lora_only\""), GRAFT_PLUGIN_UNSUPPORTED, "lora_only"),
            (edited("modules_to_save", "[\"classifier\"]"), GRAFT_PLUGIN_UNSUPPORTED, "modules_to_save"),
            (edited("r", "\"8\""), GRAFT_PLUGIN_INVALID_DATA, "\"r\" must be a positive integer, got a string"),
            (edited("lora_alpha", "null"), GRAFT_PLUGIN_OK, ""),  // PEFT's default alpha 8
            (edited("lora_alpha", "1e31"), GRAFT_PLUGIN_INVALID_DATA, "\"lora_alpha\" must be a finite number"),  // |alpha| ≤ 1e30, as every plugin
            (edited("r", "4"), GRAFT_PLUGIN_SHAPE_MISMATCH, "rank 4"),
            (edited("rank_pattern", "{\"value\": 4}"), GRAFT_PLUGIN_SHAPE_MISMATCH, "self.value.lora_A.weight"),
            (edited("target_modules", "[\"query\"]"), GRAFT_PLUGIN_INVALID_DATA, "target_modules"),
            (edited("target_modules", "\".*\\\\.(query|value)\""), GRAFT_PLUGIN_OK, ""),
            (edited("target_modules", "\".*\\\\.query\""), GRAFT_PLUGIN_INVALID_DATA, "regular expression"),
            (edited("peft_type", "\"LOHA\""), GRAFT_PLUGIN_UNSUPPORTED, "\"LOHA\""),
            (edited("peft_type", "7"), GRAFT_PLUGIN_INVALID_DATA, "peft_type"),
            ("[1, 2]", GRAFT_PLUGIN_INVALID_DATA, "JSON object"),
            ("{\"peft_type\": \"LORA\", ", GRAFT_PLUGIN_INVALID_DATA, "not valid JSON"),
        ]
        for c in cases {
            let dir = try copyOfFixture("bert/lora_qv_r8", config: c.config)
            let (status, builder, error) = lora.load(dir, sites: bertSites)
            #expect(status == c.status, "\(c.says): \(error)")
            #expect(c.says.isEmpty || error.contains(c.says), "\(error)")
            if status != GRAFT_PLUGIN_OK { #expect(builder.terms.isEmpty, "terms added before a refusal") }
        }
    }

    @Test func loraDefaultsAlphaLikePEFT() throws {
        let lora = try loraPlugin.get()
        let dir = try copyOfFixture("bert/lora_qv_r8", config: "{\"peft_type\": \"LORA\", \"r\": 8}")
        let (status, builder, error) = lora.load(dir, sites: bertSites)
        #expect(status == GRAFT_PLUGIN_OK, "\(error)")
        #expect(builder.terms.allSatisfy { $0.scale == 1 })  // lora_alpha defaults to 8: 8/8
    }

    @Test func loraFiles() throws {
        let lora = try loraPlugin.get()
        // Only a pickle.
        let pickle = try copyOfFixture("bert/lora_qv_r8", dropping: ["adapter_model.safetensors"])
        try Data([0x80, 0x02]).write(to: URL(fileURLWithPath: pickle + "/adapter_model.bin"))
        var (status, _, error) = lora.load(pickle, sites: bertSites)
        #expect(status == GRAFT_PLUGIN_UNSUPPORTED)
        #expect(error.contains("adapter_model.bin is a Python pickle, which can execute code"))
        #expect(error.contains("safetensors.torch"))
        #expect(lora.claims(pickle) == 1)  // it is ours; load explains why it will not read it
        // No weights at all.
        let empty = try copyOfFixture("bert/lora_qv_r8", dropping: ["adapter_model.safetensors"])
        (status, _, error) = lora.load(empty, sites: bertSites)
        #expect(status == GRAFT_PLUGIN_IO)
        #expect(error.contains("no adapter_model.safetensors"))
        // Not a directory.
        (status, _, error) = lora.load(Paths.adapters + "/manifest.json", sites: bertSites)
        #expect(status == GRAFT_PLUGIN_IO)
        // A corrupt safetensors file: the host's message stays.
        let corrupt = try copyOfFixture("bert/lora_qv_r8")
        try Data(repeating: 0xFF, count: 16).write(to: URL(fileURLWithPath: corrupt + "/adapter_model.safetensors"))
        (status, _, error) = lora.load(corrupt, sites: bertSites)
        #expect(status == GRAFT_PLUGIN_INVALID_DATA)
        #expect(error.hasPrefix("fake host:"))
    }

    @Test func loraSitesAndShapes() throws {
        let lora = try loraPlugin.get()
        let path = Paths.adapters + "/bert/lora_qv_r8"
        // Unknown module: the host's find_site message (closest sites) is what the caller sees.
        let noValue = bertSites.filter { !$0.name.hasSuffix("value") }
        var (status, builder, error) = lora.load(path, sites: noValue)
        #expect(status == GRAFT_PLUGIN_INVALID_ARGUMENT)
        #expect(error.contains("closest"))
        #expect(builder.terms.isEmpty)
        // A site whose features differ: SHAPE_MISMATCH naming the key and the site.
        let narrow = bertSites.map { $0.name.hasSuffix("layer.1.attention.self.query") ? Site(name: $0.name, inFeatures: 32, outFeatures: 64) : $0 }
        (status, builder, error) = lora.load(path, sites: narrow)
        #expect(status == GRAFT_PLUGIN_SHAPE_MISMATCH)
        #expect(error.contains("base_model.model.encoder.layer.1.attention.self.query.lora_A.weight has shape [8, 64]"), "\(error)")
        #expect(error.contains("in_features 32"))
        let tall = bertSites.map { $0.name.hasSuffix("layer.0.attention.self.value") ? Site(name: $0.name, inFeatures: 64, outFeatures: 65) : $0 }
        (status, builder, error) = lora.load(path, sites: tall)
        #expect(status == GRAFT_PLUGIN_SHAPE_MISMATCH)
        #expect(error.contains("value.lora_B.weight has shape [64, 8]"), "\(error)")
    }

    @Test func loraPatternsFirstMatchInFileOrderAndRSLoRA() throws {
        let lora = try loraPlugin.get()
        let dir = try temporaryDirectory("patterns")
        let sites = [Site(name: "blocks.0.attn.q", inFeatures: 4, outFeatures: 3),
                     Site(name: "blocks.1.attn.q", inFeatures: 4, outFeatures: 3),
                     Site(name: "blocks.1.mlp.fc", inFeatures: 4, outFeatures: 5)]
        // "q" and "1.attn.q" both match blocks.1.attn.q: PEFT takes the first key in file order.
        try """
        {"peft_type": "LORA", "r": 2, "lora_alpha": 6, "use_rslora": true,
         "rank_pattern": {"blocks\\\\.1\\\\.attn\\\\.q": 1, "q": 3},
         "alpha_pattern": {"fc": 10}, "target_modules": ["q", "fc"]}
        """.write(toFile: dir + "/adapter_config.json", atomically: true, encoding: .utf8)
        func ramp(_ n: Int, _ k: Float) -> [Float] { (0..<n).map { Float($0) * k } }
        try writeSafetensors(dir + "/adapter_model.safetensors", [
            ("base_model.model.blocks.0.attn.q.lora_A.weight", [3, 4], ramp(12, 1)),
            ("base_model.model.blocks.0.attn.q.lora_B.weight", [3, 3], ramp(9, 2)),
            ("base_model.model.blocks.1.attn.q.lora_A.weight", [1, 4], ramp(4, 3)),
            ("base_model.model.blocks.1.attn.q.lora_B.weight", [3, 1], ramp(3, 4)),
            ("base_model.model.blocks.1.mlp.fc.lora_A.weight", [2, 4], ramp(8, 5)),
            ("base_model.model.blocks.1.mlp.fc.lora_B.weight", [5, 2], ramp(10, 6)),
        ])
        let (status, builder, error) = lora.load(dir, sites: sites)
        #expect(status == GRAFT_PLUGIN_OK, "\(error)")
        #expect(builder.terms.map(\.site) == [0, 1, 2])
        #expect(builder.terms.map(\.rank) == [3, 1, 2])
        let expected: [Float] = [Float(6 / 3.0.squareRoot()), 6, Float(10 / 2.0.squareRoot())]
        for (term, scale) in zip(builder.terms, expected) { #expect(abs(term.scale - scale) < 1e-6) }
        #expect(builder.terms[2].b == ramp(10, 6))
    }

    @Test func loraRefusesEmbeddingDoRAAndStrayKeys() throws {
        let lora = try loraPlugin.get()
        let cases: [(key: String, shape: [Int], says: String)] = [
            ("base_model.model.embeddings.word_embeddings.lora_embedding_A", [8, 100], "embedding"),
            ("base_model.model.encoder.layer.0.attention.self.query.lora_magnitude_vector", [64], "DoRA"),
            ("base_model.model.encoder.layer.0.attention.self.query.lora_B.bias", [64], "bias"),
            ("base_model.model.classifier.weight", [2, 64], "reads only"),
            ("encoder.layer.0.attention.self.query.lora_A.weight", [8, 64], "base_model.model."),
        ]
        for c in cases {
            let dir = try temporaryDirectory("stray")
            try "{\"peft_type\": \"LORA\", \"r\": 8}".write(toFile: dir + "/adapter_config.json", atomically: true, encoding: .utf8)
            try writeSafetensors(dir + "/adapter_model.safetensors", [
                ("base_model.model.encoder.layer.0.attention.self.query.lora_A.weight", [8, 64], [Float](repeating: 1, count: 512)),
                (c.key, c.shape, [Float](repeating: 1, count: c.shape.reduce(1, *))),
            ])
            let (status, _, error) = lora.load(dir, sites: bertSites)
            #expect(status != GRAFT_PLUGIN_OK)
            #expect(c.says.isEmpty || error.contains(c.says), "\(error)")
        }
        // lora_A without lora_B
        let dir = try temporaryDirectory("half")
        try "{\"peft_type\": \"LORA\", \"r\": 8}".write(toFile: dir + "/adapter_config.json", atomically: true, encoding: .utf8)
        try writeSafetensors(dir + "/adapter_model.safetensors", [
            ("base_model.model.encoder.layer.0.attention.self.query.lora_A.weight", [8, 64], [Float](repeating: 1, count: 512)),
        ])
        let (status, _, error) = lora.load(dir, sites: bertSites)
        #expect(status == GRAFT_PLUGIN_INVALID_DATA)
        #expect(error.contains("but no base_model.model.encoder.layer.0.attention.self.query.lora_B.weight"))
    }

    @Test func hostileConfigsNeverCrashOrLoad() throws {
        let lora = try loraPlugin.get()
        let ia3 = try ia3Plugin.get()
        for (i, text) in hostileConfigs.enumerated() {
            let dir = try copyOfFixture("bert/lora_qv_r8", config: text)
            #expect(lora.claims(dir) == 0 || text.contains("LORA"), "case \(i)")
            #expect(ia3.claims(dir) == 0 || text.contains("IA3"), "case \(i)")
            let l = lora.load(dir, sites: bertSites)
            #expect(l.status != GRAFT_PLUGIN_OK, "lora, case \(i)")
            #expect(!l.error.isEmpty, "lora, case \(i)")
            let a = ia3.load(dir, sites: bertSites)
            #expect(a.status != GRAFT_PLUGIN_OK, "ia3, case \(i)")
            #expect(!a.error.isEmpty, "ia3, case \(i)")
        }
    }

    // MARK: (IA)³

    @Test func ia3FixtureScalesMatchPEFT() throws {
        let ia3 = try ia3Plugin.get()
        let path = Paths.adapters + "/bert/ia3"
        #expect(String(cString: ia3.table.pointee.name) == "ia3")
        #expect(ia3.claims(path) == 1)
        #expect(ia3.claims(Paths.adapters + "/bert/lora_qv_r8") == 0)
        let (status, builder, error) = ia3.load(path, sites: bertSites)
        #expect(status == GRAFT_PLUGIN_OK, "\(error)")
        #expect(builder.name == "ia3")
        let expected = try Manifest().resolved("bert", "ia3")
        #expect(builder.scales.count == expected.count)
        let file = try #require(TestSafetensors(path: path + "/adapter_model.safetensors"))
        for module in expected {
            let name = module["module"] as! String
            let scale = try #require(builder.scales.first { builder.sites[$0.site].name == name }, "no scale at \(name)")
            #expect(scale.which == ((module["scales"] as! String) == "input" ? 0 : 1), "\(name)")
            #expect(scale.values == file.values("base_model.model.\(name).ia3_l"))
        }
        #expect(builder.terms.isEmpty)
    }

    @Test func ia3Refusals() throws {
        let ia3 = try ia3Plugin.get()
        let cases: [(config: String, status: Int32, says: String)] = [
            ("{\"peft_type\": \"IA3\", \"target_modules\": \".*(key|value)\", \"feedforward_modules\": []}", GRAFT_PLUGIN_UNSUPPORTED, "list form"),
            ("{\"peft_type\": \"IA3\", \"target_modules\": [\"key\", \"value\", \"output.dense\"], \"feedforward_modules\": \"output.*\"}", GRAFT_PLUGIN_UNSUPPORTED, "one regular expression"),
            ("{\"peft_type\": \"IA3\", \"target_modules\": [\"key\"], \"feedforward_modules\": []}", GRAFT_PLUGIN_INVALID_DATA, "target_modules"),
            // output.dense not feedforward: its [1, in] vectors no longer fit the [out, 1] shape.
            ("{\"peft_type\": \"IA3\", \"target_modules\": [\"key\", \"value\", \"output.dense\"], \"feedforward_modules\": []}", GRAFT_PLUGIN_SHAPE_MISMATCH, "expected [out_features, 1]"),
            ("{\"peft_type\": \"IA3\", \"target_modules\": [\"key\", \"value\", \"output.dense\"], \"modules_to_save\": [\"classifier\"]}", GRAFT_PLUGIN_UNSUPPORTED, "modules_to_save"),
            ("{\"peft_type\": \"LORA\"}", GRAFT_PLUGIN_UNSUPPORTED, "reads only \"IA3\""),
            ("{\"peft_type\": \"IA3\", \"target_modules\": [\"key\", \"value\", \"output.dense\"], \"feedforward_modules\": [\"output.dense\"], \"modules_to_save\": null}", GRAFT_PLUGIN_OK, ""),
        ]
        for c in cases {
            let dir = try copyOfFixture("bert/ia3", config: c.config)
            let (status, builder, error) = ia3.load(dir, sites: bertSites)
            #expect(status == c.status, "\(c.says): \(error)")
            #expect(c.says.isEmpty || error.contains(c.says), "\(error)")
            if status != GRAFT_PLUGIN_OK { #expect(builder.scales.isEmpty) }
        }
        // Sites: unknown module, and a mismatched size.
        var (status, _, error) = ia3.load(Paths.adapters + "/bert/ia3", sites: bertSites.filter { !$0.name.hasSuffix("key") })
        #expect(status == GRAFT_PLUGIN_INVALID_ARGUMENT)
        #expect(error.contains("closest"))
        let wide = bertSites.map { $0.name == "encoder.layer.1.output.dense" ? Site(name: $0.name, inFeatures: 96, outFeatures: 64) : $0 }
        (status, _, error) = ia3.load(Paths.adapters + "/bert/ia3", sites: wide)
        #expect(status == GRAFT_PLUGIN_SHAPE_MISMATCH)
        #expect(error.contains("base_model.model.encoder.layer.1.output.dense.ia3_l has shape [1, 128]; expected [1, in_features]"), "\(error)")
        // Only a pickle.
        let pickle = try copyOfFixture("bert/ia3", dropping: ["adapter_model.safetensors"])
        try Data([0x80, 0x02]).write(to: URL(fileURLWithPath: pickle + "/adapter_model.bin"))
        (status, _, error) = ia3.load(pickle, sites: bertSites)
        #expect(status == GRAFT_PLUGIN_UNSUPPORTED)
        #expect(error.contains("adapter_model.bin is a Python pickle, which can execute code"))
        // A stray tensor.
        let stray = try copyOfFixture("bert/ia3")
        try writeSafetensors(stray + "/adapter_model.safetensors", [("base_model.model.encoder.layer.0.attention.self.key.lora_A.weight", [1, 64], [Float](repeating: 1, count: 64))])
        (status, _, error) = ia3.load(stray, sites: bertSites)
        #expect(status == GRAFT_PLUGIN_UNSUPPORTED)
        #expect(error.contains("reads only base_model.model.<module>.ia3_l"))
    }

    // MARK: minimal.c

    @Test func minimalPluginAddsItsRankOneTerm() throws {
        let minimal = try minimalPlugin.get()
        let dir = try temporaryDirectory("minimal")
        #expect(minimal.claims(dir) == 0)
        try "{ \"site\": \"layer.1.attention.self.query\", \"scale\": 0.5 }".write(toFile: dir + "/minimal.json", atomically: true, encoding: .utf8)
        #expect(minimal.claims(dir) == 1)
        let (status, builder, error) = minimal.load(dir, sites: bertSites)
        #expect(status == GRAFT_PLUGIN_OK, "\(error)")
        #expect(builder.terms.count == 1)
        #expect(builder.sites[builder.terms[0].site].name == "encoder.layer.1.attention.self.query")
        #expect(builder.terms[0].rank == 1 && builder.terms[0].scale == 0.5)
        #expect(builder.terms[0].a == [Float](repeating: 1 / 64, count: 64))
        #expect(builder.terms[0].b == [Float](repeating: 1, count: 64))
        try "{ \"site\": \"nowhere\" }".write(toFile: dir + "/minimal.json", atomically: true, encoding: .utf8)
        #expect(minimal.load(dir, sites: bertSites).status == GRAFT_PLUGIN_INVALID_ARGUMENT)
    }
}

@Suite("Plugin files")
struct PluginFileTests {
    /// docs/PLUGINS.md shows the complete minimal plugin: it must be minimal.c, verbatim.
    @Test func docsShowMinimalC() throws {
        let doc = try String(contentsOfFile: Paths.root + "/docs/PLUGINS.md", encoding: .utf8)
        let source = try String(contentsOfFile: Paths.root + "/Plugins/examples/minimal/minimal.c", encoding: .utf8)
        #expect(doc.contains("```c\n" + source + "```"))
    }

    /// Each plugin exports graft_plugin_entry and nothing else.
    @Test(arguments: ["GraftPluginLoRA", "GraftPluginIA3", "GraftPluginMinimal", "GraftPluginModalityGate"])
    func exportsOnlyTheEntry(library: String) throws {
        let dir = try #require(Paths.pluginDirectory())
        let nm = Process()
        nm.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        nm.arguments = ["nm", "-D", "--defined-only", dir + "/lib\(library).so"]
        let pipe = Pipe()
        nm.standardOutput = pipe
        try nm.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        nm.waitUntilExit()
        // Global symbols have an upper-case type letter.
        let globals = output.split(separator: "\n").compactMap { line -> String? in
            let parts = line.split(separator: " ")
            guard parts.count == 3, parts[1].first?.isUppercase == true else { return nil }
            return String(parts[2])
        }
        #expect(globals == ["graft_plugin_entry"])
    }
}

import Foundation
import Testing
@testable import GraftCore

/// Per-request routing control (allow / deny / force masks, override, record) on MixLoRA's
/// block routers, against the references of make_mixlora_fixtures.py (mixlora/manifest.json
/// "controls": the plain-PyTorch formula with the control applied, the formula matching the
/// package on every uncontrolled case), on both exporters and with the tokens split over two
/// threads, to 1e-4.
extension AdapterFixtureTests.MixLoRATests {
    @Suite(.serialized) struct BlockRoutingControlTests {
        typealias M = AdapterFixtureTests.MixLoRATests

        struct Control {
            let name: String
            let inputs: String
            let controls: [Int: [String: Any]]   // layer -> kind -> experts or override path
            let logits: String
        }

        nonisolated(unsafe) static let controls: [Control] = {
            guard let data = FileManager.default.contents(atPath: M.root + "/manifest.json"),
                  let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let list = json["controls"] as? [[String: Any]] else { return [] }
            return list.compactMap { c in
                guard let n = c["name"] as? String, let i = c["inputs"] as? String,
                      let byLayer = c["controls"] as? [String: [String: Any]],
                      let o = (c["outputs"] as? [String: String])?["logits"] else { return nil }
                return Control(name: n, inputs: i, controls: Dictionary(uniqueKeysWithValues: byLayer.map { (Int($0.key)!, $0.value) }), logits: o)
            }
        }()

        /// The index of the router of the block mixture at layer `layer` (blocks are in layer order).
        static func router(_ adapter: CoreAdapter, layer: Int) throws -> Int {
            try #require(adapter.blocks.first { $0.block == layer }, "no block mixture at layer \(layer)").router
        }

        static func mask(_ experts: [Int], of e: Int) -> [Bool] { (0..<e).map { experts.contains($0) } }

        static func routing(_ c: Control, _ adapter: CoreAdapter) throws -> RoutingControl {
            let routing = RoutingControl()
            for (layer, kinds) in c.controls {
                let r = try router(adapter, layer: layer), e = adapter.routers[r].experts
                for (kind, value) in kinds {
                    if kind == "override" {
                        let w = try Npy.read(path: "\(fixturesRoot)/\(value as! String)")
                        try routing.setOverride(adapter, router: r, weights: w.floats(), tokens: w.shape[0], experts: w.shape[1])
                    } else {
                        let mode: RoutingControl.Mode = kind == "allow" ? .allow : kind == "deny" ? .deny : .force
                        try routing.setMask(adapter, router: r, mode: mode, mask: mask(value as! [Int], of: e))
                    }
                }
            }
            return routing
        }

        static func run(_ model: CoreModel, _ adapter: CoreAdapter, _ inputs: String, _ routing: RoutingControl?, threads: Int = 1) throws -> HostTensor {
            let session = try CoreSession(model: model, threads: threads)
            try session.setAdapters([(adapter, 1)])
            return try session.run(try M.inputs(model, inputs), routing: routing)["logits"]!
        }

        @Test(arguments: M.fixtures)
        func controlledBlockRoutingMatchesReference(_ fixture: String) throws {
            #expect(Self.controls.map(\.name).sorted() == ["allow_deny", "force_one", "force_two", "override"],
                    "controls in \(M.root)/manifest.json (run make_mixlora_fixtures.py)")
            let model = try CoreModel(path: "\(fixturesRoot)/\(fixture)/model.onnx")
            let adapter = try PluginRegistry.loadAdapter(model: model, path: M.adapterPath("mixlora_e4_top2"))
            let plain = try Self.run(model, adapter, Self.controls[0].inputs, nil)
            for c in Self.controls {
                let ref = try Npy.read(path: "\(fixturesRoot)/\(c.logits)")
                for threads in [1, 2] {
                    let out = try Self.run(model, adapter, c.inputs, try Self.routing(c, adapter), threads: threads)
                    let d = maxAbsDiff(out, ref)
                    #expect(d <= M.tolerance, "\(fixture) \(c.name), \(threads) thread(s): max|Δ| \(d) vs reference")
                }
                // The control is not a no-op (each reference moves the logits by >= 1e-2).
                #expect(maxAbsDiff(plain, ref) >= 1e-2, "\(fixture) \(c.name): the reference equals the uncontrolled run")
            }
        }

        /// The record holds each block router's final weights for every token: equal to the
        /// reference's, top-2 renormalised; and fed back as overrides they reproduce the run.
        @Test func recordShowsBlockRoutingAndReplays() throws {
            let model = try CoreModel(path: "\(fixturesRoot)/llama_dynamo/model.onnx")
            let adapter = try PluginRegistry.loadAdapter(model: model, path: M.adapterPath("mixlora_e4_top2"))
            let routing = RoutingControl()
            routing.record = RoutingRecord()
            let inputs = "llama_torchscript/basic/inputs"
            let out = try Self.run(model, adapter, inputs, routing)
            let entries = routing.record!.entries
            let routers = try [0, 1].map { try Self.router(adapter, layer: $0) }
            #expect(entries.map(\.router) == routers, "one record entry per block router, in layer order")
            #expect(try RoutingControl.findRouter(adapter, site: "layers.1.mlp.gate_proj") == routers[1], "a block router is named by its gate site")
            for (layer, entry) in entries.enumerated() {
                let want = try Npy.read(path: "\(M.root)/llama/refs/mixlora_e4_top2/basic/router_weights_layer\(layer).npy")
                #expect(entry.weights.shape == want.shape && entry.tokens == want.shape[0] && entry.experts == 4)
                #expect(maxAbsDiff(entry.weights, want) <= 1e-4, "layer \(layer) router weights vs reference")
                let w = entry.weights.floats(), ref = want.floats()
                #expect(zip(w, ref).allSatisfy { ($0 != 0) == ($1 != 0) }, "layer \(layer): the same experts are chosen")
                for t in 0..<entry.tokens {
                    let row = w[(t * 4)..<(t * 4 + 4)]
                    #expect(row.filter { $0 != 0 }.count == 2 && abs(row.reduce(0, +) - 1) <= 1e-6, "layer \(layer) token \(t): \(Array(row))")
                }
            }
            let replay = RoutingControl()
            for entry in entries {
                try replay.setOverride(adapter, router: entry.router, weights: entry.weights.floats(), tokens: entry.tokens, experts: entry.experts)
            }
            let d = maxAbsDiff(try Self.run(model, adapter, inputs, replay), out)
            #expect(d <= 1e-5, "the recorded weights as overrides reproduce the run: max|Δ| \(d)")
        }

        @Test func badBlockControlsAreClearErrors() throws {
            let model = try CoreModel(path: "\(fixturesRoot)/llama_dynamo/model.onnx")
            let adapter = try PluginRegistry.loadAdapter(model: model, path: M.adapterPath("mixlora_e4_top2"))
            let other = try PluginRegistry.loadAdapter(model: model, path: M.adapterPath("mixlora_e3_top1_gelu"))
            let r0 = try Self.router(adapter, layer: 0)
            // An override for another number of tokens (basic: 2 × 7 = 14 tokens).
            let o = RoutingControl()
            try o.setOverride(adapter, router: r0, weights: [Float](repeating: 0.5, count: 12), tokens: 3, experts: 4)
            _ = expectError(.shapeMismatch, containing: ["covers 3 tokens", "sees 14"]) {
                _ = try Self.run(model, adapter, "llama_torchscript/basic/inputs", o)
            }
            // A control naming a block router of an adapter the run does not use.
            let c = RoutingControl()
            try c.setMask(adapter, router: r0, mode: .allow, mask: Self.mask([0, 1], of: 4))
            _ = expectError(.invalidArgument, containing: ["router \(r0) of adapter 'mixlora_e4_top2'", "does not use"]) {
                _ = try Self.run(model, other, "llama_torchscript/basic/inputs", c)
            }
            _ = expectError(.invalidArgument, containing: ["has 3 values", "4 experts"]) {
                try c.setMask(adapter, router: r0, mode: .deny, mask: [true, false, false])
            }
        }
    }
}

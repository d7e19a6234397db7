import Foundation
import Testing
@testable import GraftCore

/// Per-request control of routed experts (RoutingControl) on moe_topk2 against the plain
/// PyTorch references of Tests/Fixtures/make_routing_fixtures.py (moe_control/cases.json, 1e-4),
/// the forced-expert equivalence, the routing record, and bad controls as clear errors.
/// Nested in AdapterFixtureTests to run serialized with the other plugin-loading suites.
extension AdapterFixtureTests {
    @Suite(.serialized) struct RoutingControlTests {
        static let root = "\(fixturesRoot)/moe_control"
        nonisolated(unsafe) static let cases: [String: Any] = {
            guard let data = FileManager.default.contents(atPath: root + "/cases.json"),
                  let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return [:] }
            return json
        }()

        static func inputs(_ model: CoreModel, _ fixture: String) throws -> [String: HostTensor] {
            var inputs: [String: HostTensor] = [:]
            for d in model.graph.inputs { inputs[d.name] = try Npy.read(path: "\(fixturesRoot)/\(fixture)/basic/inputs/\(d.name).npy") }
            return inputs
        }

        static func run(_ model: CoreModel, _ fixture: String, _ adapter: CoreAdapter, _ routing: RoutingControl?) throws -> [String: HostTensor] {
            let session = try CoreSession(model: model)
            try session.setAdapters([(adapter, 1)])
            return try session.run(try inputs(model, fixture), routing: routing)
        }

        static func maxDiff(_ a: [String: HostTensor], _ b: [String: HostTensor]) -> Float {
            a.keys.map { maxAbsDiff(a[$0]!, b[$0]!) }.max() ?? .infinity
        }

        static func mask(_ experts: [Int], of e: Int) -> [Bool] { (0..<e).map { experts.contains($0) } }

        @Test(arguments: ["bert_torchscript", "bert_dynamo"])
        func controlledRoutingMatchesPyTorch(_ fixture: String) throws {
            let all = try #require(Self.cases["cases"] as? [String: [String: Any]], "run make_routing_fixtures.py")
            #expect(all.count == 4)
            let model = try CoreModel(path: "\(fixturesRoot)/\(fixture)/model.onnx")
            let moe = try PluginRegistry.loadAdapter(model: model, path: "\(fixturesRoot)/adapters/bert/moe_topk2")
            for (name, c) in all.sorted(by: { $0.key < $1.key }) {
                let routing = RoutingControl()
                for (router, controls) in c["controls"] as! [String: [String: Any]] {
                    let r = Int(router)!
                    for (kind, value) in controls {
                        switch kind {
                        case "override":
                            let w = try Npy.read(path: "\(fixturesRoot)/\(value as! String)")
                            try routing.setOverride(moe, router: r, weights: w.floats(), tokens: w.shape[0], experts: w.shape[1])
                        default:
                            try routing.setMask(moe, router: r, mode: kind == "allow" ? .allow : kind == "deny" ? .deny : .force,
                                                mask: Self.mask(value as! [Int], of: 4))
                        }
                    }
                }
                let out = try Self.run(model, fixture, moe, routing)
                var worst: Float = 0
                for (k, path) in c["outputs"] as! [String: String] {
                    worst = max(worst, maxAbsDiff(out[k]!, try Npy.read(path: "\(fixturesRoot)/\(path)")))
                }
                #expect(worst <= AdapterFixtureTests.tolerance, "\(fixture) \(name): max|Δ| \(worst) vs PyTorch")
            }
        }

        /// Forcing expert 1 at every router is exactly expert 1's LoRA (a plain LORA directory).
        @Test func forcedSingleExpertEqualsItsLoRA() throws {
            let model = try CoreModel(path: "\(fixturesRoot)/bert_dynamo/model.onnx")
            let moe = try PluginRegistry.loadAdapter(model: model, path: "\(fixturesRoot)/adapters/bert/moe_topk2")
            let lora = try PluginRegistry.loadAdapter(model: model, path: Self.root + "/expert1_lora")
            let routing = RoutingControl()
            for r in 0..<moe.routers.count { try routing.setMask(moe, router: r, mode: .force, mask: Self.mask([1], of: 4)) }
            let forced = try Self.run(model, "bert_dynamo", moe, routing)
            let plain = try Self.run(model, "bert_dynamo", lora, nil)
            let d = Self.maxDiff(forced, plain)
            #expect(d <= 1e-5, "forced expert 1 vs its LoRA: max|Δ| \(d)")
            #expect(Self.maxDiff(forced, try Self.run(model, "bert_dynamo", moe, nil)) > 1e-3, "forcing must change the routed output")
        }

        /// The record holds every router's final weights: router 0 matches PyTorch's gates, and
        /// controls show up in it.
        @Test func recordShowsRoutingDecisions() throws {
            let model = try CoreModel(path: "\(fixturesRoot)/bert_dynamo/model.onnx")
            let moe = try PluginRegistry.loadAdapter(model: model, path: "\(fixturesRoot)/adapters/bert/moe_topk2")
            let routing = RoutingControl()
            routing.record = RoutingRecord()
            _ = try Self.run(model, "bert_dynamo", moe, routing)
            let entries = routing.record!.entries
            #expect(entries.map(\.router) == [0, 1, 2, 3])
            let want = try Npy.read(path: Self.root + "/router0_gates.npy")
            #expect(entries[0].weights.shape == want.shape && entries[0].tokens == want.shape[0] && entries[0].experts == 4)
            #expect(maxAbsDiff(entries[0].weights, want) <= 1e-4, "router 0 weights vs PyTorch")
            let chosen = entries[0].weights.floats(), ref = want.floats()
            #expect(zip(chosen, ref).allSatisfy { ($0 != 0) == ($1 != 0) }, "the same experts are chosen")
            #expect(entries.allSatisfy { e in (0..<e.tokens).allSatisfy { t in (0..<4).filter { e.weights.floats()[t * 4 + $0] != 0 }.count == 2 } })
            // With allow {0, 3} at router 0 the record shows only those experts, renormalised.
            try routing.setMask(moe, router: 0, mode: .allow, mask: Self.mask([0, 3], of: 4))
            _ = try Self.run(model, "bert_dynamo", moe, routing)
            let w = routing.record!.entries[0].weights.floats()
            #expect(routing.record!.entries.count == 4)
            for t in 0..<routing.record!.entries[0].tokens {
                #expect(w[t * 4 + 1] == 0 && w[t * 4 + 2] == 0 && abs(w[t * 4] + w[t * 4 + 3] - 1) <= 1e-6)
            }
        }

        @Test func badControlsAreClearErrors() throws {
            let model = try CoreModel(path: "\(fixturesRoot)/bert_dynamo/model.onnx")
            let moe = try PluginRegistry.loadAdapter(model: model, path: "\(fixturesRoot)/adapters/bert/moe_topk2")
            let lora = try PluginRegistry.loadAdapter(model: model, path: "\(fixturesRoot)/adapters/bert/lora_qv_r8")
            let c = RoutingControl()
            _ = expectError(.invalidArgument, containing: ["has 3 values", "4 experts"]) { try c.setMask(moe, router: 0, mode: .allow, mask: [true, true, true]) }
            _ = expectError(.invalidArgument, containing: ["names no expert"]) { try c.setMask(moe, router: 0, mode: .force, mask: Self.mask([], of: 4)) }
            _ = expectError(.invalidArgument, containing: ["deny mask", "leave at least one"]) { try c.setMask(moe, router: 0, mode: .deny, mask: Self.mask([0, 1, 2, 3], of: 4)) }
            _ = expectError(.invalidArgument, containing: ["no router 4", "4 routers"]) { try c.setMask(moe, router: 4, mode: .allow, mask: Self.mask([0], of: 4)) }
            _ = expectError(.invalidArgument, containing: ["no router 0", "0 routers"]) { try c.setMask(lora, router: 0, mode: .allow, mask: [true]) }
            _ = expectError(.invalidArgument, containing: ["no router at a site named 'intermediate.dense'", "attention.self.query"]) { _ = try RoutingControl.findRouter(moe, site: "intermediate.dense") }
            #expect(try RoutingControl.findRouter(moe, site: "layer.1.attention.self.value") == 3)
            _ = expectError(.shapeMismatch, containing: ["5 experts per token", "has 4"]) { try c.setOverride(moe, router: 1, weights: [Float](repeating: 0, count: 10), tokens: 2, experts: 5) }
            _ = expectError(.invalidArgument, containing: ["non-finite"]) { try c.setOverride(moe, router: 1, weights: [0, 1, .nan, 0], tokens: 1, experts: 4) }
            try c.setMask(moe, router: 0, mode: .allow, mask: Self.mask([0, 1], of: 4))
            _ = expectError(.invalidArgument, containing: ["together leave no expert"]) { try c.setMask(moe, router: 0, mode: .deny, mask: Self.mask([0, 1], of: 4)) }
            _ = expectError(.invalidArgument, containing: ["force and allow", "cannot be combined"]) { try c.setMask(moe, router: 0, mode: .force, mask: Self.mask([2], of: 4)) }
            // Run time: an override for another number of tokens; a router the run does not use.
            let o = RoutingControl()
            try o.setOverride(moe, router: 1, weights: [Float](repeating: 0.25, count: 12), tokens: 3, experts: 4)
            _ = expectError(.shapeMismatch, containing: ["covers 3 tokens", "sees 14"]) { _ = try Self.run(model, "bert_dynamo", moe, o) }
            _ = expectError(.invalidArgument, containing: ["router 0 of adapter 'moe_topk2'", "does not use"]) { _ = try Self.run(model, "bert_dynamo", lora, c) }
            // Clearing every control of a router removes it.
            try c.setMask(moe, router: 0, mode: .allow, mask: nil)
            #expect(c.entries.isEmpty)
        }
    }
}

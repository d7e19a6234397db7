import Graft
import Testing

/// Routed-expert control through the public Swift API (ExpertRouting), on moe_topk2 against the
/// plain-PyTorch reference of Tests/Fixtures/make_routing_fixtures.py (forced expert 1, 1e-4).
@Test func expertRoutingThroughThePublicAPI() throws {
    let dir = "/" + #filePath.split(separator: "/").dropLast(2).joined(separator: "/") + "/Fixtures"
    let model = try Model(path: "\(dir)/bert_dynamo/model.onnx")
    let moe = try model.loadAdapter(path: "\(dir)/adapters/bert/moe_topk2")
    #expect(moe.routers.map(\.experts) == [4, 4, 4, 4])
    #expect(try moe.router(atSite: "layer.1.attention.self.value") == 3)
    let session = try model.makeSession()
    try session.setAdapters([(moe, 1)])
    var inputs: [String: Tensor] = [:]
    for name in ["input_ids", "attention_mask", "token_type_ids"] {
        inputs[name] = try Tensor(npyFile: "\(dir)/bert_torchscript/basic/inputs/\(name).npy")
    }
    let routing = ExpertRouting()
    for r in moe.routers { try routing.force(moe, router: r.index, experts: [1]) }
    routing.recordsDecisions = true
    let out = try session.run(inputs, routing: routing)
    let want = try Tensor(npyFile: "\(dir)/moe_control/force_e1/last_hidden_state.npy").floats()
    #expect(zip(try out["last_hidden_state"]!.floats(), want).allSatisfy { abs($0 - $1) <= 1e-4 })
    #expect(routing.decisions.count == 4 && routing.decisions.allSatisfy { d in (0..<d.tokens).allSatisfy { d.chosen(token: $0) == [1] } })
    #expect(throws: GraftError.self) { try routing.allow(moe, router: 0, experts: [4]) }
    #expect(throws: GraftError.self) { try routing.override(moe, router: 0, weights: [1, 0, 0], tokens: 1) }
}

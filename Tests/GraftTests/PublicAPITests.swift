import Graft
import Testing

/// The Swift example of docs/BINDINGS.md, checked against the ONNX Runtime reference.
@Test func publicAPIRunsAFixture() throws {
    let dir = #filePath.split(separator: "/").dropLast(2).joined(separator: "/")
    let fixture = "/\(dir)/Fixtures/bert_torchscript"
    let model = try Model(path: "\(fixture)/model.onnx")
    #expect(model.inputs.map(\.name) == ["input_ids", "attention_mask", "token_type_ids"])
    #expect(model.inputs[0].dimensions == [.symbolic("batch"), .symbolic("sequence")])
    let session = try model.makeSession(threads: 2)
    let ids = try Tensor(npyFile: "\(fixture)/basic/inputs/input_ids.npy")
    let mask = try Tensor(npyFile: "\(fixture)/basic/inputs/attention_mask.npy")
    let types = try Tensor(npyFile: "\(fixture)/basic/inputs/token_type_ids.npy")
    let out = try session.run(["input_ids": ids, "attention_mask": mask, "token_type_ids": types])
    print(out["pooler_output"]!.shape, try out["pooler_output"]!.floats().prefix(4))
    let expected = try Tensor(npyFile: "\(fixture)/basic/ort/pooler_output.npy")
    let got = try out["pooler_output"]!.floats()
    #expect(out["pooler_output"]!.shape == expected.shape)
    #expect(zip(got, try expected.floats()).allSatisfy { abs($0 - $1) <= 1e-4 })
    #expect(throws: GraftError.self) { try session.run(["input_ids": ids]) }
}

/// `Limits` through the public module: a weight cap under the fixture's weights is refused with
/// `limitExceeded` naming the cap; the defaults load it and report themselves.
@Test func publicAPILimits() throws {
    let dir = #filePath.split(separator: "/").dropLast(2).joined(separator: "/")
    let path = "/\(dir)/Fixtures/bert_torchscript/model.onnx"
    var small = Limits()
    small.weightBytes = 1000
    let error = #expect(throws: GraftError.self) { try Model(path: path, limits: small) }
    #expect(error?.code == .limitExceeded && error?.message.contains("GRAFT_LIMIT_WEIGHT_BYTES") == true, "\(String(describing: error))")
    let model = try Model(path: path)
    #expect(model.limits == Limits() && model.limits.adapterRank == 4096)
}

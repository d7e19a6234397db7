import Graft
import Testing

/// The Swift VLoRA example of docs/BINDINGS.md: image features as an auxiliary run input and as
/// a request adapter, against the PyTorch references of make_vlora_fixtures.py (1e-4).
@Test func publicAPIRunsVLoRA() throws {
    let dir = #filePath.split(separator: "/").dropLast(2).joined(separator: "/")
    let fixtures = "/\(dir)/Fixtures"
    let model = try Model(path: "\(fixtures)/llama_dynamo/model.onnx")
    let vlora = try model.loadAdapter(path: "\(fixtures)/vlora/llama_qv_r4")
    #expect(vlora.auxInput == "image_features")
    var inputs: [String: Tensor] = [:]
    for name in ["input_ids", "attention_mask", "position_ids"] {
        inputs[name] = try Tensor(npyFile: "\(fixtures)/llama_torchscript/basic/inputs/\(name).npy")
    }
    let features = try Tensor(npyFile: "\(fixtures)/vlora/refs/features/img0.npy")     // [12, 24]
    let expected = try Tensor(npyFile: "\(fixtures)/vlora/refs/single/logits.npy").floats()
    func close(_ t: Tensor?) throws -> Bool { zip(try t!.floats(), expected).allSatisfy { abs($0 - $1) <= 1e-4 } }

    let session = try model.makeSession()
    try session.setAdapters([(vlora, 1)])
    for mode in [MergeMode.auto, .unmerged, .merged] {
        #expect(try close(session.run(inputs, aux: ["image_features": features], merge: mode)["logits"]))
    }
    let request = try vlora.generate(aux: ["image_features": features])   // kept across decode steps
    #expect(request.auxInput == nil)
    try session.setAdapters([(request, 1)], merged: true)
    #expect(try close(session.run(inputs)["logits"]))
    let lora = try model.loadAdapter(path: "\(fixtures)/adapters/llama/lora_qvo_r8")
    let both = try Adapter.compose([(request, 1), (lora, 1)])                 // one row: image + task LoRA
    let composed = try session.run(inputs, rowAdapters: [both, nil])["logits"]!.floats()
    let composeRef = try Tensor(npyFile: "\(fixtures)/vlora/refs/compose/logits.npy").floats()
    #expect(zip(composed.prefix(composeRef.count / 2), composeRef).allSatisfy { abs($0 - $1) <= 1e-4 })
    try session.setAdapters([(vlora, 1)])
    #expect(throws: GraftError.self) { try session.run(inputs) }                // no features
    #expect(throws: GraftError.self) { try vlora.generate(aux: ["image_features": try Tensor([1, 2] as [Float], shape: [1, 2])]) }
}

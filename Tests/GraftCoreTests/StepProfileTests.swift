import Testing
@testable import GraftCore

/// StepProfile (graft bench --profile): every step of every run is counted once under its
/// operator type, and a session without a profile records nothing.
@Suite struct StepProfileTests {
    @Test func countsEveryStepByOperator() throws {
        let model = try CoreModel(path: "\(fixturesRoot)/bert_dynamo/model.onnx")
        let session = try CoreSession(model: model)
        var inputs: [String: HostTensor] = [:]
        for d in model.graph.inputs { inputs[d.name] = try Npy.read(path: "\(fixturesRoot)/bert_dynamo/basic/inputs/\(d.name).npy") }
        _ = try session.run(inputs)        // plans without a profile
        let profile = StepProfile()
        session.profile = profile
        for _ in 0..<3 { _ = try session.run(inputs) }
        let entries = profile.entries
        #expect(profile.runs == 3)
        let plannedTypes = Dictionary(grouping: model.graph.nodes.map(\.opType), by: { $0 }).mapValues(\.count)
        // Each type's steps per run is what the graph has of it (folding may remove some, never add).
        for e in entries {
            #expect(e.steps >= 1 && e.steps <= plannedTypes[e.opType] ?? 0, "\(e.opType): \(e.steps) steps, graph has \(plannedTypes[e.opType] ?? 0)")
            #expect(e.seconds > 0, "\(e.opType) has no time")
        }
        let matmul = try #require(entries.first { $0.opType == "MatMul" })
        #expect(matmul.steps == plannedTypes["MatMul"], "every MatMul of bert is a step")
        #expect(zip(entries, entries.dropFirst()).allSatisfy { $0.seconds >= $1.seconds }, "longest first")
        session.profile = nil
        _ = try session.run(inputs)
        #expect(profile.runs == 3, "a run without the profile set records nothing")
    }
}

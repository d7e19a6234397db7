import Foundation
import Testing
@testable import GraftCore

/// Every exported fixture model (BERT, Llama and ViT style; TorchScript and dynamo
/// exporters) on every case, against ONNX Runtime's and PyTorch's outputs for the same inputs.
/// The tolerance (max absolute difference) is the manifest's, 1e-4 unless a fixture says otherwise.
@Suite struct FixtureTests {
    struct Fixture: Sendable, CustomStringConvertible {
        let name: String
        let model: String
        let outputs: [String]
        let cases: [String]
        let tolerance: Float
        var description: String { name }
    }

    static let fixtures: [Fixture] = {
        guard let data = FileManager.default.contents(atPath: fixturesRoot + "/manifest.json"),
              let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let list = json["fixtures"] as? [[String: Any]]
        else { return [] }
        return list.compactMap { f in
            guard let name = f["name"] as? String, let model = f["model"] as? String,
                  let outputs = f["outputs"] as? [String], let cases = f["cases"] as? [String] else { return nil }
            return Fixture(name: name, model: model, outputs: outputs, cases: cases,
                           tolerance: Float((f["tolerance"] as? Double) ?? 1e-4))
        }
    }()

    @Test func manifestListsFixtures() {
        #expect(Self.fixtures.count >= 6, "manifest at \(fixturesRoot)/manifest.json lists \(Self.fixtures.count) fixtures")
    }

    @Test(arguments: fixtures)
    func matchesReferences(_ fixture: Fixture) throws {
        let model = try CoreModel(path: "\(fixturesRoot)/\(fixture.model)")
        let session = try CoreSession(model: model, threads: 2)
        for c in fixture.cases {
            let dir = "\(fixturesRoot)/\(fixture.name)/\(c)"
            var inputs: [String: HostTensor] = [:]
            for decl in model.graph.inputs {
                inputs[decl.name] = try Npy.read(path: "\(dir)/inputs/\(decl.name).npy")
            }
            let outputs = try session.run(inputs)
            for name in fixture.outputs {
                let got = try #require(outputs[name], "\(fixture.name)/\(c): no output \(name)")
                for reference in ["ort", "torch"] {
                    let want = try Npy.read(path: "\(dir)/\(reference)/\(name).npy")
                    #expect(got.shape == want.shape, "\(fixture.name)/\(c)/\(name) vs \(reference): shape")
                    guard got.shape == want.shape else { continue }
                    let diff = maxAbsDiff(got, want)
                    #expect(diff <= fixture.tolerance, "\(fixture.name)/\(c)/\(name) vs \(reference): max |Δ| \(diff) > \(fixture.tolerance)")
                }
            }
        }
    }

    /// A second run of the same session (plan cached, arena reused) gives identical outputs.
    @Test(arguments: fixtures)
    func repeatRunsAreIdentical(_ fixture: Fixture) throws {
        let model = try CoreModel(path: "\(fixturesRoot)/\(fixture.model)")
        let session = try CoreSession(model: model)
        let dir = "\(fixturesRoot)/\(fixture.name)/\(fixture.cases[0])"
        var inputs: [String: HostTensor] = [:]
        for decl in model.graph.inputs { inputs[decl.name] = try Npy.read(path: "\(dir)/inputs/\(decl.name).npy") }
        let first = try session.run(inputs)
        // A different shape in between must not disturb the cached plan.
        if fixture.cases.count > 1 {
            let other = "\(fixturesRoot)/\(fixture.name)/\(fixture.cases[1])"
            var alt: [String: HostTensor] = [:]
            for decl in model.graph.inputs { alt[decl.name] = try Npy.read(path: "\(other)/inputs/\(decl.name).npy") }
            _ = try session.run(alt)
        }
        let second = try session.run(inputs)
        for name in fixture.outputs {
            #expect(maxAbsDiff(first[name]!, second[name]!) == 0, "\(fixture.name)/\(name) changed between runs")
        }
    }
}

func maxAbsDiff(_ a: HostTensor, _ b: HostTensor) -> Float {
    precondition(a.dtype == .float32 && b.dtype == .float32 && a.count == b.count)
    let p = a.pointer(Float.self), q = b.pointer(Float.self)
    var m: Float = 0
    for i in 0..<a.count {
        let d = abs(p[i] - q[i])
        if !(d <= m) { m = d }   // NaN propagates as a failure
    }
    return m
}

#if canImport(Glibc)
import Glibc
#endif
import CGraftPlugin
import Testing
@testable import GraftCore

/// Routed (mixture-of-experts) and modality-gated low-rank terms at a site, against the
/// primitive computed by hand: y = x W + Σ_e g_e(x) · s · B_e (A_e x). Tolerance 1e-5.
@Suite struct RoutedTermTests {
    static let inF = 4, outF = 3, tokens = 5, experts = 3

    /// y = x · W with x [tokens, 4] and W [4, 3].
    static func model(in dir: TempDir) throws -> CoreModel {
        let w: [Float] = (0..<(inF * outF)).map { Float($0 % 5) * 0.1 - 0.2 }
        let m = OnnxModel(nodes: [OnnxNode(op: "MatMul", inputs: ["x", "w"], outputs: ["y"], name: "proj")],
                          inputs: [OnnxValue(name: "x", dims: ["t", inF])], outputs: [OnnxValue(name: "y", dims: ["t", outF])],
                          initializers: [.floats("w", w, [Int64(inF), Int64(outF)])])
        return try loadModel(m.encode(), in: dir)
    }

    static let x: [Float] = (0..<(tokens * inF)).map { Float(($0 * 7) % 11) * 0.1 - 0.5 }

    /// Expert e: rank 1, A_e = [1, 4], B_e = [3, 1].
    static func a(_ e: Int) -> [Float] { (0..<inF).map { Float((e + 1) * ($0 + 1) % 5) * 0.2 - 0.3 } }
    static func b(_ e: Int) -> [Float] { (0..<outF).map { Float((e + 2) * ($0 + 2) % 7) * 0.1 - 0.2 } }
    static let routerWeight: [Float] = (0..<(experts * inF)).map { Float(($0 * 5) % 9) * 0.3 - 1.2 }
    static let routerBias: [Float] = [0.1, -0.2, 0.05]

    static func adapter(for model: CoreModel, gate: Int32, topK: Int = 0, renormalize: Bool = false, threshold: Float = 0,
                        modalities: UInt32 = 0) -> CoreAdapter {
        let router = CoreAdapter.Router(site: 0, experts: experts, gate: gate, weight: HostTensor(routerWeight, shape: [experts, inF]),
                                        bias: HostTensor(routerBias, shape: [experts]), topK: topK, renormalize: renormalize, threshold: threshold)
        let terms = (0..<experts).map { e in
            CoreAdapter.LowRank(site: 0, rank: 1, a: HostTensor(a(e), shape: [1, inF]), b: HostTensor(b(e), shape: [outF, 1]),
                                scale: 0.5, activation: GRAFT_ACTIVATION_IDENTITY, gate: nil, gateContext: nil,
                                router: 0, expert: e, modalities: modalities)
        }
        return CoreAdapter(name: "moe", source: "", plugin: "test", model: ObjectIdentifier(model), lowRank: [0: terms],
                           routers: [router], inputScales: [:], outputScales: [:])
    }

    /// The expected output, by hand, with `gates(z)` turning one token's logits into weights.
    static func expected(_ model: CoreModel, gates: ([Float]) -> [Float], modality: (Int) -> Bool = { _ in true }) -> [Float] {
        let w = model.graph.initializers["w"]!.floats()
        var y = [Float](repeating: 0, count: tokens * outF)
        for t in 0..<tokens {
            let xt = Array(x[(t * inF)..<((t + 1) * inF)])
            for o in 0..<outF { for i in 0..<inF { y[t * outF + o] += xt[i] * w[i * outF + o] } }
            guard modality(t) else { continue }
            let z = (0..<experts).map { e in routerBias[e] + (0..<inF).reduce(0) { $0 + xt[$1] * routerWeight[e * inF + $1] } }
            let g = gates(z)
            for e in 0..<experts {
                let u = (0..<inF).reduce(0) { $0 + xt[$1] * a(e)[$1] }
                for o in 0..<outF { y[t * outF + o] += g[e] * 0.5 * b(e)[o] * u }
            }
        }
        return y
    }

    static func softmax(_ z: [Float]) -> [Float] {
        let m = z.max()!
        let ex = z.map { expf($0 - m) }
        let s = ex.reduce(0, +)
        return ex.map { $0 / s }
    }

    func run(_ adapter: CoreAdapter, _ model: CoreModel, modalities: [UInt8]? = nil) throws -> [Float] {
        let s = try CoreSession(model: model)
        try s.setAdapters([(adapter, 1)])
        return try s.run(["x": HostTensor(Self.x, shape: [Self.tokens, Self.inF])], modalities: modalities)["y"]!.floats()
    }

    func close(_ a: [Float], _ b: [Float]) -> Bool { zip(a, b).allSatisfy { abs($0 - $1) <= 1e-5 } }

    @Test func softmaxRouter() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let model = try Self.model(in: dir)
        let got = try run(Self.adapter(for: model, gate: GRAFT_GATE_SOFTMAX), model)
        #expect(close(got, Self.expected(model, gates: Self.softmax)))
    }

    @Test func topKRenormalisedAndNot() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let model = try Self.model(in: dir)
        for renorm in [true, false] {
            let got = try run(Self.adapter(for: model, gate: GRAFT_GATE_TOPK, topK: 2, renormalize: renorm), model)
            let want = Self.expected(model) { z in
                let p = Self.softmax(z)
                let keep = Set(p.indices.sorted { p[$0] > p[$1] }.prefix(2))
                let kept = p.indices.map { keep.contains($0) ? p[$0] : 0 }
                let s = kept.reduce(0, +)
                return renorm ? kept.map { $0 / s } : kept
            }
            #expect(close(got, want), "renormalize \(renorm)")
        }
    }

    @Test func thresholdAndSigmoid() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let model = try Self.model(in: dir)
        let got = try run(Self.adapter(for: model, gate: GRAFT_GATE_THRESHOLD, renormalize: true, threshold: 0.3), model)
        let want = Self.expected(model) { z in
            let kept = Self.softmax(z).map { $0 >= 0.3 ? $0 : 0 }
            let s = kept.reduce(0, +)
            return kept.map { $0 / s }
        }
        #expect(close(got, want))
        let sig = try run(Self.adapter(for: model, gate: GRAFT_GATE_SIGMOID), model)
        #expect(close(sig, Self.expected(model) { $0.map { 1 / (1 + expf(-$0)) } }))
    }

    @Test func modalityGatedTermsActOnlyOnTheirTokens() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let model = try Self.model(in: dir)
        let ids: [UInt8] = [0, 1, 1, 0, 2]   // the adapter acts on modality 1 only
        let got = try run(Self.adapter(for: model, gate: GRAFT_GATE_SOFTMAX, modalities: 1 << 1), model, modalities: ids)
        #expect(close(got, Self.expected(model, gates: Self.softmax) { ids[$0] == 1 }))
        let e = expectError(.invalidArgument, containing: ["modality id per token"]) {
            _ = try run(Self.adapter(for: model, gate: GRAFT_GATE_SOFTMAX, modalities: 2), model)
        }
        #expect(e?.code == .invalidArgument)
        let short = expectError(.shapeMismatch, containing: ["cover 2 tokens"]) {
            _ = try run(Self.adapter(for: model, gate: GRAFT_GATE_SOFTMAX, modalities: 2), model, modalities: [1, 1])
        }
        #expect(short?.code == .shapeMismatch)
    }

    @Test func routedTermsCannotBeMerged() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let model = try Self.model(in: dir)
        let e = expectError(.unsupported, containing: ["cannot be merged"]) {
            try CoreSession(model: model).setAdapters([(Self.adapter(for: model, gate: GRAFT_GATE_SOFTMAX), 1)], merged: true)
        }
        #expect(e?.code == .unsupported)
    }
}

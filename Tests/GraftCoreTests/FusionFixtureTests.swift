import Testing
@testable import GraftCore

/// The fusion pass on the exported fixtures (both exporters): how many chains it fuses, that the
/// fused model still computes what the unfused one does on the fixture inputs, and that sites
/// and MLP blocks are found exactly as without fusion. (FixtureTests compares the fused models,
/// the default, against ONNX Runtime and PyTorch.)
@Suite struct FusionFixtureTests {
    /// Fused nodes per fixture (2 layers each): a GELU and an attention per layer (BERT and ViT:
    /// the whole head split → softmax → head merge chain; Llama, whose rotary embeddings and
    /// repeated KV heads sit in that chain: the scaled softmax, and both attention products over
    /// the K/V heads as they are, without the repeat: 2 GroupedMatMul per layer); BERT
    /// and ViT: a residual add + LayerNorm per sub-layer (the embeddings' add broadcasts the
    /// position embeddings and stays); Llama: RMS norms, all but the first with their residual
    /// add (TorchScript casts the sum to float in between; the Cast is absorbed too).
    static let expected: [String: [String: Int]] = [
        "bert_torchscript": ["FusedGelu": 2, "FusedAttention": 2, "FusedAddNorm": 4],
        "bert_dynamo": ["FusedGelu": 2, "FusedAttention": 2, "FusedAddNorm": 4],
        "llama_torchscript": ["FusedScaledSoftmax": 2, "FusedRMSNorm": 1, "FusedAddNorm": 4, "GroupedMatMul": 4],
        "llama_dynamo": ["FusedScaledSoftmax": 2, "FusedRMSNorm": 1, "FusedAddNorm": 4, "GroupedMatMul": 4],
        "vit_torchscript": ["FusedGelu": 2, "FusedAttention": 2, "FusedAddNorm": 4],
        "vit_dynamo": ["FusedGelu": 2, "FusedAttention": 2, "FusedAddNorm": 4],
    ]

    @Test(arguments: FixtureTests.fixtures)
    func fixtureFusesAndMatches(_ fixture: FixtureTests.Fixture) throws {
        let path = "\(fixturesRoot)/\(fixture.model)"
        let fused = try CoreModel(path: path, fuse: true)
        let plain = try CoreModel(path: path, fuse: false)
        var counts: [String: Int] = [:]
        for n in fused.graph.nodes where n.domain == Fusion.domain { counts[n.opType, default: 0] += 1 }
        #expect(counts == Self.expected[fixture.name] ?? [:], "\(fixture.name): fused \(counts)")
        #expect(fused.sites == plain.sites)
        #expect(fused.blocks == plain.blocks)
        for c in fixture.cases {
            let dir = "\(fixturesRoot)/\(fixture.name)/\(c)"
            var inputs: [String: HostTensor] = [:]
            for decl in plain.graph.inputs { inputs[decl.name] = try Npy.read(path: "\(dir)/inputs/\(decl.name).npy") }
            let a = try CoreSession(model: fused, threads: 2).run(inputs)
            let b = try CoreSession(model: plain, threads: 2).run(inputs)
            for name in fixture.outputs {
                let d = maxAbsDiff(a[name]!, b[name]!)
                #expect(d <= 1e-5, "\(fixture.name)/\(c)/\(name): fused vs unfused max |Δ| \(d)")
            }
        }
    }
}

import CGraftPlugin
import Testing
@testable import GraftCore

/// Plan-time fusion of a weight product with its bias Add and the GELU after it
/// (`LinearEpilogues`): same outputs as the unfused plan on every product path (GEMV for one
/// row, OpenBLAS for two, the packed GEMM from three, in 96-row blocks above 128), and an adapter at the site is added
/// before the GELU, as in the unfused graph.
///
/// Tolerance 1e-5: the fused model's GELU is vmath_gelu_erf where the plain one runs the
/// exporter's erf chain (a few ulp apart, as in FusionGeluTests), and the packed kernel adds
/// the bias to the first K block's sum.
@Suite struct LinearEpilogueTests {
    static let inF = 7, outF = 9

    /// x [batch, sequence, 7] · W [7, 9] + b [9] → GELU (TorchScript's erf spelling, or ONNX
    /// Gelu when `onnxGelu`) → y; `biasFirst` writes Add(b, product).
    static func model(biasFirst: Bool = false, onnxGelu: String? = nil, extraOutputs: [String] = []) -> OnnxModel {
        var rng = TestRandom(seed: 11)
        let add = OnnxNode(op: "Add", inputs: biasFirst ? ["b", "p"] : ["p", "b"], outputs: ["z"])
        let gelu: [OnnxNode]
        if let approximate = onnxGelu {
            gelu = [OnnxNode(op: "Gelu", inputs: ["z"], outputs: ["y"], attrs: [.string("approximate", approximate)])]
        } else {
            gelu = [OnnxNode(op: "Div", inputs: ["z", "c_sqrt2"], outputs: ["t"]),
                    OnnxNode(op: "Erf", inputs: ["t"], outputs: ["e"]),
                    OnnxNode(op: "Add", inputs: ["e", "c_one"], outputs: ["a"]),
                    OnnxNode(op: "Mul", inputs: ["z", "a"], outputs: ["m"]),
                    OnnxNode(op: "Mul", inputs: ["m", "c_half"], outputs: ["y"])]
        }
        var m = OnnxModel(nodes: [OnnxNode(op: "MatMul", inputs: ["x", "w"], outputs: ["p"], name: "/encoder/intermediate/dense/MatMul"), add] + gelu,
                          inputs: [OnnxValue(name: "x", dims: ["batch", "sequence", Int64(inF)])],
                          outputs: (["y"] + extraOutputs).map { OnnxValue(name: $0) },
                          initializers: [.floats("w", rng.floats(inF * outF, -1, 1), [Int64(inF), Int64(outF)]),
                                         .floats("b", rng.floats(outF, -1, 1), [Int64(outF)]),
                                         .floats("c_half", [0.5], []), .floats("c_one", [1], []),
                                         .floats("c_sqrt2", [Float(2.0.squareRoot())], [])])
        if onnxGelu != nil { m.opset = 20 }
        return m
    }

    /// Rows 1 (GEMV), 10 (packed GEMM), 393 (OpenBLAS).
    static let shapes: [[Int]] = [[1, 1, inF], [1, 2, inF], [2, 5, inF], [3, 131, inF]]

    static func plan(_ m: CoreModel, _ shape: [Int], threads: Int = 1) throws -> Plan {
        try Plan.build(graph: m.graph, inputTypes: [TensorType(.float32, shape)], threads: threads, sites: m.sites,
                       blocks: m.blocks, epilogues: m.fused)
    }

    @Test(arguments: [false, true])
    func biasAndGeluFuseAndMatch(biasFirst: Bool) throws {
        let pair = try FusionPair(Self.model(biasFirst: biasFirst))
        var rng = TestRandom(seed: 3)
        for shape in Self.shapes {
            // Fused: the product (bias and GELU in its kernel, with the GELU step kept for runs
            // with an adapter at the site). Plain: MatMul, Add and the five-node chain.
            let fused = try Self.plan(pair.fused, shape), plain = try Self.plan(pair.plain, shape)
            #expect(fused.stepCount == 2 && plain.stepCount == 7, "\(shape): \(fused.stepCount) / \(plain.stepCount) steps")
            #expect(fused.steps[0].withNext != nil)
            let inputs = ["x": rng.tensor(shape)]
            for threads in [1, 2] {
                let d = try pair.maxDiff(inputs, threads: threads)
                #expect(d <= 1e-5, "\(shape) threads \(threads): max |Δ| \(d)")
            }
        }
    }

    @Test(arguments: ["none", "tanh"])
    func onnxGeluFuses(approximate: String) throws {
        let pair = try FusionPair(Self.model(onnxGelu: approximate))
        let fused = try Self.plan(pair.fused, [2, 5, Self.inF])
        #expect(fused.stepCount == 2)
        #expect(fused.steps[0].withNext != nil)
        var rng = TestRandom(seed: 4)
        #expect(try pair.maxDiff(["x": rng.tensor([2, 5, Self.inF])], threads: 2) <= 1e-5)
    }

    /// The bias sum read by something else (here a graph output) keeps the bias in the product
    /// but runs the GELU as its own step.
    @Test func sumReadTwiceKeepsGeluSeparate() throws {
        let pair = try FusionPair(Self.model(extraOutputs: ["z"]))
        let fused = try Self.plan(pair.fused, [2, 5, Self.inF])
        #expect(fused.stepCount == 2)
        #expect(fused.steps[0].withNext == nil)
        var rng = TestRandom(seed: 5)
        #expect(try pair.maxDiff(["x": rng.tensor([2, 5, Self.inF])]) <= 1e-5)
    }

    /// A residual Add (both operands computed at run time) is not a bias.
    @Test func runTimeAddIsNotABias() throws {
        var m = Self.model()
        m.nodes[1] = OnnxNode(op: "Add", inputs: ["p", "x2"], outputs: ["z"])
        m.inputs.append(OnnxValue(name: "x2", dims: ["batch", "sequence", Int64(Self.outF)]))
        let pair = try FusionPair(m)
        let types = [TensorType(.float32, [2, 5, Self.inF]), TensorType(.float32, [2, 5, Self.outF])]
        let fused = try Plan.build(graph: pair.fused.graph, inputTypes: types, threads: 1, sites: pair.fused.sites, epilogues: true)
        #expect(fused.stepCount == 3, "MatMul, Add, FusedGelu")
        #expect(fused.steps.allSatisfy { $0.withNext == nil })
    }

    /// y = x W + b + s·B(A x), then GELU: the low-rank term must be added before the GELU, so
    /// a run with an adapter at the site takes the unfused steps. Checked against the plain
    /// model with the same adapter, unmerged and merged (another weight pointer: OpenBLAS with
    /// the epilogue), and with the adapter bound on one row of two.
    @Test func adapterAtTheSiteRunsBeforeTheGelu() throws {
        let pair = try FusionPair(Self.model())
        var rng = TestRandom(seed: 9)
        let a = rng.tensor([2, Self.inF], -1, 1), b = rng.tensor([Self.outF, 2], -1, 1)
        func adapter(_ model: CoreModel) -> CoreAdapter {
            let term = CoreAdapter.LowRank(site: 0, rank: 2, a: a, b: b, scale: 0.75, activation: GRAFT_ACTIVATION_IDENTITY,
                                           gate: nil, gateContext: nil, router: nil, expert: 0, modalities: 0)
            return CoreAdapter(name: "lora", source: "", plugin: "test", model: ObjectIdentifier(model), lowRank: [0: [term]],
                               routers: [], inputScales: [:], outputScales: [:])
        }
        let fusedAdapter = adapter(pair.fused), plainAdapter = adapter(pair.plain)
        for shape in Self.shapes {
            let inputs = ["x": rng.tensor(shape)]
            for merged in [false, true] {
                for threads in [1, 2] {
                    let f = try CoreSession(model: pair.fused, threads: threads), p = try CoreSession(model: pair.plain, threads: threads)
                    try f.setAdapters([(fusedAdapter, 1)], merged: merged)
                    try p.setAdapters([(plainAdapter, 1)], merged: merged)
                    let got = try f.run(inputs)["y"]!, want = try p.run(inputs)["y"]!
                    let base = try CoreSession(model: pair.plain, threads: threads).run(inputs)["y"]!
                    #expect(maxAbsDiff(got, want) <= 1e-5, "\(shape) merged \(merged) threads \(threads): max |Δ| \(maxAbsDiff(got, want))")
                    #expect(maxAbsDiff(want, base) > 1e-2, "the adapter changes the output")
                }
            }
            guard shape[0] == 2 else { continue }
            let f = try CoreSession(model: pair.fused), p = try CoreSession(model: pair.plain)
            let got = try f.run(inputs, rowAdapters: [fusedAdapter, nil])["y"]!
            let want = try p.run(inputs, rowAdapters: [plainAdapter, nil])["y"]!
            #expect(maxAbsDiff(got, want) <= 1e-5, "per-row adapters: max |Δ| \(maxAbsDiff(got, want))")
        }
    }
}

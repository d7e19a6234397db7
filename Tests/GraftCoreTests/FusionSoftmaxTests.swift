import Testing
@testable import GraftCore

/// Attention-score fusion: Softmax(MatMul(Q, Kᵀ)·s + M) in its spellings becomes one
/// FusedScaledSoftmax node matching the unfused graph; anything else stays.
@Suite struct FusionSoftmaxTests {
    /// Q [batch, 3, sequence, 5] · K [batch, 3, 5, sequence] → S, then `tail` (reading S, the
    /// mask `m` and constants c_scale / c_div) ending in the graph output "p".
    static func model(_ tail: [OnnxNode], mask: [Any]? = ["batch", 1, 1, "sequence"], scale: Float = 0.25,
                      outputs: [String] = ["p"]) -> OnnxModel {
        var inputs = [OnnxValue(name: "q", dims: ["batch", 3, "sequence", 5]), OnnxValue(name: "k", dims: ["batch", 3, 5, "sequence"])]
        if let mask { inputs.append(OnnxValue(name: "m", dims: mask)) }
        return OnnxModel(nodes: [OnnxNode(op: "MatMul", inputs: ["q", "k"], outputs: ["s"])] + tail,
                         inputs: inputs, outputs: outputs.map { OnnxValue(name: $0) },
                         initializers: [.floats("c_scale", [scale], []), .floats("c_div", [1 / scale], [])])
    }

    static func softmax(_ x: String) -> OnnxNode { OnnxNode(op: "Softmax", inputs: [x], outputs: ["p"], attrs: [.int("axis", -1)]) }

    /// Spellings with a mask: scale then mask (Mul either side, Div), mask then scale, mask only.
    static let masked: [(String, [OnnxNode], Int)] = [
        ("S·s + M", [OnnxNode(op: "Mul", inputs: ["s", "c_scale"], outputs: ["t"]), OnnxNode(op: "Add", inputs: ["t", "m"], outputs: ["u"]), softmax("u")], 3),
        ("M + s·S", [OnnxNode(op: "Mul", inputs: ["c_scale", "s"], outputs: ["t"]), OnnxNode(op: "Add", inputs: ["m", "t"], outputs: ["u"]), softmax("u")], 3),
        ("S/d + M", [OnnxNode(op: "Div", inputs: ["s", "c_div"], outputs: ["t"]), OnnxNode(op: "Add", inputs: ["t", "m"], outputs: ["u"]), softmax("u")], 3),
        ("(S + M)·s", [OnnxNode(op: "Add", inputs: ["s", "m"], outputs: ["t"]), OnnxNode(op: "Mul", inputs: ["t", "c_scale"], outputs: ["u"]), softmax("u")], 3),
        ("(M + S)/d", [OnnxNode(op: "Add", inputs: ["m", "s"], outputs: ["t"]), OnnxNode(op: "Div", inputs: ["t", "c_div"], outputs: ["u"]), softmax("u")], 3),
        ("S + M", [OnnxNode(op: "Add", inputs: ["s", "m"], outputs: ["u"]), softmax("u")], 2),
    ]

    /// Masks that broadcast over heads, over rows, or not at all, and a rank-2 one.
    static var masks: [[Any]] { [["batch", 1, 1, "sequence"], ["batch", 1, "sequence", "sequence"],
                                 ["batch", 3, "sequence", "sequence"], ["sequence", "sequence"]] }

    static func inputs(_ b: Int, _ seq: Int, mask: [Any]?, seed: UInt64) -> [String: HostTensor] {
        var rng = TestRandom(seed: seed)
        var x = ["q": rng.tensor([b, 3, seq, 5]), "k": rng.tensor([b, 3, 5, seq])]
        if let mask {
            let shape = mask.map { d -> Int in
                if let n = d as? Int { return n }
                return (d as! String) == "batch" ? b : seq
            }
            // Mostly 0 with some large negatives (the exporters' finfo.min) and moderate values.
            let values = (0..<Shape.product(shape)).map { i -> Float in
                let r = rng.float(0, 1)
                return r < 0.2 ? -Float.greatestFiniteMagnitude : (r < 0.4 ? rng.float(-4, 4) : 0)
            }
            x["m"] = HostTensor(values, shape: shape)
        }
        return x
    }

    @Test(arguments: 0..<6, 0..<4)
    func maskedSpellingsFuseAndMatch(spelling: Int, maskForm: Int) throws {
        let (name, tail, chain) = Self.masked[spelling]
        let mask = Self.masks[maskForm]
        let pair = try FusionPair(Self.model(tail, mask: mask))
        #expect(pair.count("FusedScaledSoftmax") == 1, "\(name) mask \(mask)")
        #expect(pair.removed == chain - 1)
        for (b, seq) in [(1, 1), (2, 7), (1, 33), (3, 130)] {
            let inputs = Self.inputs(b, seq, mask: mask, seed: UInt64(100 * spelling + 10 * maskForm + seq))
            let steps = try pair.steps(inputs)
            #expect(steps.plain - steps.fused == chain - 1)
            // Same operations in the same order: the probabilities agree to rounding (in practice exactly).
            for threads in [1, 2] {
                let d = try pair.maxDiff(inputs, threads: threads)
                #expect(d <= 1e-6, "\(name) mask \(mask) [\(b), \(seq)] threads \(threads): max |Δ| \(d)")
            }
        }
    }

    @Test func scaleOnlyFuses() throws {
        for tail in [[OnnxNode(op: "Mul", inputs: ["s", "c_scale"], outputs: ["u"]), Self.softmax("u")],
                     [OnnxNode(op: "Div", inputs: ["s", "c_div"], outputs: ["u"]), Self.softmax("u")]] {
            let pair = try FusionPair(Self.model(tail, mask: nil))
            #expect(pair.count("FusedScaledSoftmax") == 1)
            for seq in [1, 17] {
                #expect(try pair.maxDiff(Self.inputs(2, seq, mask: nil, seed: 9)) <= 1e-6)
            }
        }
    }

    /// The scaled scores also read elsewhere (here: a graph output) keep the chain.
    @Test func secondConsumerStaysUnfused() throws {
        let pair = try FusionPair(Self.model(Self.masked[0].1, outputs: ["p", "t"]))
        #expect(pair.count("FusedScaledSoftmax") == 0)
        #expect(pair.removed == 0)
        #expect(try pair.maxDiff(Self.inputs(2, 5, mask: ["batch", 1, 1, "sequence"], seed: 1)) == 0)
    }

    /// A mask that grows the scores ([batch, 3, sequence, sequence, ...] vs a smaller S) or
    /// Softmax over another axis is not fused.
    @Test func unsupportedShapesStayUnfused() throws {
        // Mask [2, batch, 3, sequence, sequence] broadcasts S up to rank 5.
        let grow = try FusionPair(Self.model(Self.masked[0].1, mask: [2, "batch", 3, "sequence", "sequence"]))
        #expect(grow.count("FusedScaledSoftmax") == 0)
        #expect(try grow.maxDiff(Self.inputs(1, 4, mask: [2, "batch", 3, "sequence", "sequence"], seed: 2)) == 0)
        // Softmax over axis 2.
        var tail = Self.masked[0].1
        tail[2] = OnnxNode(op: "Softmax", inputs: ["u"], outputs: ["p"], attrs: [.int("axis", 2)])
        let axis = try FusionPair(Self.model(tail))
        #expect(axis.count("FusedScaledSoftmax") == 0)
    }

    /// Without a MatMul under the scale there are no attention scores to fuse.
    @Test func noMatMulStaysUnfused() throws {
        var m = Self.model([OnnxNode(op: "Mul", inputs: ["q", "c_scale"], outputs: ["t"]), OnnxNode(op: "Add", inputs: ["t", "m"], outputs: ["u"]), Self.softmax("u")],
                           mask: ["batch", 1, 1, 5])
        m.nodes.removeFirst()
        let pair = try FusionPair(m)
        #expect(pair.count("FusedScaledSoftmax") == 0)
    }
}

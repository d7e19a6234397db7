import Testing
@testable import GraftCore

/// Attention fusion: the head split / Q·Kᵀ / scaled masked softmax / P·V / head merge chain the
/// exporters write becomes one FusedAttention node that matches the unfused graph; a chain with
/// a value read elsewhere, or not the expected head layout, stays.
@Suite struct FusionAttentionTests {
    /// Q, K [batch, sequence, heads·d], V [batch, sequence, heads·dv] (graph inputs) through the
    /// eager-attention chain to the graph output "y" [batch, sequence, heads·dv]. `kTwoTransposes`:
    /// K split as [0,2,1,3] then [0,1,3,2] (older transformers) instead of one [0,2,3,1];
    /// `softmax`: the nodes from the scores "s" to the probabilities "p"; `casts`: float Casts
    /// between P and the second MatMul (TorchScript ViT); `extraOutputs`: inner values also made
    /// graph outputs.
    static func model(heads: Int, d: Int, dv: Int, mask: [Any]?, softmax: [OnnxNode], kTwoTransposes: Bool = false,
                      casts: Int = 0, extraOutputs: [String] = [], finalPerm: [Int64] = [0, 2, 1, 3]) -> OnnxModel {
        let (h, d64, dv64) = (Int64(heads), Int64(d), Int64(dv))
        var nodes = [
            OnnxNode(op: "Reshape", inputs: ["q", "split_qk"], outputs: ["qr"]),
            OnnxNode(op: "Transpose", inputs: ["qr"], outputs: ["qt"], attrs: [.ints("perm", [0, 2, 1, 3])]),
            OnnxNode(op: "Reshape", inputs: ["k", "split_qk"], outputs: ["kr"]),
        ]
        if kTwoTransposes {
            nodes += [OnnxNode(op: "Transpose", inputs: ["kr"], outputs: ["kh"], attrs: [.ints("perm", [0, 2, 1, 3])]),
                      OnnxNode(op: "Transpose", inputs: ["kh"], outputs: ["kt"], attrs: [.ints("perm", [0, 1, 3, 2])])]
        } else {
            nodes.append(OnnxNode(op: "Transpose", inputs: ["kr"], outputs: ["kt"], attrs: [.ints("perm", [0, 2, 3, 1])]))
        }
        nodes += [
            OnnxNode(op: "Reshape", inputs: ["v", "split_v"], outputs: ["vr"]),
            OnnxNode(op: "Transpose", inputs: ["vr"], outputs: ["vt"], attrs: [.ints("perm", [0, 2, 1, 3])]),
            OnnxNode(op: "MatMul", inputs: ["qt", "kt"], outputs: ["s"]),
        ]
        nodes += softmax
        var p = "p"
        for c in 0..<casts {
            nodes.append(OnnxNode(op: "Cast", inputs: [p], outputs: ["pc\(c)"], attrs: [.int("to", 1)]))
            p = "pc\(c)"
        }
        nodes += [
            OnnxNode(op: "MatMul", inputs: [p, "vt"], outputs: ["o"]),
            OnnxNode(op: "Transpose", inputs: ["o"], outputs: ["ot"], attrs: [.ints("perm", finalPerm)]),
            OnnxNode(op: "Reshape", inputs: ["ot", "merge"], outputs: ["y"]),
        ]
        var inputs = [OnnxValue(name: "q", dims: ["batch", "sequence", heads * d]), OnnxValue(name: "k", dims: ["batch", "sequence", heads * d]),
                      OnnxValue(name: "v", dims: ["batch", "sequence", heads * dv])]
        if let mask { inputs.append(OnnxValue(name: "m", dims: mask)) }
        return OnnxModel(nodes: nodes, inputs: inputs, outputs: (["y"] + extraOutputs).map { OnnxValue(name: $0) },
                         initializers: [.floats("c_scale", [1 / Float(d).squareRoot()], []), .floats("c_div", [Float(d).squareRoot()], []),
                                        // 0 copies the input's dim (allowzero 0): [B, S, H, D], [B, S, H·Dv].
                                        .int64s("split_qk", [0, 0, h, d64], [4]), .int64s("split_v", [0, 0, h, dv64], [4]),
                                        .int64s("merge", [0, 0, -1], [3])])
    }

    static func softmax(_ x: String) -> OnnxNode { OnnxNode(op: "Softmax", inputs: [x], outputs: ["p"], attrs: [.int("axis", -1)]) }

    /// Scores → probabilities as the exporters write them, and the other spellings the softmax
    /// fusion takes: (name, nodes, mask?).
    static let spellings: [(String, [OnnxNode], Bool)] = [
        ("S·s + M", [OnnxNode(op: "Mul", inputs: ["s", "c_scale"], outputs: ["t"]), OnnxNode(op: "Add", inputs: ["t", "m"], outputs: ["u"]), softmax("u")], true),
        ("(M + S)/d", [OnnxNode(op: "Add", inputs: ["m", "s"], outputs: ["t"]), OnnxNode(op: "Div", inputs: ["t", "c_div"], outputs: ["u"]), softmax("u")], true),
        ("S·s", [OnnxNode(op: "Mul", inputs: ["s", "c_scale"], outputs: ["u"]), softmax("u")], false),
        ("S", [softmax("s")], false),
    ]

    static func inputs(_ b: Int, _ seq: Int, heads: Int, d: Int, dv: Int, mask: [Any]?, seed: UInt64) -> [String: HostTensor] {
        var rng = TestRandom(seed: seed)
        var x = ["q": rng.tensor([b, seq, heads * d]), "k": rng.tensor([b, seq, heads * d]), "v": rng.tensor([b, seq, heads * dv])]
        if let mask {
            let shape = mask.map { e -> Int in
                if let n = e as? Int { return n }
                return (e as! String) == "batch" ? b : seq
            }
            // Mostly 0, some finfo.min (masked out) and moderate values; never a whole row masked.
            var values = (0..<Shape.product(shape)).map { _ -> Float in
                let r = rng.float(0, 1)
                return r < 0.25 ? -Float.greatestFiniteMagnitude : (r < 0.4 ? rng.float(-4, 4) : 0)
            }
            for i in stride(from: 0, to: values.count, by: seq) { values[i] = 0 }
            x["m"] = HostTensor(values, shape: shape)
        }
        return x
    }

    static var masks: [[Any]] { [["batch", 1, 1, "sequence"], ["batch", 1, "sequence", "sequence"], ["sequence", "sequence"]] }

    /// Steps between the inputs and y in the unfused graph: 3 splits (3 Transposes; their
    /// Reshapes are views, `ViewAliasing`), 2 MatMuls, merge (2: its Reshape writes the graph
    /// output), and the softmax's; all become one.
    static func chainLength(_ softmax: [OnnxNode], kTwoTransposes: Bool, casts: Int) -> Int {
        7 + softmax.count + (kTwoTransposes ? 1 : 0) + casts
    }

    @Test(arguments: 0..<4, [false, true])
    func spellingsFuseAndMatch(spelling: Int, kTwoTransposes: Bool) throws {
        let (name, sm, masked) = Self.spellings[spelling]
        // H·D = 15 and 21: not multiples of 8; Dv ≠ D once.
        for (heads, d, dv) in [(3, 5, 5), (3, 7, 4)] {
            for mask in masked ? Self.masks.map({ Optional($0) }) : [[Any]?.none] {
                let casts = spelling == 2 ? 2 : 0
                let pair = try FusionPair(Self.model(heads: heads, d: d, dv: dv, mask: mask, softmax: sm, kTwoTransposes: kTwoTransposes, casts: casts))
                let label = "\(name) k2=\(kTwoTransposes) H=\(heads) D=\(d) Dv=\(dv) mask \(mask.map { "\($0)" } ?? "none")"
                #expect(pair.count("FusedAttention") == 1, "\(label)")
                #expect(pair.count("FusedScaledSoftmax") == 0, "\(label)")
                #expect(pair.fused.graph.nodes.count == 1, "\(label): \(pair.fused.graph.nodes.map(\.opType))")
                let chain = Self.chainLength(sm, kTwoTransposes: kTwoTransposes, casts: casts)
                for (b, seq) in [(1, 1), (2, 7), (1, 33), (2, 130)] {
                    let x = Self.inputs(b, seq, heads: heads, d: d, dv: dv, mask: mask, seed: UInt64(1000 * spelling + 10 * heads + seq))
                    let steps = try pair.steps(x)
                    #expect(steps.fused == 1 && steps.plain == chain, "\(label) [\(b), \(seq)]: steps \(steps)")
                    // The same softmax rows; the products (attention.c's tiles vs OpenBLAS) differ only
                    // in their summation order.
                    for threads in [1, 2] {
                        let diff = try pair.maxDiff(x, threads: threads)
                        #expect(diff <= 1e-5, "\(label) [\(b), \(seq)] threads \(threads): max |Δ| \(diff)")
                    }
                }
            }
        }
    }

    /// Long keys: the query rows are processed in blocks (R = 32768 / Sk rows per block).
    @Test func blockedRowsMatch() throws {
        let pair = try FusionPair(Self.model(heads: 2, d: 3, dv: 3, mask: ["batch", 1, 1, "sequence"], softmax: Self.spellings[0].1))
        #expect(pair.count("FusedAttention") == 1)
        let x = Self.inputs(1, 300, heads: 2, d: 3, dv: 3, mask: ["batch", 1, 1, "sequence"], seed: 5)
        for threads in [1, 3] {
            #expect(try pair.maxDiff(x, threads: threads) <= 1e-5)
        }
    }

    /// Head sizes of real models (32, 64: whole 16-column tiles of the AVX2 kernel) and odd ones
    /// (12 and 9: an 8-wide and a masked tail), Dv ≠ D, one query row, sequences that are not
    /// multiples of the 6-row tile or the 16-key panel, each mask form. Tolerance 1e-4: the
    /// kernel sums the products in another order than OpenBLAS (and with FMAs) over up to 64 and
    /// 130 terms of inputs in [-3, 3]; float rounding stays far below it, a wrong index does not.
    @Test(arguments: [(2, 32, 32), (2, 64, 64), (3, 12, 9)])
    func realHeadSizesMatch(heads: Int, d: Int, dv: Int) throws {
        for mask in Self.masks.map({ Optional($0) }) + [nil] {
            let sm = mask == nil ? Self.spellings[2].1 : Self.spellings[0].1
            let pair = try FusionPair(Self.model(heads: heads, d: d, dv: dv, mask: mask, softmax: sm))
            #expect(pair.count("FusedAttention") == 1)
            for (b, seq) in [(1, 1), (2, 5), (1, 128), (1, 130)] {
                let x = Self.inputs(b, seq, heads: heads, d: d, dv: dv, mask: mask, seed: UInt64(d * 100 + seq))
                for threads in [1, 2] {
                    let diff = try pair.maxDiff(x, threads: threads)
                    #expect(diff <= 1e-4, "H=\(heads) D=\(d) Dv=\(dv) mask \(mask.map { "\($0)" } ?? "none") [\(b), \(seq)] threads \(threads): max |Δ| \(diff)")
                }
            }
        }
    }

    /// An inner value read elsewhere too (here: a graph output) keeps the attention chain; the
    /// softmax fusion still applies where its own values allow, and results are unchanged.
    @Test(arguments: ["qt", "kt", "kr", "p", "o", "ot"])
    func secondConsumerStaysUnfused(value: String) throws {
        let mask: [Any] = ["batch", 1, 1, "sequence"]
        let pair = try FusionPair(Self.model(heads: 3, d: 5, dv: 5, mask: mask, softmax: Self.spellings[0].1, extraOutputs: [value]))
        #expect(pair.count("FusedAttention") == 0, "\(value)")
        #expect(pair.count("FusedScaledSoftmax") == 1, "\(value)")
        for (b, seq) in [(1, 1), (2, 9)] {
            #expect(try pair.maxDiff(Self.inputs(b, seq, heads: 3, d: 5, dv: 5, mask: mask, seed: 7), threads: 2) <= 1e-6)
        }
    }

    /// Not the head merge: heads transposed back to [B, S, D, H]-like order ([0,2,3,1] on O)
    /// before the Reshape.
    @Test func otherMergeStaysUnfused() throws {
        let pair = try FusionPair(Self.model(heads: 3, d: 5, dv: 5, mask: nil, softmax: Self.spellings[2].1, finalPerm: [0, 2, 3, 1]))
        #expect(pair.count("FusedAttention") == 0)
        #expect(try pair.maxDiff(Self.inputs(2, 6, heads: 3, d: 5, dv: 5, mask: nil, seed: 3)) <= 1e-6)
    }

    /// One K/V head shared by three query heads (multi-query attention: the MatMuls broadcast
    /// it): a valid graph, but not the per-head layout the kernel reads, so it stays.
    @Test func sharedKeyHeadStaysUnfused() throws {
        var m = Self.model(heads: 3, d: 5, dv: 5, mask: nil, softmax: Self.spellings[2].1)
        m.initializers.append(.int64s("split_kv", [0, 0, 1, 5], [4]))
        m.nodes[2].inputs[1] = "split_kv"
        m.nodes[4].inputs[1] = "split_kv"
        m.inputs[1].dims = ["batch", "sequence", 5]
        m.inputs[2].dims = ["batch", "sequence", 5]
        let pair = try FusionPair(m)
        #expect(pair.count("FusedAttention") == 0)
        #expect(pair.count("FusedScaledSoftmax") == 1)
        var rng = TestRandom(seed: 11)
        let x = ["q": rng.tensor([2, 6, 15]), "k": rng.tensor([2, 6, 5]), "v": rng.tensor([2, 6, 5])]
        #expect(try pair.maxDiff(x) <= 1e-6)
    }
}

import Testing
@testable import GraftCore

/// Grouped-query attention's repeated K/V heads: `Unsqueeze → Expand → Reshape (→ Transpose) →
/// MatMul` of the K and V caches become `GroupedMatMul` nodes that match the unfused graph; a
/// chain with a value read elsewhere, or an Expand that broadcasts more than the group axis,
/// stays.
@Suite struct FusionGroupedKVTests {
    /// Q [batch, H, sequence, D]; the K/V caches [kvBatch, KVH, past, D] and the new K/V
    /// [kvBatch, KVH, sequence, D] concatenated into "pk", "pv" (graph outputs, as Llama's
    /// present cache) [kvBatch, KVH, past + sequence, D], whose heads are repeated g = H / KVH
    /// times as transformers' `repeat_kv` is exported; scores Q·Kᵀ, softmax, P·V → "o"
    /// [batch, H, sequence, D]. `computedShape`: the Expand's shape computed from Shape(K) at plan
    /// time (as the TorchScript exporter writes it) instead of an initializer; `expandBatch`: the
    /// Expand also broadcasts the batch axis (kvBatch 1, batch 2); `extraOutputs`: inner values
    /// also made graph outputs.
    static func model(heads: Int, kvHeads: Int, d: Int, computedShape: Bool = false, expandBatch: Bool = false,
                      extraOutputs: [String] = []) -> OnnxModel {
        let g = Int64(heads / kvHeads)
        var nodes = [
            OnnxNode(op: "Concat", inputs: ["kp", "kn"], outputs: ["pk"], attrs: [.int("axis", 2)]),
            OnnxNode(op: "Concat", inputs: ["vp", "vn"], outputs: ["pv"], attrs: [.int("axis", 2)]),
        ]
        var shapeOf: [String: String] = ["pk": "eshape", "pv": "eshape"]
        if computedShape {
            // [B, KVH, T, D] → [B, KVH, g, T, D]: Concat(Slice(Shape(X), 0, 2), [g], Slice(Shape(X), 2, 4)).
            for x in ["pk", "pv"] {
                nodes += [
                    OnnxNode(op: "Shape", inputs: [x], outputs: ["\(x)_shape"]),
                    OnnxNode(op: "Slice", inputs: ["\(x)_shape", "i0", "i2"], outputs: ["\(x)_lead"]),
                    OnnxNode(op: "Slice", inputs: ["\(x)_shape", "i2", "i4"], outputs: ["\(x)_tail"]),
                    OnnxNode(op: "Concat", inputs: ["\(x)_lead", "group", "\(x)_tail"], outputs: ["\(x)_eshape"], attrs: [.int("axis", 0)]),
                ]
                shapeOf[x] = "\(x)_eshape"
            }
        }
        for (x, tag) in [("pk", "k"), ("pv", "v")] {
            nodes += [
                OnnxNode(op: "Unsqueeze", inputs: [x, "ax2"], outputs: ["u\(tag)"]),
                OnnxNode(op: "Expand", inputs: ["u\(tag)", shapeOf[x]!], outputs: ["e\(tag)"]),
                OnnxNode(op: "Reshape", inputs: ["e\(tag)", "rshape"], outputs: ["r\(tag)"]),
            ]
        }
        nodes += [
            OnnxNode(op: "Transpose", inputs: ["rk"], outputs: ["tk"], attrs: [.ints("perm", [0, 1, 3, 2])]),
            OnnxNode(op: "MatMul", inputs: ["q", "tk"], outputs: ["s"]),
            OnnxNode(op: "Softmax", inputs: ["s"], outputs: ["p"], attrs: [.int("axis", -1)]),
            OnnxNode(op: "MatMul", inputs: ["p", "rv"], outputs: ["o"]),
        ]
        let kvBatch: Any = expandBatch ? 1 : "batch"
        let batch: Any = expandBatch ? 2 : "batch"
        return OnnxModel(
            nodes: nodes,
            inputs: [OnnxValue(name: "q", dims: [batch, heads, "sequence", d])]
                + ["kp", "vp"].map { OnnxValue(name: $0, dims: [kvBatch, kvHeads, "past", d]) }
                + ["kn", "vn"].map { OnnxValue(name: $0, dims: [kvBatch, kvHeads, "sequence", d]) },
            outputs: (["o", "pk", "pv"] + extraOutputs).map { OnnxValue(name: $0) },
            initializers: [.int64s("ax2", [2], [1]), .int64s("eshape", [expandBatch ? 2 : 1, 1, g, 1, 1], [5]),
                           // 0 copies the batch dim (allowzero 0).
                           .int64s("rshape", [0, Int64(heads), -1, Int64(d)], [4]),
                           .int64s("i0", [0], [1]), .int64s("i2", [2], [1]), .int64s("i4", [4], [1]), .int64s("group", [g], [1])])
    }

    static func inputs(batch: Int, kvBatch: Int? = nil, seq: Int, past: Int, heads: Int, kvHeads: Int, d: Int, seed: UInt64) -> [String: HostTensor] {
        var rng = TestRandom(seed: seed)
        let kb = kvBatch ?? batch
        return ["q": rng.tensor([batch, heads, seq, d]),
                "kp": rng.tensor([kb, kvHeads, past, d]), "vp": rng.tensor([kb, kvHeads, past, d]),
                "kn": rng.tensor([kb, kvHeads, seq, d]), "vn": rng.tensor([kb, kvHeads, seq, d])]
    }

    @Test(arguments: [false, true])
    func repeatedHeadsFuseAndMatch(computedShape: Bool) throws {
        // (H, KVH, D): groups of 3, no grouping (g = 1), one K/V head (multi-query), Llama's 12/4;
        // odd D.
        for (heads, kvHeads, d) in [(6, 2, 5), (3, 3, 7), (4, 1, 3), (12, 4, 8)] {
            let pair = try FusionPair(Self.model(heads: heads, kvHeads: kvHeads, d: d, computedShape: computedShape))
            let label = "H=\(heads) KVH=\(kvHeads) D=\(d) computed=\(computedShape)"
            #expect(pair.count("GroupedMatMul") == 2, "\(label)")
            let left = pair.fused.graph.nodes.filter { ["Unsqueeze", "Expand", "Transpose", "MatMul"].contains($0.opType) && $0.domain.isEmpty }
            #expect(left.isEmpty, "\(label): \(left.map(\.opType))")
            // Decode (one new token, past 0, 1, 5, 130), prefill (past 0), both with batch 2.
            for (b, seq, past) in [(1, 1, 0), (1, 1, 1), (2, 1, 5), (2, 3, 0), (1, 7, 9), (2, 1, 130)] {
                let x = Self.inputs(batch: b, seq: seq, past: past, heads: heads, kvHeads: kvHeads, d: d, seed: UInt64(100 * heads + 10 * seq + past))
                for threads in [1, 2] {
                    let diff = try pair.maxDiff(x, threads: threads)
                    #expect(diff <= 1e-4, "\(label) [b \(b), seq \(seq), past \(past)] threads \(threads): max |Δ| \(diff)")
                }
            }
        }
    }

    /// Products large enough to be split over the session's threads (GroupedMatMulKernel.splitWork):
    /// a long cache with one query row (GEMVs) and a prefill block (GEMM).
    @Test func largeProductsSplitAcrossThreads() throws {
        let pair = try FusionPair(Self.model(heads: 12, kvHeads: 4, d: 8))
        #expect(pair.count("GroupedMatMul") == 2)
        for (b, seq, past) in [(2, 1, 1500), (2, 40, 300)] {
            let x = Self.inputs(batch: b, seq: seq, past: past, heads: 12, kvHeads: 4, d: 8, seed: UInt64(seq + past))
            for threads in [1, 2, 3] {
                let diff = try pair.maxDiff(x, threads: threads)
                #expect(diff <= 1e-4, "[b \(b), seq \(seq), past \(past)] threads \(threads): max |Δ| \(diff)")
            }
        }
    }

    /// A repeated K or V read elsewhere too (here: a graph output) keeps that chain; the other
    /// one still fuses, and results are unchanged.
    @Test(arguments: [("uk", 1), ("ek", 1), ("rk", 1), ("tk", 1), ("rv", 1), ("ev", 1)])
    func secondConsumerStaysUnfused(value: String, fused: Int) throws {
        let pair = try FusionPair(Self.model(heads: 6, kvHeads: 2, d: 5, extraOutputs: [value]))
        #expect(pair.count("GroupedMatMul") == fused, "\(value)")
        for (b, seq, past) in [(1, 1, 3), (2, 2, 0)] {
            let x = Self.inputs(batch: b, seq: seq, past: past, heads: 6, kvHeads: 2, d: 5, seed: 9)
            #expect(try pair.maxDiff(x, threads: 2) <= 1e-4, "\(value)")
        }
    }

    /// An Expand that also broadcasts the batch axis (one K/V cache for two query rows) is a
    /// valid graph but not the grouped layout: it stays.
    @Test func batchBroadcastStaysUnfused() throws {
        let pair = try FusionPair(Self.model(heads: 6, kvHeads: 2, d: 5, expandBatch: true))
        #expect(pair.count("GroupedMatMul") == 0)
        let x = Self.inputs(batch: 2, kvBatch: 1, seq: 2, past: 4, heads: 6, kvHeads: 2, d: 5, seed: 4)
        #expect(try pair.maxDiff(x) <= 1e-6)
    }

    /// The kernel refuses an expand shape other than the group repeat (the plan-time guard for
    /// key lengths the load-time probes cannot name) instead of computing something else.
    @Test func kernelRefusesOtherExpand() throws {
        let node = Node(name: "gmm", opType: "GroupedMatMul", domain: Fusion.domain, inputs: ["a", "x", "e"], outputs: ["y"],
                        attributes: ["trans_b": .int(1)])
        var rng = TestRandom(seed: 2)
        let a = rng.tensor([1, 4, 1, 3]), x = rng.tensor([1, 2, 1, 3])
        // Grows T from 1 to 5 as well as the group axis.
        #expect(throws: GraftError.self) {
            _ = try KernelRegistry.evaluate(node, inputs: [a, x, HostTensor([1, 1, 2, 5, 1] as [Int64], shape: [5])], opset: 17)
        }
        // The group repeat alone is accepted, and each query head reads K/V head h / 2.
        let y = try KernelRegistry.evaluate(node, inputs: [a, x, HostTensor([1, 1, 2, 1, 1] as [Int64], shape: [5])], opset: 17)[0]
        #expect(y.shape == [1, 4, 1, 1])
        let (af, xf, yf) = (a.floats(), x.floats(), y.floats())
        for h in 0..<4 {
            let want = (0..<3).reduce(Float(0)) { $0 + af[h * 3 + $1] * xf[(h / 2) * 3 + $1] }
            #expect(Swift.abs(yf[h] - want) <= 1e-5, "head \(h)")
        }
    }
}

import Testing
@testable import GraftCore

/// Normalisation fusions: the decomposed RMS norm of both exporters → FusedRMSNorm, and a
/// residual Add feeding LayerNormalization or an RMS norm → FusedAddNorm (keeping the sum when
/// something else reads it), against the unfused graph; anything else stays.
@Suite struct FusionNormTests {
    static let hidden = 9

    static func inputs(_ names: [String], _ b: Int, _ s: Int, seed: UInt64) -> [String: HostTensor] {
        var rng = TestRandom(seed: seed)
        var x: [String: HostTensor] = [:]
        for n in names { x[n] = rng.tensor([b, s, hidden], -2, 2) }
        return x
    }

    static let sizes = [(1, 1), (2, 5), (3, 17), (1, 300)]

    /// x [batch, sequence, 9] (and r, the residual) → y, with w [9], ln_b [9], eps, two, one.
    static func model(_ nodes: [OnnxNode], inputs: [String] = ["x"], outputs: [String] = ["y"], opset: Int64 = 18,
                      axes: [Int64] = [-1], exponent: Float = 2) -> OnnxModel {
        var rng = TestRandom(seed: 42)
        return OnnxModel(opset: opset, nodes: nodes,
                         inputs: inputs.map { OnnxValue(name: $0, dims: ["batch", "sequence", hidden]) },
                         outputs: outputs.map { OnnxValue(name: $0) },
                         initializers: [.floats("w", rng.floats(hidden, 0.5, 1.5), [Int64(hidden)]),
                                        .floats("ln_b", rng.floats(hidden, -0.5, 0.5), [Int64(hidden)]),
                                        .floats("eps", [1e-6], []), .floats("two", [exponent], []), .floats("one", [1], []),
                                        .int64s("axes", axes, [Int64(axes.count)])])
    }

    /// RMS norm of `x` into `y`, spelled as dynamo (opset 18: Reciprocal, axes input) or
    /// TorchScript (opset 17: Div(1, ·), axes attribute, a float Cast before the weight), or
    /// with Div(x, √·) and Mul(x, x).
    static func rms(_ form: Int, x: String = "x", y: String = "y") -> [OnnxNode] {
        switch form {
        case 0: return [OnnxNode(op: "Pow", inputs: [x, "two"], outputs: ["sq"]),
                        OnnxNode(op: "ReduceMean", inputs: ["sq", "axes"], outputs: ["ms"], attrs: [.int("keepdims", 1)]),
                        OnnxNode(op: "Add", inputs: ["ms", "eps"], outputs: ["mse"]),
                        OnnxNode(op: "Sqrt", inputs: ["mse"], outputs: ["rt"]),
                        OnnxNode(op: "Reciprocal", inputs: ["rt"], outputs: ["inv"]),
                        OnnxNode(op: "Mul", inputs: [x, "inv"], outputs: ["nx"]),
                        OnnxNode(op: "Mul", inputs: ["w", "nx"], outputs: [y])]
        case 1: return [OnnxNode(op: "Pow", inputs: [x, "two"], outputs: ["sq"]),
                        OnnxNode(op: "ReduceMean", inputs: ["sq"], outputs: ["ms"], attrs: [.ints("axes", [-1]), .int("keepdims", 1)]),
                        OnnxNode(op: "Add", inputs: ["ms", "eps"], outputs: ["mse"]),
                        OnnxNode(op: "Sqrt", inputs: ["mse"], outputs: ["rt"]),
                        OnnxNode(op: "Div", inputs: ["one", "rt"], outputs: ["inv"]),
                        OnnxNode(op: "Mul", inputs: [x, "inv"], outputs: ["nx"]),
                        OnnxNode(op: "Cast", inputs: ["nx"], outputs: ["nxc"], attrs: [.int("to", 1)]),
                        OnnxNode(op: "Mul", inputs: ["w", "nxc"], outputs: [y])]
        default: return [OnnxNode(op: "Mul", inputs: [x, x], outputs: ["sq"]),
                         OnnxNode(op: "ReduceMean", inputs: ["sq", "axes"], outputs: ["ms"]),
                         OnnxNode(op: "Add", inputs: ["eps", "ms"], outputs: ["mse"]),
                         OnnxNode(op: "Sqrt", inputs: ["mse"], outputs: ["rt"]),
                         OnnxNode(op: "Div", inputs: [x, "rt"], outputs: ["nx"]),
                         OnnxNode(op: "Mul", inputs: ["nx", "w"], outputs: [y])]
        }
    }

    static func check(_ pair: FusionPair, _ names: [String], removed: Int, seed: UInt64) throws {
        for (b, s) in sizes {
            let x = inputs(names, b, s, seed: seed &+ UInt64(s))
            let steps = try pair.steps(x)
            #expect(steps.plain - steps.fused == removed, "[\(b), \(s)]: steps \(steps)")
            for threads in [1, 2] {
                // The fused row sums x² in another order than ReduceMean: rounding-level differences.
                let d = try pair.maxDiff(x, threads: threads)
                #expect(d <= 1e-5, "[\(b), \(s)] threads \(threads): max |Δ| \(d)")
            }
        }
    }

    @Test(arguments: 0..<3)
    func rmsSpellingsFuse(form: Int) throws {
        let pair = try FusionPair(Self.model(Self.rms(form), opset: form == 1 ? 17 : 18))
        #expect(pair.count("FusedRMSNorm") == 1)
        #expect(pair.fused.graph.nodes.count == 1)
        try Self.check(pair, ["x"], removed: Self.rms(form).count - 1, seed: UInt64(form))
    }

    /// Residual add then RMS norm, the sum also read by the next residual (Llama, pre-LN).
    @Test func addRMSKeepsTheSum() throws {
        let nodes = [OnnxNode(op: "Add", inputs: ["x", "r"], outputs: ["h"])] + Self.rms(0, x: "h", y: "n")
            + [OnnxNode(op: "Add", inputs: ["h", "n"], outputs: ["y"])]
        let pair = try FusionPair(Self.model(nodes, inputs: ["x", "r"]))
        #expect(pair.count("FusedAddNorm") == 1)
        #expect(pair.fused.graph.nodes.count == 2, "fused add+norm and the next residual add")
        #expect(pair.fused.graph.nodes.first { $0.opType == "FusedAddNorm" }?.outputs == ["n", "h"])
        try Self.check(pair, ["x", "r"], removed: 7, seed: 11)
    }

    /// TorchScript's Llama: Add → Cast(to float) → RMS norm, the cast sum also read by the next
    /// residual: one FusedAddNorm writing the norm and the cast sum.
    @Test func addCastRMSFuses() throws {
        let nodes = [OnnxNode(op: "Add", inputs: ["x", "r"], outputs: ["h"]),
                     OnnxNode(op: "Cast", inputs: ["h"], outputs: ["hc"], attrs: [.int("to", 1)])]
            + Self.rms(1, x: "hc", y: "n") + [OnnxNode(op: "Add", inputs: ["hc", "n"], outputs: ["y"])]
        let pair = try FusionPair(Self.model(nodes, inputs: ["x", "r"], opset: 17))
        #expect(pair.count("FusedAddNorm") == 1)
        #expect(pair.fused.graph.nodes.first { $0.opType == "FusedAddNorm" }?.outputs == ["n", "hc"])
        try Self.check(pair, ["x", "r"], removed: nodes.count - 2, seed: 20)
    }

    /// An integer residual add cast to float is not a float add: the sum stays as it is (the
    /// norm itself still fuses).
    @Test func integerAddStaysUnfused() throws {
        let nodes = [OnnxNode(op: "Add", inputs: ["x", "r"], outputs: ["h"]),
                     OnnxNode(op: "Cast", inputs: ["h"], outputs: ["hc"], attrs: [.int("to", 1)])] + Self.rms(1, x: "hc")
        var m = Self.model(nodes, inputs: ["x", "r"], opset: 17)
        m.inputs = m.inputs.map { var v = $0; v.elemType = 7; return v }
        let pair = try FusionPair(m)
        #expect(pair.count("FusedAddNorm") == 0)
        #expect(pair.count("FusedRMSNorm") == 1)
        var rng = TestRandom(seed: 21)
        let ints = { (shape: [Int]) in HostTensor((0..<Shape.product(shape)).map { _ in Int64(rng.float(-5, 5)) }, shape: shape) }
        #expect(try pair.maxDiff(["x": ints([2, 3, Self.hidden]), "r": ints([2, 3, Self.hidden])]) <= 1e-5)
    }

    /// Post-LN (BERT): the sum is read only by the norm; with and without LayerNorm's bias.
    @Test(arguments: [true, false])
    func addLayerNormFuses(bias: Bool) throws {
        let nodes = [OnnxNode(op: "Add", inputs: ["x", "r"], outputs: ["h"]),
                     OnnxNode(op: "LayerNormalization", inputs: ["h", "w"] + (bias ? ["ln_b"] : []), outputs: ["y"],
                              attrs: [.int("axis", -1), .float("epsilon", 1e-12)])]
        let pair = try FusionPair(Self.model(nodes, inputs: ["x", "r"]))
        #expect(pair.count("FusedAddNorm") == 1)
        #expect(pair.fused.graph.nodes.count == 1)
        #expect(pair.fused.graph.nodes[0].outputs == ["y"])
        // Same additions, same normalisation code: exact.
        for (b, s) in Self.sizes {
            #expect(try pair.maxDiff(Self.inputs(["x", "r"], b, s, seed: 5), threads: 2) == 0)
        }
        try Self.check(pair, ["x", "r"], removed: 1, seed: 12)
    }

    /// Pre-LN: the sum is also a graph output.
    @Test func addLayerNormSumAsGraphOutput() throws {
        let nodes = [OnnxNode(op: "Add", inputs: ["x", "r"], outputs: ["h"]),
                     OnnxNode(op: "LayerNormalization", inputs: ["h", "w", "ln_b"], outputs: ["y"], attrs: [.float("epsilon", 1e-5)])]
        let pair = try FusionPair(Self.model(nodes, inputs: ["x", "r"], outputs: ["y", "h"]))
        #expect(pair.count("FusedAddNorm") == 1)
        try Self.check(pair, ["x", "r"], removed: 1, seed: 13)
    }

    @Test func nonMatchingNormsStayUnfused() throws {
        var cases: [(String, OnnxModel, [String])] = []
        // Mean over the sequence axis, not the hidden one.
        cases.append(("axis 1", Self.model(Self.rms(0), axes: [1]), ["x"]))
        // x³ instead of x².
        cases.append(("cube", Self.model(Self.rms(0), exponent: 3), ["x"]))
        // An inner value (the mean square) is also a graph output.
        cases.append(("second consumer", Self.model(Self.rms(1), outputs: ["y", "ms"], opset: 17), ["x"]))
        // Broadcasting residual add ([batch, sequence, 9] + [9]-like input [1, sequence, 9]).
        var bcast = Self.model([OnnxNode(op: "Add", inputs: ["x", "r"], outputs: ["h"]),
                                OnnxNode(op: "LayerNormalization", inputs: ["h", "w", "ln_b"], outputs: ["y"])], inputs: ["x", "r"])
        bcast.inputs[1] = OnnxValue(name: "r", dims: [1, "sequence", Self.hidden])
        cases.append(("broadcast add", bcast, ["x"]))
        // LayerNorm that also returns its Mean.
        cases.append(("mean output", Self.model([OnnxNode(op: "Add", inputs: ["x", "r"], outputs: ["h"]),
                                                 OnnxNode(op: "LayerNormalization", inputs: ["h", "w", "ln_b"], outputs: ["y", "mean"])],
                                                inputs: ["x", "r"], outputs: ["y", "mean"]), ["x", "r"]))
        for (name, m, names) in cases {
            let pair = try FusionPair(m)
            #expect(pair.removed == 0, "\(name)")
            var x = Self.inputs(names, 2, 3, seed: 3)
            if name == "broadcast add" { var rng = TestRandom(seed: 4); x["r"] = rng.tensor([1, 3, Self.hidden]) }
            #expect(try pair.maxDiff(x) == 0, "\(name)")
        }
    }

    /// A site's bias Add is never absorbed (the planner ends the site there); a residual Add of a
    /// site's output and a run-time value is, and the site is found as before.
    @Test func siteBiasAddStaysResidualAddFuses() throws {
        var rng = TestRandom(seed: 8)
        let weight = OnnxTensor.floats("W", rng.floats(Self.hidden * Self.hidden), [Int64(Self.hidden), Int64(Self.hidden)])
        // Bias: LN(MatMul(x, W) + b) — the Add reads a constant.
        var biased = Self.model([OnnxNode(op: "MatMul", inputs: ["x", "W"], outputs: ["p"], name: "proj"),
                                 OnnxNode(op: "Add", inputs: ["p", "ln_b"], outputs: ["h"]),
                                 OnnxNode(op: "LayerNormalization", inputs: ["h", "w", "ln_b"], outputs: ["y"])])
        biased.initializers.append(weight)
        let b = try FusionPair(biased)
        #expect(b.removed == 0)
        #expect(b.fused.sites.count == 1 && b.fused.sites == b.plain.sites)
        // Residual: LN(MatMul(x, W) + r).
        var residual = Self.model([OnnxNode(op: "MatMul", inputs: ["x", "W"], outputs: ["p"], name: "proj"),
                                   OnnxNode(op: "Add", inputs: ["p", "r"], outputs: ["h"]),
                                   OnnxNode(op: "LayerNormalization", inputs: ["h", "w", "ln_b"], outputs: ["y"])], inputs: ["x", "r"])
        residual.initializers.append(weight)
        let r = try FusionPair(residual)
        #expect(r.count("FusedAddNorm") == 1)
        #expect(r.fused.sites.count == 1 && r.fused.sites == r.plain.sites)
        try Self.check(r, ["x", "r"], removed: 1, seed: 14)
    }
    // MARK: - Decomposed LayerNorm

    /// LayerNorm of `x` as TorchScript writes it below opset 17 (ReduceMean axes attribute).
    static func decomposedLN(x: String = "x", bias: Bool = true) -> [OnnxNode] {
        [OnnxNode(op: "ReduceMean", inputs: [x], outputs: ["mu"], attrs: [.ints("axes", [-1])]),
         OnnxNode(op: "Sub", inputs: [x, "mu"], outputs: ["d"]),
         OnnxNode(op: "Pow", inputs: ["d", "two"], outputs: ["d2"]),
         OnnxNode(op: "ReduceMean", inputs: ["d2"], outputs: ["var"], attrs: [.ints("axes", [-1])]),
         OnnxNode(op: "Add", inputs: ["var", "eps"], outputs: ["ve"]),
         OnnxNode(op: "Sqrt", inputs: ["ve"], outputs: ["sd"]),
         OnnxNode(op: "Div", inputs: ["d", "sd"], outputs: ["nx"]),
         OnnxNode(op: "Mul", inputs: ["nx", "w"], outputs: [bias ? "sx" : "y"])]
        + (bias ? [OnnxNode(op: "Add", inputs: ["sx", "ln_b"], outputs: ["y"])] : [])
    }

    @Test(arguments: [true, false])
    func decomposedLayerNormFuses(bias: Bool) throws {
        let nodes = Self.decomposedLN(bias: bias)
        let pair = try FusionPair(Self.model(nodes, opset: 14))
        #expect(pair.count("FusedLayerNorm") == 1)
        #expect(pair.fused.graph.nodes.count == 1)
        try Self.check(pair, ["x"], removed: nodes.count - 1, seed: bias ? 15 : 16)
    }

    /// Residual add before it (what TorchScript writes for BERT below opset 17) → FusedAddNorm.
    @Test func addDecomposedLayerNormFuses() throws {
        let nodes = [OnnxNode(op: "Add", inputs: ["x", "r"], outputs: ["h"])] + Self.decomposedLN(x: "h")
        let pair = try FusionPair(Self.model(nodes, inputs: ["x", "r"], opset: 14))
        #expect(pair.count("FusedAddNorm") == 1)
        #expect(pair.fused.graph.nodes.count == 1)
        try Self.check(pair, ["x", "r"], removed: nodes.count - 1, seed: 17)
    }

    /// The centred value also read outside, or the mean over another axis: no LayerNorm. (The
    /// tail `w · d / √(mean(d²) + ε)` is still an RMS norm of d and fuses as one, correctly.)
    @Test func decomposedLayerNormNegatives() throws {
        let shared = try FusionPair(Self.model(Self.decomposedLN(), outputs: ["y", "d"], opset: 14))
        #expect(shared.count("FusedLayerNorm") == 0)
        #expect(shared.count("FusedRMSNorm") == 1)
        #expect(try shared.maxDiff(Self.inputs(["x"], 2, 3, seed: 18)) <= 1e-5)
        var axis = Self.decomposedLN()
        axis[0] = OnnxNode(op: "ReduceMean", inputs: ["x"], outputs: ["mu"], attrs: [.ints("axes", [1])])
        let other = try FusionPair(Self.model(axis, opset: 14))
        #expect(other.count("FusedLayerNorm") == 0)
        #expect(other.count("FusedRMSNorm") == 1)
        #expect(try other.maxDiff(Self.inputs(["x"], 2, 3, seed: 19)) <= 1e-5)
    }
}

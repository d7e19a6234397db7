import Testing
@testable import GraftCore

/// GELU (erf form) fusion: every spelling the exporters write becomes one FusedGelu node whose
/// output matches the unfused chain; chains that are not exactly GELU stay as they are.
@Suite struct FusionGeluTests {
    static let sqrt2 = Float(2.0.squareRoot())
    static let invSqrt2 = Float(0.5.squareRoot())

    /// A graph `x [batch, sequence, 7] → y` made of `nodes`, with scalar constants c_half,
    /// c_one, c_sqrt2, c_isqrt2 (and any `extra` initializers).
    static func model(_ nodes: [OnnxNode], outputs: [String] = ["y"], half: Float = 0.5,
                      sqrt2: Float = sqrt2) -> OnnxModel {
        OnnxModel(nodes: nodes,
                  inputs: [OnnxValue(name: "x", dims: ["batch", "sequence", 7])],
                  outputs: outputs.map { OnnxValue(name: $0) },
                  initializers: [.floats("c_half", [half], []), .floats("c_one", [1], []),
                                 .floats("c_sqrt2", [sqrt2], []), .floats("c_isqrt2", [invSqrt2], [])])
    }

    /// Inner part shared by the spellings: a = 1 + erf(x / √2), written four ways.
    static func onePlusErf(_ form: Int) -> [OnnxNode] {
        switch form {
        case 0: return [OnnxNode(op: "Div", inputs: ["x", "c_sqrt2"], outputs: ["t"]),
                        OnnxNode(op: "Erf", inputs: ["t"], outputs: ["e"]),
                        OnnxNode(op: "Add", inputs: ["e", "c_one"], outputs: ["a"])]
        case 1: return [OnnxNode(op: "Mul", inputs: ["x", "c_isqrt2"], outputs: ["t"]),
                        OnnxNode(op: "Erf", inputs: ["t"], outputs: ["e"]),
                        OnnxNode(op: "Add", inputs: ["c_one", "e"], outputs: ["a"])]
        default: return [OnnxNode(op: "Mul", inputs: ["c_isqrt2", "x"], outputs: ["t"]),
                         OnnxNode(op: "Erf", inputs: ["t"], outputs: ["e"]),
                         OnnxNode(op: "Add", inputs: ["e", "c_one"], outputs: ["a"])]
        }
    }

    /// The outer products: TorchScript's (x·a)·0.5, dynamo's x·(0.5·a), and (x·0.5)·a.
    static func outer(_ form: Int) -> [OnnxNode] {
        switch form {
        case 0: return [OnnxNode(op: "Mul", inputs: ["x", "a"], outputs: ["m"]),
                        OnnxNode(op: "Mul", inputs: ["m", "c_half"], outputs: ["y"])]
        case 1: return [OnnxNode(op: "Mul", inputs: ["c_half", "a"], outputs: ["h"]),
                        OnnxNode(op: "Mul", inputs: ["x", "h"], outputs: ["y"])]
        default: return [OnnxNode(op: "Mul", inputs: ["x", "c_half"], outputs: ["h"]),
                         OnnxNode(op: "Mul", inputs: ["a", "h"], outputs: ["y"])]
        }
    }

    static let shapes: [[Int]] = [[1, 1, 7], [2, 5, 7], [3, 131, 7], [1, 1200, 7]]

    @Test(arguments: 0..<3, 0..<3)
    func everySpellingFusesAndMatches(inner: Int, outer: Int) throws {
        let pair = try FusionPair(Self.model(Self.onePlusErf(inner) + Self.outer(outer)))
        #expect(pair.count("FusedGelu") == 1)
        #expect(pair.fused.graph.nodes.count == 1, "the five-node chain is one node")
        var rng = TestRandom(seed: UInt64(10 * inner + outer))
        for shape in Self.shapes {
            let inputs = ["x": rng.tensor(shape, -6, 6)]
            let steps = try pair.steps(inputs)
            #expect(steps.plain - steps.fused == 4, "\(shape): \(steps)")
            // vmath_gelu_erf vs the chain's erf then products: a few ulp of |x| ≤ 6.
            for threads in [1, 2] {
                let d = try pair.maxDiff(inputs, threads: threads)
                #expect(d <= 1e-5, "spelling \(inner)/\(outer) \(shape) threads \(threads): max |Δ| \(d)")
            }
        }
    }

    /// Constants written as Constant nodes fold to initializers first, then fuse.
    @Test func constantNodesFoldThenFuse() throws {
        var m = Self.model(Self.onePlusErf(0) + Self.outer(1))
        m.initializers.removeAll { $0.name == "c_half" }
        m.nodes.insert(OnnxNode(op: "Constant", inputs: [], outputs: ["c_half"], attrs: [.tensor("value", .floats("v", [0.5], []))]), at: 0)
        let pair = try FusionPair(m)
        #expect(pair.count("FusedGelu") == 1)
        var rng = TestRandom(seed: 7)
        #expect(try pair.maxDiff(["x": rng.tensor([2, 3, 7])]) <= 1e-5)
    }

    /// An inner value read outside the chain (here: also a graph output) keeps the chain.
    @Test func secondConsumerStaysUnfused() throws {
        let pair = try FusionPair(Self.model(Self.onePlusErf(0) + Self.outer(0), outputs: ["y", "e"]))
        #expect(pair.count("FusedGelu") == 0)
        #expect(pair.removed == 0)
        var rng = TestRandom(seed: 3)
        #expect(try pair.maxDiff(["x": rng.tensor([2, 9, 7])]) == 0)

        // Read by another node (not a graph output).
        var m = Self.model(Self.onePlusErf(1) + Self.outer(1) + [OnnxNode(op: "Add", inputs: ["y", "a"], outputs: ["z"])], outputs: ["z"])
        m.outputs = [OnnxValue(name: "z")]
        let other = try FusionPair(m)
        #expect(other.count("FusedGelu") == 0)
        #expect(try other.maxDiff(["x": rng.tensor([1, 1, 7])]) == 0)
    }

    /// Wrong constants: 0.25 instead of 0.5, 1.5 instead of √2.
    @Test func wrongConstantsStayUnfused() throws {
        for m in [Self.model(Self.onePlusErf(0) + Self.outer(0), half: 0.25),
                  Self.model(Self.onePlusErf(0) + Self.outer(1), sqrt2: 1.5),
                  Self.model(Self.onePlusErf(0) + Self.outer(2), sqrt2: Self.sqrt2 * (1 + 1e-5))] {
            let pair = try FusionPair(m)
            #expect(pair.count("FusedGelu") == 0)
            #expect(pair.removed == 0)
            var rng = TestRandom(seed: 5)
            #expect(try pair.maxDiff(["x": rng.tensor([3, 4, 7])]) == 0)
        }
    }

    /// A different variable inside the erf (erf(z/√2) · x · 0.5) is not GELU.
    @Test func otherVariableStaysUnfused() throws {
        var m = Self.model([OnnxNode(op: "Div", inputs: ["z", "c_sqrt2"], outputs: ["t"]),
                            OnnxNode(op: "Erf", inputs: ["t"], outputs: ["e"]),
                            OnnxNode(op: "Add", inputs: ["e", "c_one"], outputs: ["a"])] + Self.outer(0))
        m.inputs.append(OnnxValue(name: "z", dims: ["batch", "sequence", 7]))
        let pair = try FusionPair(m)
        #expect(pair.count("FusedGelu") == 0)
    }
    // MARK: - tanh approximation

    /// gelu(approximate='tanh') as TorchScript (x·(x·x), constants first) and dynamo (Pow(x, 3),
    /// constants second) write it; `c` is the cubic coefficient (0.044715).
    static func tanhModel(dynamo: Bool, c: Float = 0.044715) -> OnnxModel {
        let nodes: [OnnxNode] = dynamo ? [
            OnnxNode(op: "Pow", inputs: ["x", "c_three"], outputs: ["x3"]),
            OnnxNode(op: "Mul", inputs: ["x3", "c_cube"], outputs: ["w"]),
            OnnxNode(op: "Add", inputs: ["x", "w"], outputs: ["v"]),
            OnnxNode(op: "Mul", inputs: ["v", "c_k"], outputs: ["u"]),
            OnnxNode(op: "Tanh", inputs: ["u"], outputs: ["t"]),
            OnnxNode(op: "Add", inputs: ["t", "c_one"], outputs: ["a"]),
            OnnxNode(op: "Mul", inputs: ["a", "c_half"], outputs: ["h"]),
            OnnxNode(op: "Mul", inputs: ["x", "h"], outputs: ["y"]),
        ] : [
            OnnxNode(op: "Mul", inputs: ["x", "x"], outputs: ["x2"]),
            OnnxNode(op: "Mul", inputs: ["x", "x2"], outputs: ["x3"]),
            OnnxNode(op: "Mul", inputs: ["c_cube", "x3"], outputs: ["w"]),
            OnnxNode(op: "Add", inputs: ["x", "w"], outputs: ["v"]),
            OnnxNode(op: "Mul", inputs: ["c_k", "v"], outputs: ["u"]),
            OnnxNode(op: "Tanh", inputs: ["u"], outputs: ["t"]),
            OnnxNode(op: "Add", inputs: ["c_one", "t"], outputs: ["a"]),
            OnnxNode(op: "Mul", inputs: ["x", "a"], outputs: ["m"]),
            OnnxNode(op: "Mul", inputs: ["c_half", "m"], outputs: ["y"]),
        ]
        var m = model(nodes)
        m.initializers += [.floats("c_three", [3], []), .floats("c_cube", [c], []), .floats("c_k", [0.7978846], [])]
        return m
    }

    @Test(arguments: [false, true])
    func tanhSpellingsFuseAndMatch(dynamo: Bool) throws {
        let m = Self.tanhModel(dynamo: dynamo)
        let pair = try FusionPair(m)
        #expect(pair.count("FusedGelu") == 1)
        #expect(pair.fused.graph.nodes.count == 1)
        #expect(pair.fused.graph.nodes.first?.string("approximate") == "tanh")
        var rng = TestRandom(seed: dynamo ? 21 : 22)
        for shape in Self.shapes {
            let inputs = ["x": rng.tensor(shape, -6, 6)]
            let steps = try pair.steps(inputs)
            #expect(steps.plain - steps.fused == m.nodes.count - 1)
            // tanhf of one argument vs the chain's separately rounded polynomial: ulps of |x| ≤ 6.
            for threads in [1, 2] {
                let d = try pair.maxDiff(inputs, threads: threads)
                #expect(d <= 1e-5, "tanh \(dynamo ? "dynamo" : "torchscript") \(shape): max |Δ| \(d)")
            }
        }
    }

    @Test func tanhWrongCoefficientStaysUnfused() throws {
        let pair = try FusionPair(Self.tanhModel(dynamo: true, c: 0.05))
        #expect(pair.count("FusedGelu") == 0)
        #expect(pair.removed == 0)
        var rng = TestRandom(seed: 23)
        #expect(try pair.maxDiff(["x": rng.tensor([2, 3, 7])]) == 0)
    }
    // MARK: - MLP blocks

    /// A GELU inside a gated MLP block (`down(gelu(gate(x)) ⊙ up(x))`, as Gemma's) stays unfused:
    /// block mixtures skip the block's activation steps. The same GELU between two plain linear
    /// layers (`fc2(gelu(fc1(x)))`, no block) is fused. Sites and blocks are found as without fusion.
    @Test(arguments: [true, false])
    func geluInsideAnMLPBlockStaysUnfused(gated: Bool) throws {
        var rng = TestRandom(seed: 31)
        let w = { (name: String) in OnnxTensor.floats(name, rng.floats(49, -0.5, 0.5), [7, 7]) }
        // The GELU chain of onePlusErf(0) + outer(0) reads x and writes y; rename to gate → act.
        let rename = ["x": "g", "y": "act", "t": "t", "e": "e", "a": "a", "m": "m"]
        let chain = (Self.onePlusErf(0) + Self.outer(0)).map { n in
            OnnxNode(op: n.op, inputs: n.inputs.map { rename[$0] ?? $0 }, outputs: n.outputs.map { rename[$0] ?? $0 })
        }
        var nodes = [OnnxNode(op: "MatMul", inputs: ["x", "Wg"], outputs: ["g"], name: "gate_proj")] + chain
        if gated {
            nodes += [OnnxNode(op: "MatMul", inputs: ["x", "Wu"], outputs: ["u"], name: "up_proj"),
                      OnnxNode(op: "Mul", inputs: ["act", "u"], outputs: ["h"]),
                      OnnxNode(op: "MatMul", inputs: ["h", "Wd"], outputs: ["y"], name: "down_proj")]
        } else {
            nodes += [OnnxNode(op: "MatMul", inputs: ["act", "Wd"], outputs: ["y"], name: "down_proj")]
        }
        var m = Self.model(nodes)
        m.initializers += [w("Wg"), w("Wu"), w("Wd")]
        let pair = try FusionPair(m)
        #expect(pair.plain.blocks.count == (gated ? 1 : 0))
        #expect(pair.fused.blocks == pair.plain.blocks)
        #expect(pair.fused.sites == pair.plain.sites)
        #expect(pair.count("FusedGelu") == (gated ? 0 : 1))
        #expect(try pair.maxDiff(["x": rng.tensor([2, 5, 7])]) <= 1e-5)
    }
}

import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import GraftCore

/// Copy-only steps (Reshape, Flatten, Squeeze, Unsqueeze, Identity) run as views of their
/// input's storage: results are unchanged, the views' steps are gone, a root read only through
/// views stays live until the views' last reader, and graph outputs still get their own copy.
@Suite struct ViewAliasingTests {
    /// x [2, 3, 4] (graph input) →
    ///   r = x + 1, read only through views: v1 = Reshape(r → [6, 4]), v2 = Unsqueeze(v1, 0) [1, 6, 4],
    ///   v3 = Reshape(v2 → [2, 3, 4]); temporaries t1..t3 of r's size are computed before v3 is read,
    ///   y = v3 + t3 = (x + 1) + 8x;
    ///   z = Flatten(x) · 2 [2, 12] (a view of a graph input);
    ///   o = x + 2 (graph output), q = Reshape(o → [6, 4])² (a view of a graph output);
    ///   s = Squeeze(v2, 0) [6, 4] and i = Identity(x): views that are graph outputs (copied).
    static func model() -> OnnxModel {
        OnnxModel(nodes: [
            OnnxNode(op: "Add", inputs: ["x", "one"], outputs: ["r"]),
            OnnxNode(op: "Reshape", inputs: ["r", "s64"], outputs: ["v1"]),
            OnnxNode(op: "Unsqueeze", inputs: ["v1", "ax0"], outputs: ["v2"]),
            OnnxNode(op: "Mul", inputs: ["x", "two"], outputs: ["t1"]),
            OnnxNode(op: "Add", inputs: ["t1", "t1"], outputs: ["t2"]),
            OnnxNode(op: "Mul", inputs: ["t2", "two"], outputs: ["t3"]),
            OnnxNode(op: "Reshape", inputs: ["v2", "s234"], outputs: ["v3"]),
            OnnxNode(op: "Add", inputs: ["v3", "t3"], outputs: ["y"]),
            OnnxNode(op: "Flatten", inputs: ["x"], outputs: ["xf"], attrs: [.int("axis", 1)]),
            OnnxNode(op: "Mul", inputs: ["xf", "two"], outputs: ["z"]),
            OnnxNode(op: "Add", inputs: ["x", "two"], outputs: ["o"]),
            OnnxNode(op: "Reshape", inputs: ["o", "s64"], outputs: ["w"]),
            OnnxNode(op: "Mul", inputs: ["w", "w"], outputs: ["q"]),
            OnnxNode(op: "Squeeze", inputs: ["v2", "ax0"], outputs: ["s"]),
            OnnxNode(op: "Identity", inputs: ["x"], outputs: ["i"]),
        ], inputs: [OnnxValue(name: "x", dims: [2, 3, 4])],
        outputs: ["y", "z", "o", "q", "s", "i"].map { OnnxValue(name: $0) },
        initializers: [.floats("one", [1], []), .floats("two", [2], []), .int64s("s64", [6, 4], [2]),
                       .int64s("s234", [2, 3, 4], [3]), .int64s("ax0", [0], [1])])
    }

    @Test func viewsKeepResultsAndDropSteps() throws {
        let bytes = Self.model().encode()
        let model = try bytes.withUnsafeBytes { try CoreModel(bytes: $0, fuse: false) }
        let x = (0..<24).map { Float($0) * 0.5 - 5 }
        let plan = try Plan.build(graph: model.graph, inputTypes: [TensorType(.float32, [2, 3, 4])], threads: 1)
        // 15 nodes; v1, v2, v3, xf and w are views; s and i are graph outputs and keep their copy.
        #expect(plan.stepCount == 10)
        for threads in [1, 2] {
            let out = try CoreSession(model: model, threads: threads).run(["x": HostTensor(x, shape: [2, 3, 4])])
            #expect(out["y"]?.shape == [2, 3, 4] && out["y"]?.floats() == x.map { ($0 + 1) + 8 * $0 })
            #expect(out["z"]?.shape == [2, 12] && out["z"]?.floats() == x.map { 2 * $0 })
            #expect(out["o"]?.floats() == x.map { $0 + 2 })
            #expect(out["q"]?.shape == [6, 4] && out["q"]?.floats() == x.map { ($0 + 2) * ($0 + 2) })
            #expect(out["s"]?.shape == [6, 4] && out["s"]?.floats() == x.map { $0 + 1 })
            #expect(out["i"]?.shape == [2, 3, 4] && out["i"]?.floats() == x)
        }
    }

    /// The caller's input is never written through a view, and a second run on new inputs
    /// reads them (a view of an input is the input's pointer of that run, not of the first).
    @Test func inputsStayUntouchedAcrossRuns() throws {
        let bytes = Self.model().encode()
        let model = try bytes.withUnsafeBytes { try CoreModel(bytes: $0, fuse: false) }
        let session = try CoreSession(model: model)
        for k in 0..<3 {
            let x = (0..<24).map { Float($0 * (k + 1)) - 7 }
            let input = HostTensor(x, shape: [2, 3, 4])
            let out = try session.run(["x": input])
            #expect(input.floats() == x)
            #expect(out["z"]?.floats() == x.map { 2 * $0 }, "run \(k)")
            #expect(out["i"]?.floats() == x, "run \(k)")
        }
    }

    /// A weight product read by a view and by another step (its bias Add, say) keeps the copy:
    /// the planner's bias detection and `LinearEpilogues` count the product's readers among the
    /// steps that run. Read only by the view, the product is viewed as usual.
    @Test func productWithOtherReadersKeepsCopy() {
        let f = TensorType(.float32, [2, 4])
        let step = { (op: String, inputs: [String], output: String) in
            (node: Node(name: output, opType: op, inputs: inputs, outputs: [output]), kernel: CompiledKernel(outputs: [f]) { _ in })
        }
        var c = Plan.CompiledGraph()
        c.types = ["x": f, "p": f, "v": TensorType(.float32, [8]), "y": f, "z": TensorType(.float32, [8])]
        c.pending = [step("MatMul", ["x", "w"], "p"), step("Reshape", ["p", "shape"], "v"), step("Add", ["p", "b"], "y"), step("Mul", ["v", "v"], "z")]
        #expect(ViewAliasing.apply(&c, graphOutputs: ["y", "z"]).isEmpty)
        #expect(c.pending.map(\.node.opType) == ["MatMul", "Reshape", "Add", "Mul"])
        c.pending = [step("MatMul", ["x", "w"], "p"), step("Reshape", ["p", "shape"], "v"), step("Mul", ["v", "v"], "z")]
        #expect(ViewAliasing.apply(&c, graphOutputs: ["z"]) == ["v": "p"])
        #expect(c.pending.map(\.node.opType) == ["MatMul", "Mul"])
    }

    /// With the plan-time epilogues (bias Add and GELU in the product's kernel, `LinearEpilogues`)
    /// on a graph whose products' inputs and outputs pass through views: the same results as
    /// without views' help (values by hand), and the epilogue still fires.
    @Test func viewsAroundEpilogues() throws {
        // x [2, 3, 4] → xf = Reshape(x → [6, 4]) → h = xf·W + b → g = Gelu(h) → y = Reshape(g → [2, 3, 5]) + 0
        // (the Add keeps y's reshape a view rather than the graph output).
        var rng = TestRandom(seed: 21)
        let w = rng.floats(20, -1, 1), b = rng.floats(5, -1, 1)
        let m = OnnxModel(opset: 20, nodes: [
            OnnxNode(op: "Reshape", inputs: ["x", "s64"], outputs: ["xf"]),
            OnnxNode(op: "MatMul", inputs: ["xf", "w"], outputs: ["p"]),
            OnnxNode(op: "Add", inputs: ["p", "b"], outputs: ["h"]),
            OnnxNode(op: "Gelu", inputs: ["h"], outputs: ["g"]),
            OnnxNode(op: "Reshape", inputs: ["g", "s235"], outputs: ["gr"]),
            OnnxNode(op: "Add", inputs: ["gr", "zero"], outputs: ["y"]),
        ], inputs: [OnnxValue(name: "x", dims: [2, 3, 4])], outputs: [OnnxValue(name: "y")],
        initializers: [.floats("w", w, [4, 5]), .floats("b", b, [5]), .floats("zero", [0], []),
                       .int64s("s64", [6, 4], [2]), .int64s("s235", [2, 3, 5], [3])])
        let bytes = m.encode()
        let model = try bytes.withUnsafeBytes { try CoreModel(bytes: $0, fuse: true) }
        let x = rng.floats(24)
        let plan = try Plan.build(graph: model.graph, inputTypes: [TensorType(.float32, [2, 3, 4])], threads: 1, sites: model.sites,
                                  blocks: model.blocks, epilogues: true)
        // MatMul (+ bias), Gelu (its own step, which the product's epilogue kernel may cover), Add.
        #expect(plan.stepCount == 3)
        let y = try CoreSession(model: model, threads: 2).run(["x": HostTensor(x, shape: [2, 3, 4])])["y"]!
        #expect(y.shape == [2, 3, 5])
        var d: Float = 0
        for r in 0..<6 {
            for j in 0..<5 {
                var h = b[j]
                for k in 0..<4 { h += x[r * 4 + k] * w[k * 5 + j] }
                let want = 0.5 * h * (1 + erff(h / Float(2).squareRoot()))
                d = max(d, Swift.abs(y.floats()[r * 5 + j] - want))
            }
        }
        #expect(d <= 1e-4)
    }
}

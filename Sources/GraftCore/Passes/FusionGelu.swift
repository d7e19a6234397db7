/// GELU, erf form: `x · 0.5 · (1 + erf(x / √2))` → `graft:FusedGelu(x)`, and the tanh
/// approximation `x · 0.5 · (1 + tanh(√(2/π) · (x + 0.044715 · x³)))` → `FusedGelu(x)` with
/// `approximate = "tanh"` (what both exporters write for `gelu(approximate='tanh')` at opsets
/// before 20; ONNX `Gelu` itself has a kernel already).
///
/// The exporters multiply the three factors in different orders and spell the inner scale two
/// ways:
///     TorchScript:  Mul(Mul(x, Add(Erf(Div(x, 1.4142135)), 1)), 0.5)
///     dynamo:       Mul(x, Mul(0.5, Add(Erf(Div(x, 1.4142135)), 1)))
/// (and `Mul(x, 0.70710677)` for the division in other code). So the matcher flattens the
/// product tree under a root Mul (inner Mul nodes read only by their parent) into its leaves and
/// requires exactly: x, the `Add(Erf(x·c), 1)` value, and constants whose product is 0.5.
enum FusionGelu {
    static func match(_ ctx: inout FusionContext) {
        for root in ctx.graph.nodes.indices where ctx.isDefault(root, "Mul") && ctx.free(root) {
            // Erf and Tanh take float32 only, so x is float32; the probes confirm it where they ran.
            guard let m = gelu(ctx, root: root), ctx.dtypes == nil || ctx.areFloat([m.x]) else { continue }
            let last = ctx.node(root)
            ctx.rewrite(m.nodes, Fusion.node("FusedGelu", replacing: last, inputs: [m.x], outputs: [last.outputs[0]],
                                             attributes: m.tanh ? ["approximate": .string("tanh")] : [:]))
        }
    }

    /// The chain's node indices, x, and the form when the product under `root` is a GELU.
    static func gelu(_ ctx: FusionContext, root: Int) -> (nodes: [Int], x: String, tanh: Bool)? {
        var muls: [Int] = []
        var leaves: [String] = []
        // Flatten the product: an input produced by a free Mul read only by this Mul is opened.
        var stack = [root]
        while let m = stack.popLast() {
            guard muls.count < 4 else { return nil }
            muls.append(m)
            let n = ctx.node(m)
            guard n.inputs.count == 2, n.outputs.count == 1 else { return nil }
            for v in n.inputs {
                if let inner = ctx.inner(v, op: "Mul", readBy: m) { stack.append(inner) } else { leaves.append(v) }
            }
        }
        var constant = 1.0
        var values: [String] = []
        for v in leaves {
            if let c = ctx.scalar(v) { constant *= Double(c) } else { values.append(v) }
        }
        guard values.count == 2, Fusion.close(constant, 0.5) else { return nil }
        for (x, a) in [(values[0], values[1]), (values[1], values[0])] {
            if let inner = onePlusErf(ctx, a, x: x, reader: muls) { return (muls + inner, x, false) }
            if let inner = onePlusTanh(ctx, a, x: x, reader: muls) { return (muls + inner, x, true) }
        }
        return nil
    }

    /// Nodes of `a = Add(Tanh(√(2/π) · (x + 0.044715 · x³)), 1)`, x³ as `Pow(x, 3)` (dynamo) or
    /// `Mul(x, Mul(x, x))` (TorchScript), each value read only inside.
    static func onePlusTanh(_ ctx: FusionContext, _ a: String, x: String, reader muls: [Int]) -> [Int]? {
        guard let r = ctx.readers(of: a).first, ctx.readers(of: a).count == 1, muls.contains(r),
              let add = ctx.inner(a, op: "Add", readBy: r), let t = otherThan(ctx, ctx.node(add), constant: 1),
              let tanh = ctx.inner(t, op: "Tanh", readBy: add),
              let (scaleMul, v) = scaledBy(ctx, ctx.node(tanh).inputs[0], (2 / Double.pi).squareRoot(), readBy: tanh),
              let inner = ctx.inner(v, op: "Add", readBy: scaleMul), ctx.node(inner).inputs.count == 2,
              ctx.node(inner).inputs.contains(x) else { return nil }
        let ins = ctx.node(inner).inputs
        let w = ins[0] == x ? ins[1] : ins[0]
        guard let (cubeMul, cube) = scaledBy(ctx, w, 0.044715, readBy: inner) else { return nil }
        var nodes = [add, tanh, scaleMul, inner, cubeMul]
        if let pow = ctx.inner(cube, op: "Pow", readBy: cubeMul) {
            let p = ctx.node(pow)
            guard p.inputs.count == 2, p.inputs[0] == x, let e = ctx.graph.initializers[p.inputs[1]], e.count == 1,
                  (e.dtype == .float32 && e.floats()[0] == 3) || ((e.dtype == .int64 || e.dtype == .int32) && e.integers()[0] == 3)
            else { return nil }
            nodes.append(pow)
        } else if let m3 = ctx.inner(cube, op: "Mul", readBy: cubeMul), ctx.node(m3).inputs.count == 2, ctx.node(m3).inputs.contains(x) {
            let ins3 = ctx.node(m3).inputs
            let sq = ins3[0] == x ? ins3[1] : ins3[0]
            guard let m2 = ctx.inner(sq, op: "Mul", readBy: m3), ctx.node(m2).inputs == [x, x] else { return nil }
            nodes += [m3, m2]
        } else { return nil }
        return nodes
    }

    /// The non-constant input of a two-input node whose other input is the scalar `constant`.
    static func otherThan(_ ctx: FusionContext, _ n: Node, constant: Double) -> String? {
        guard n.inputs.count == 2 else { return nil }
        if ctx.isScalar(n.inputs[1], constant) { return n.inputs[0] }
        if ctx.isScalar(n.inputs[0], constant) { return n.inputs[1] }
        return nil
    }

    /// `value = Mul(v, c)` or `Mul(c, v)` with the scalar c ≈ `constant`, read only by `reader`.
    static func scaledBy(_ ctx: FusionContext, _ value: String, _ constant: Double, readBy reader: Int) -> (Int, String)? {
        guard let mul = ctx.inner(value, op: "Mul", readBy: reader), let v = otherThan(ctx, ctx.node(mul), constant: constant)
        else { return nil }
        return (mul, v)
    }

    /// Nodes of `a = Add(Erf(x / √2), 1)` (or `x · (1/√2)`), each value read only inside.
    static func onePlusErf(_ ctx: FusionContext, _ a: String, x: String, reader muls: [Int]) -> [Int]? {
        guard let r = ctx.readers(of: a).first, ctx.readers(of: a).count == 1, muls.contains(r),
              let add = ctx.inner(a, op: "Add", readBy: r) else { return nil }
        let addNode = ctx.node(add)
        guard addNode.inputs.count == 2 else { return nil }
        let (one, e) = ctx.isScalar(addNode.inputs[1], 1) ? (addNode.inputs[1], addNode.inputs[0]) : (addNode.inputs[0], addNode.inputs[1])
        guard ctx.isScalar(one, 1), let erf = ctx.inner(e, op: "Erf", readBy: add) else { return nil }
        let t = ctx.node(erf).inputs[0]
        if let div = ctx.inner(t, op: "Div", readBy: erf) {
            let d = ctx.node(div)
            guard d.inputs.count == 2, d.inputs[0] == x, ctx.isScalar(d.inputs[1], 2.0.squareRoot()) else { return nil }
            return [add, erf, div]
        }
        if let mul = ctx.inner(t, op: "Mul", readBy: erf) {
            let m = ctx.node(mul)
            guard m.inputs.count == 2 else { return nil }
            let c = m.inputs[0] == x ? m.inputs[1] : m.inputs[0]
            guard m.inputs.contains(x), ctx.isScalar(c, 0.5.squareRoot()) else { return nil }
            return [add, erf, mul]
        }
        return nil
    }
}

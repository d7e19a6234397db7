/// GELU, erf form: `x · 0.5 · (1 + erf(x / √2))` → `graft:FusedGelu(x)`.
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
            guard let (nodes, x) = gelu(ctx, root: root) else { continue }
            let last = ctx.node(root)
            ctx.rewrite(nodes, Fusion.node("FusedGelu", replacing: last, inputs: [x], outputs: [last.outputs[0]]))
        }
    }

    /// The chain's node indices and x when the product under `root` is an erf GELU.
    static func gelu(_ ctx: FusionContext, root: Int) -> ([Int], String)? {
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
            if let inner = onePlusErf(ctx, a, x: x, reader: muls) { return (muls + inner, x) }
        }
        return nil
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

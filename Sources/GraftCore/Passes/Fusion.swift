#if canImport(Glibc)
import Glibc
#endif

/// Load-time fusions: rewrites chains of elementwise nodes that the exporters write for one
/// framework op (GELU, scaled + masked softmax, attention, LayerNorm / RMS norm, residual add + norm) into
/// one node of the private domain `graft`, whose kernel (`Kernels/FusedKernels.swift`) does the
/// chain in one pass. Matchers: `FusionGelu`, `FusionSoftmax`, `FusionAttention`, `FusionGroupedKV`,
/// `FusionNorm`.
///
/// A chain is rewritten only when the rewrite computes the same function:
/// - every value inside the chain is read only by the chain and is not a graph output;
/// - constants are the expected ones (within 1e-6 relative) and scalars where the kernel takes a
///   scalar;
/// - the fused node's inputs are float32 and have shapes its kernel handles, by the load-time
///   probes (`SymbolicShapes.inferTypes`); without them only GELU (whose Erf / Tanh are
///   float-only and shape-agnostic) fuses.
/// The fused node keeps the output names of the chain (the last node's output, and an inner
/// value that is also read outside, like the residual sum), so nothing downstream changes.
///
/// Sites and blocks: the pass runs after `SiteDiscovery` and `BlockDiscovery` on the unfused
/// graph, and never absorbs a site's MatMul/Gemm, an Add of a site's output and a value that is
/// not computed at run time (a bias Add, which the planner treats as the end of the site), or a
/// node of a gated MLP block (MixLoRA skips those steps). Sites and blocks therefore refer to values the fused graph still has, computed by the
/// same nodes as before.
///
/// `GRAFT_FUSE=0` in the environment (read once) disables the pass.
package enum Fusion {
    package static let domain = "graft"

    /// Whether fusions run by default: false when `GRAFT_FUSE=0`.
    package static let enabledByEnvironment: Bool = {
        guard let v = getenv("GRAFT_FUSE") else { return true }
        return String(cString: v) != "0"
    }()

    /// The fused graph (nodes re-sorted), or `graph` itself when nothing matched or the
    /// rewritten graph fails validation (which would be a bug in a matcher; the safe answer is
    /// the unfused graph).
    package static func run(_ graph: Graph, shapes: [String: [Dim]]?, dtypes: [String: DType]?, sites: [Site], blocks: [MLPBlock]) -> Graph {
        var g = graph
        var changed = false
        // A stage that rewrote nothing leaves its context as it found it (no rewrites, nothing
        // used), so the next stage reuses it; the maps are rebuilt only after a rewrite.
        var ctx: FusionContext?
        for stage in stages {
            var c = ctx ?? FusionContext(graph: g, shapes: shapes, dtypes: dtypes, sites: sites, blocks: blocks)
            stage(&c)
            ctx = c
            if c.rewrites.isEmpty { continue }
            g = c.apply()
            changed = true
            ctx = nil
        }
        guard changed else { return graph }
        // The attention fusion leaves its Reshapes' shape computations unread: drop them.
        return (try? DeadNodeElimination.run(GraphValidation.validateAndSort(g))) ?? graph
    }

    /// Matchers in the order they run; each sees the graph the previous ones left (the residual
    /// add + norm matcher reads the norm nodes the LayerNorm and RMS matchers wrote).
    static let stages: [@Sendable (inout FusionContext) -> Void] = [
        FusionGelu.match,
        FusionSoftmax.match,
        FusionAttention.match,       // reads the FusedScaledSoftmax nodes FusionSoftmax wrote
        FusionGroupedKV.match,       // attention products left unfused over repeated K/V heads
        FusionNorm.matchLayerNorm,   // before RMS: its tail is an RMS norm of the centred value
        FusionNorm.matchRMS,
        FusionNorm.matchAddNorm,
    ]
}

/// One matcher's view of the graph: who produces and reads each value, what may not be absorbed,
/// and the rewrites found so far.
struct FusionContext {
    let graph: Graph
    /// Symbolic dims and element types of the unfused graph's values (`SymbolicShapes`); nil
    /// when the probes could not plan the graph. Fused nodes keep the names of the values they
    /// write, so later stages still find them here.
    let shapes: [String: [Dim]]?
    let dtypes: [String: DType]?
    /// Value → index of the node producing it.
    private(set) var producer: [String: Int] = [:]
    /// Value → indices of the nodes reading it (each node once).
    private(set) var readers: [String: [Int]] = [:]
    let graphOutputs: Set<String>
    /// Nodes no chain may absorb: sites' products, Adds of a site output and a constant (bias),
    /// nodes of MLP blocks.
    private(set) var pinned = Set<Int>()
    /// Chosen rewrites: the nodes a fused node replaces, and the fused node.
    private(set) var rewrites: [(nodes: [Int], fused: Node)] = []
    private var used = Set<Int>()

    init(graph: Graph, shapes: [String: [Dim]]?, dtypes: [String: DType]?, sites: [Site], blocks: [MLPBlock]) {
        self.graph = graph
        self.shapes = shapes
        self.dtypes = dtypes
        graphOutputs = Set(graph.outputs.map(\.name))
        for (i, n) in graph.nodes.enumerated() {
            for o in n.outputs where !o.isEmpty { producer[o] = i }
        }
        readers = Node.readers(of: graph.nodes)
        // Run-time values: graph inputs and what is computed from them, except through Shape /
        // Size (whose outputs, and what is computed from those alone, the planner folds).
        var runtime = Set(graph.inputs.map(\.name))
        for n in graph.nodes where n.opType != "Shape" && n.opType != "Size" && n.inputs.contains(where: runtime.contains) {
            for o in n.outputs where !o.isEmpty { runtime.insert(o) }
        }
        for s in sites {
            if let p = producer[s.output] { pinned.insert(p) }
            // An Add of the site's output and a constant may be its bias, which the planner
            // treats as the end of the site (adapter terms and output scales apply after it).
            // A residual Add (both operands computed at run time) is not.
            for r in readers[s.output] ?? [] where graph.nodes[r].opType == "Add"
                && !graph.nodes[r].inputs.allSatisfy({ $0 == s.output || runtime.contains($0) }) {
                pinned.insert(r)
            }
        }
        for b in blocks {
            for v in b.internalValues { if let p = producer[v] { pinned.insert(p) } }
        }
    }

    func node(_ i: Int) -> Node { graph.nodes[i] }

    /// The node producing `value` when it has type `op` in the default domain, is free to fuse
    /// and `value` is read by nothing but `reader` (and is not a graph output).
    func inner(_ value: String, op: String, readBy reader: Int) -> Int? {
        guard let p = producer[value], isDefault(p, op), free(p),
              readers[value] == [reader], !graphOutputs.contains(value) else { return nil }
        return p
    }

    /// Like `inner`, but the value may also be read by other nodes of the chain (`chain`).
    func inner(_ value: String, op: String, readOnlyBy chain: Set<Int>) -> Int? {
        guard let p = producer[value], isDefault(p, op), free(p), !graphOutputs.contains(value),
              let r = readers[value], r.allSatisfy(chain.contains) else { return nil }
        return p
    }

    /// The node producing `value` when it has type `op` (any readers).
    func producer(of value: String, op: String) -> Int? {
        guard let p = producer[value], isDefault(p, op) else { return nil }
        return p
    }

    func isDefault(_ i: Int, _ op: String) -> Bool {
        let n = graph.nodes[i]
        return n.opType == op && n.isDefaultDomain
    }

    /// Not pinned and not already part of another rewrite.
    func free(_ i: Int) -> Bool { !pinned.contains(i) && !used.contains(i) }

    func readers(of value: String) -> [Int] { readers[value] ?? [] }

    /// Whether every listed value is known to be float32 (from the symbolic-shape probes).
    func areFloat(_ values: [String]) -> Bool { values.allSatisfy { dtypes?[$0] == .float32 } }

    /// The value of a one-element float32 initializer.
    func scalar(_ value: String) -> Float? {
        guard let t = graph.initializers[value], t.dtype == .float32, t.count == 1 else { return nil }
        return t.floats()[0]
    }

    /// Whether `value` is a one-element float32 constant within 1e-6 relative of `expected`.
    func isScalar(_ value: String, _ expected: Double) -> Bool {
        guard let v = scalar(value) else { return false }
        return Fusion.close(Double(v), expected)
    }

    /// Records a rewrite: `nodes` (indices) are removed and `fused` takes the place of the last
    /// of them. Refused (false) when a node is already taken.
    @discardableResult
    mutating func rewrite(_ nodes: [Int], _ fused: Node) -> Bool {
        guard nodes.allSatisfy(free) else { return false }
        used.formUnion(nodes)
        rewrites.append((nodes, fused))
        return true
    }

    /// The graph with every recorded rewrite applied (fused node at its chain's last position).
    func apply() -> Graph {
        var g = graph
        var replace: [Int: Node] = [:]
        var drop = Set<Int>()
        for r in rewrites {
            let last = r.nodes.max()!
            replace[last] = r.fused
            drop.formUnion(r.nodes.filter { $0 != last })
        }
        g.nodes = graph.nodes.indices.compactMap { i in drop.contains(i) ? nil : (replace[i] ?? graph.nodes[i]) }
        return g
    }
}

extension Fusion {
    /// |a - b| ≤ 1e-6 · |b|.
    static func close(_ a: Double, _ b: Double) -> Bool { Swift.abs(a - b) <= 1e-6 * Swift.abs(b) }

    /// A fused node named after the chain's last node (so errors name the model's own node).
    static func node(_ opType: String, replacing last: Node, inputs: [String], outputs: [String],
                     attributes: [String: Attribute] = [:]) -> Node {
        Node(name: last.name, opType: opType, domain: domain, inputs: inputs, outputs: outputs,
             attributes: attributes, metadata: last.metadata)
    }
}

/// Everything one input-shape signature needs to run: kernels compiled for concrete shapes,
/// the slot each value lives in, and arena offsets from liveness. Built once per signature
/// and cached by the session; running it allocates nothing.
package final class Plan: @unchecked Sendable {
    /// Where a slot's pointer comes from at run time.
    enum Source {
        case constant(HostTensor)
        case arena(offset: Int)
        case input(Int)       // index into the graph's declared inputs
        case output(Int)      // index into the graph's outputs: written straight into the result
    }

    struct Step {
        let kernel: CompiledKernel
        let label: String
        /// The node's operator type (per-operator timing, `StepProfile`).
        let opType: String
        let inputSlots: UnsafeMutablePointer<Int32>
        let outputSlots: UnsafeMutablePointer<Int32>
        /// Site whose linear product this step computes (input scaling and merged weights
        /// apply around it), or -1.
        var linearOf: Int32 = -1
        /// Site whose output is complete after this step (the product, or the bias add that
        /// follows it): adapter terms and output scales are applied here. -1: none.
        var outputOf: Int32 = -1
        /// Model block (MLPBlock.index) whose activation chain or Mul this step computes: a block
        /// mixture covering every row skips it (BlockMixtureExecution.swift). -1: none.
        var blockOf: Int32 = -1
        /// This step's product fused with the next step (an activation of its output, which it
        /// then writes to the next step's outputs): run in place of both when nothing acts at
        /// the site (`LinearEpilogues`). nil: none.
        var withNext: CompiledKernel?
    }

    /// Where a site's buffers live in this plan.
    package struct SiteSlots: Sendable {
        package let x: Int32          // input activations [rows, in]
        package let weight: Int32     // the weight constant
        package let y: Int32          // the site's output [rows, out] (after its bias, if fused)
        package let rows: Int
    }

    let sources: [Source]
    let steps: [Step]
    /// Per site index: its slots in this plan (nil when the site was folded away).
    package let siteSlots: [SiteSlots?]
    let arenaBytes: Int
    /// Per graph output: its type, and the slot to copy from when the output is not written by
    /// a step (a constant or a graph input passed through).
    package let outputTypes: [TensorType]
    let outputCopySlots: [Int?]

    private init(sources: [Source], steps: [Step], siteSlots: [SiteSlots?], arenaBytes: Int, outputTypes: [TensorType], outputCopySlots: [Int?]) {
        self.sources = sources
        self.siteSlots = siteSlots
        self.steps = steps
        self.arenaBytes = arenaBytes
        self.outputTypes = outputTypes
        self.outputCopySlots = outputCopySlots
    }

    deinit {
        for s in steps {
            s.inputSlots.deallocate()
            s.outputSlots.deallocate()
        }
    }

    /// The graph compiled for concrete input types: every value's type, the values known at
    /// plan time (initializers and folded nodes), and the nodes left to run, in order.
    struct CompiledGraph {
        var types: [String: TensorType] = [:]
        var constants: [String: HostTensor] = [:]
        var pending: [(node: Node, kernel: CompiledKernel)] = []

        /// Value → indices of the pending steps reading it (each step once).
        func readers() -> [String: [Int]] { Node.readers(of: pending.lazy.map(\.node)) }

        /// The pending step that adds a constant bias row to `product` (a weight product
        /// `columns` wide), and the bias; or nil: `product` is not a graph output and its only reader is an
        /// ONNX Add of it and a float32 constant of `columns` values whose last dim is `columns`,
        /// giving the product's type. Where a site's output is complete (`Plan.build`), and
        /// what `LinearEpilogues` moves into the product's kernel.
        func biasAdd(of product: String, columns: Int, readers: [String: [Int]],
                     graphOutputs: Set<String>) -> (step: Int, bias: HostTensor)? {
            guard !graphOutputs.contains(product), let r = readers[product], r.count == 1 else { return nil }
            let add = pending[r[0]].node
            guard add.isDefaultDomain, add.opType == "Add", add.inputs.count == 2,
                  add.outputs.count == 1, add.inputs.contains(product),
                  let other = add.inputs.first(where: { $0 != product }), let bias = constants[other],
                  bias.dtype == .float32, bias.count == columns, bias.shape.last == columns,
                  types[add.outputs[0]] == types[product]
            else { return nil }
            return (r[0], bias)
        }
    }

    /// Compiles every node for the given input types (in the order of `graph.inputs`) and
    /// folds those whose inputs are all known now: the exporters' shape subgraphs
    /// (`Shape → Gather → Concat → Reshape`) end here, so no shape arithmetic runs per request.
    static func compile(graph: Graph, inputTypes: [TensorType], threads: Int) throws -> CompiledGraph {
        var c = CompiledGraph()
        c.constants = graph.initializers
        for (decl, t) in zip(graph.inputs, inputTypes) { c.types[decl.name] = t }
        for (name, t) in c.constants { c.types[name] = TensorType(t.dtype, t.shape) }
        for node in graph.nodes {
            let inTypes = try node.inputs.map { name -> TensorType? in
                if name.isEmpty { return nil }
                guard let t = c.types[name] else { throw GraftError(.internalError, "\(node.label): input '\(name)' has no type when planning") }
                return t
            }
            let consts = node.inputs.map { $0.isEmpty ? nil : c.constants[$0] }
            let kernel = try KernelRegistry.compile(node, inputTypes: inTypes, constants: consts, opset: graph.opset, threads: threads,
                                                   limits: graph.limits)
            for (i, name) in node.outputs.enumerated() where !name.isEmpty {
                guard i < kernel.outputTypes.count else {
                    throw GraftError(.unsupported, "\(node.label): output \(i) ('\(name)') is not produced by Graft's kernel")
                }
                c.types[name] = kernel.outputTypes[i]
            }
            let allConstant = node.inputs.allSatisfy { $0.isEmpty || c.constants[$0] != nil }
            if kernel.folded != nil || allConstant {
                let outs = try KernelRegistry.execute(kernel, inputs: consts)
                for (name, t) in zip(node.outputs, outs) where !name.isEmpty { c.constants[name] = t }
            } else {
                c.pending.append((node, kernel))
            }
        }
        return c
    }

    /// Plans `graph` for the given concrete input types (in the order of `graph.inputs`).
    /// `epilogues`: fuse weight products with their bias Add and activation (`LinearEpilogues`;
    /// part of the model's load-time fusions, off with them).
    package static func build(graph: Graph, inputTypes: [TensorType], threads: Int, sites: [Site] = [],
                              blocks: [MLPBlock] = [], epilogues: Bool = false) throws -> Plan {
        var compiled = try compile(graph: graph, inputTypes: inputTypes, threads: threads)
        // Copy-only steps (Reshape, Squeeze, ...) become views of their input's storage.
        let viewRoot = ViewAliasing.apply(&compiled, graphOutputs: Set(graph.outputs.map(\.name)))
        let fusedLinear = epilogues ? try LinearEpilogues.apply(&compiled, graph: graph, threads: threads) : LinearEpilogues.Result()
        let types = compiled.types
        let constants = compiled.constants
        let pending = compiled.pending

        // 2. Slots: one per value a step touches or an output needs.
        var slotOf: [String: Int] = [:]
        var sources: [Source] = []
        let inputIndex = Dictionary(graph.inputs.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { a, _ in a })
        var outputIndex: [String: Int] = [:]
        for (k, out) in graph.outputs.enumerated() where outputIndex[out.name] == nil { outputIndex[out.name] = k }
        var stepOutputs = Set<String>()
        for p in pending { for o in p.node.outputs where !o.isEmpty { stepOutputs.insert(o) } }

        // Liveness: last step reading each arena value.
        var lastUse: [String: Int] = [:]
        for (i, p) in pending.enumerated() { for name in p.node.inputs where !name.isEmpty { lastUse[name] = i } }

        // Sites: the step computing each site's product, and the step after which its output
        // is complete — the bias Add when the product's only reader adds a constant [out]
        // vector, so that output scales cover the bias as the framework's Linear does (or the
        // product's own step, when its kernel adds the bias: `LinearEpilogues`).
        var stepProducing: [String: Int] = [:]
        for (i, p) in pending.enumerated() {
            for o in p.node.outputs where !o.isEmpty { stepProducing[o] = i }
        }
        let readers = compiled.readers()
        let graphOutputs = Set(graph.outputs.map(\.name))
        var linearStepOfSite: [Int: Int] = [:]
        var outputStepOfSite: [Int: (step: Int, value: String)] = [:]
        for site in sites {
            let withBias = fusedLinear.absorbed[site.output]
            guard let i = stepProducing[withBias ?? site.output] else { continue }
            linearStepOfSite[site.index] = i
            var final = (step: i, value: withBias ?? site.output)
            if withBias == nil,
               let add = compiled.biasAdd(of: site.output, columns: site.outFeatures, readers: readers, graphOutputs: graphOutputs) {
                final = (add.step, pending[add.step].node.outputs[0])
            }
            outputStepOfSite[site.index] = final
            // x is read again when the site's output is complete.
            lastUse[site.input] = max(lastUse[site.input] ?? 0, final.step)
        }

        // A product fused with the activation after it writes that step's output while still
        // reading its own inputs: they must not share storage with it.
        for i in fusedLinear.withNext.keys {
            for name in pending[i].node.inputs where !name.isEmpty { lastUse[name] = max(lastUse[name] ?? 0, i + 1) }
        }

        // Blocks: a block mixture reads x, gate's and up's outputs when down's product runs.
        var blockOfValue: [String: Int] = [:]
        for b in blocks {
            guard let d = linearStepOfSite[b.down] else { continue }
            for v in [sites[b.gate].input, sites[b.gate].output, sites[b.up].output] { lastUse[v] = max(lastUse[v] ?? 0, d) }
            for v in b.internalValues { blockOfValue[v] = b.index }
        }

        ViewAliasing.extendLiveness(&lastUse, rootOf: viewRoot)
        var arena = ArenaAllocator()
        var arenaOffset: [String: (offset: Int, bytes: Int)] = [:]
        var releaseAt: [[String]] = Array(repeating: [], count: pending.count)
        func slot(for name: String) throws -> Int {
            if let s = slotOf[name] { return s }
            let source: Source
            if let c = constants[name] {
                source = .constant(c)
            } else if let k = inputIndex[name] {
                source = .input(k)
            } else if let root = viewRoot[name] {
                source = sources[try slot(for: root)]   // a view: the root's storage
            } else {
                throw GraftError(.internalError, "value '\(name)' has no storage when planning")
            }
            slotOf[name] = sources.count
            sources.append(source)
            return sources.count - 1
        }

        var steps: [Step] = []
        steps.reserveCapacity(pending.count)
        // The steps' slot lists are manually allocated and owned by the Plan once it exists;
        // if planning throws before that, free them here.
        var handedOver = false
        defer {
            if !handedOver {
                for s in steps {
                    s.inputSlots.deallocate()
                    s.outputSlots.deallocate()
                }
            }
        }
        for (i, p) in pending.enumerated() {
            let inSlots = try p.node.inputs.map { $0.isEmpty ? Int32(-1) : Int32(try slot(for: $0)) }
            let ins = UnsafeMutablePointer<Int32>.allocate(capacity: max(inSlots.count, 1))
            for (j, s) in inSlots.enumerated() { ins[j] = s }
            let outCount = p.kernel.outputTypes.count
            let outs = UnsafeMutablePointer<Int32>.allocate(capacity: max(outCount, 1))
            for j in 0..<outCount {
                let name = j < p.node.outputs.count ? p.node.outputs[j] : ""
                let bytes = p.kernel.outputTypes[j].byteCount
                if !name.isEmpty, let k = outputIndex[name] {
                    sources.append(.output(k))
                } else {
                    let offset = arena.allocate(bytes)
                    sources.append(.arena(offset: offset))
                    if name.isEmpty || lastUse[name] == nil {
                        releaseAt[i].append("#\(sources.count - 1)")   // scratch: free after this step
                        arenaOffset["#\(sources.count - 1)"] = (offset, bytes)
                    } else {
                        arenaOffset[name] = (offset, bytes)
                        releaseAt[lastUse[name]!].append(name)
                    }
                }
                if !name.isEmpty { slotOf[name] = sources.count - 1 }
                outs[j] = Int32(sources.count - 1)
            }
            steps.append(Step(kernel: p.kernel, label: p.node.label, opType: p.node.opType, inputSlots: ins, outputSlots: outs))
            for (site, j) in linearStepOfSite where j == i { steps[i].linearOf = Int32(site) }
            for (site, f) in outputStepOfSite where f.step == i { steps[i].outputOf = Int32(site) }
            if let o = p.node.outputs.first, let b = blockOfValue[o] { steps[i].blockOf = Int32(b) }
            steps[i].withNext = fusedLinear.withNext[i]
            // Release only after this step's outputs are placed, so outputs never alias inputs.
            for name in releaseAt[i] {
                if let a = arenaOffset[name] { arena.release(a.offset, a.bytes) }
            }
        }

        // 3. Graph outputs not written by a step are copied from their slot.
        var outputTypes: [TensorType] = []
        var copySlots: [Int?] = []
        for (k, out) in graph.outputs.enumerated() {
            guard let t = types[out.name] else { throw GraftError(.internalError, "graph output '\(out.name)' has no type") }
            outputTypes.append(t)
            copySlots.append(stepOutputs.contains(out.name) && outputIndex[out.name] == k ? nil : try slot(for: out.name))
        }
        var siteSlots = [SiteSlots?](repeating: nil, count: sites.count)
        for site in sites {
            guard let f = outputStepOfSite[site.index], let x = slotOf[site.input], let w = slotOf[site.weight],
                  let y = slotOf[f.value], let xt = types[site.input] else { continue }
            siteSlots[site.index] = SiteSlots(x: Int32(x), weight: Int32(w), y: Int32(y), rows: xt.count / max(site.inFeatures, 1))
        }
        try graph.limits.check(.tensorBytes, arena.high, "the work arena for inputs \(inputTypes)")
        handedOver = true
        return Plan(sources: sources, steps: steps, siteSlots: siteSlots, arenaBytes: arena.high, outputTypes: outputTypes, outputCopySlots: copySlots)
    }

    package var stepCount: Int { steps.count }
    package var slotCount: Int { sources.count }
}

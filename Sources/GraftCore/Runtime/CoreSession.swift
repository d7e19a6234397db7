/// Runs a model for one caller thread at a time: plans per input-shape signature (cached),
/// one arena reused by every run, no allocation per run after warm-up beyond the outputs.
package final class CoreSession {
    package let model: CoreModel
    package let threads: Int
    /// Plans kept per signature before the cache is cleared (bounds memory when callers
    /// send many distinct shapes).
    package static let maxCachedPlans = 64

    private var plans: [[Int]: Plan] = [:]
    private var arena: UnsafeMutableRawPointer?
    private var arenaCapacity = 0
    private var slots: UnsafeMutablePointer<UnsafeMutableRawPointer>?
    private var slotCapacity = 0
    /// Adapters bound for every run, and the per-row set of the current run.
    let bound: SessionAdapters
    let perRow: SessionAdapters
    /// What setAdapters bound (generator adapters are instantiated per run from it), and the
    /// state of a run with generated weights (cleared when the run ends).
    var boundList: [(CoreAdapter, Float)] = []
    var boundMerged = false
    let request: SessionAdapters
    /// Whether the last run's generated weights were merged (nil: it generated none).
    package internal(set) var lastRunMergedGenerated: Bool?
    /// When set, runs add each step's wall time to it, by operator type (`graft bench --profile`).
    package var profile: StepProfile?
    /// Threads for the kernels' parallel regions (threads − 1 of them; the caller is the
    /// other), started on the first run that needs them and stopped with the session.
    private var pool: WorkerPool?

    /// Refuses a thread count outside 1...256 (also used when the C API's options are set).
    package static func checkThreads(_ threads: Int) throws {
        guard (1...256).contains(threads) else {
            throw GraftError(.invalidArgument, "thread count must be between 1 and 256 (got \(threads))")
        }
    }

    package init(model: CoreModel, threads: Int = 1) throws {
        try Self.checkThreads(threads)
        self.model = model
        self.threads = threads
        bound = SessionAdapters(siteCount: model.sites.count)
        perRow = SessionAdapters(siteCount: model.sites.count)
        request = SessionAdapters(siteCount: model.sites.count)
    }

    /// Binds adapters for every following run, each with a scale (replacing what was bound).
    /// Unmerged (default): terms are evaluated at each site, and swapping is pointer work.
    /// Merged: low-rank terms are folded into session-private weight copies (W + c·s·B·A) —
    /// faster per run, costlier to bind; for one static adapter over whole batches.
    package func setAdapters(_ adapters: [(CoreAdapter, Float)], merged: Bool = false) throws {
        try model.limits.check(.boundAdapters, adapters.count, "the session", verb: "would bind", unit: "adapters at once")
        try bound.bind(adapters, model: model, merged: merged)
        boundList = adapters
        boundMerged = merged
    }

    deinit {
        arena?.deallocate()
        slots?.deallocate()
    }

    /// Checks the inputs against the model's declarations and returns them in declared order.
    package func bind(_ inputs: [String: HostTensor]) throws -> [HostTensor] {
        let decls = model.graph.inputs
        for name in inputs.keys where !decls.contains(where: { $0.name == name }) {
            throw GraftError(.invalidArgument, "'\(name)' is not an input of the model; its inputs are \(decls.map { "'\($0.name)'" }.joined(separator: ", "))")
        }
        return try decls.map { decl in
            guard let t = inputs[decl.name] else {
                throw GraftError(.invalidArgument, "input '\(decl.name)' is missing")
            }
            guard t.dtype == decl.dtype else {
                throw GraftError(.invalidArgument, "input '\(decl.name)' must be \(decl.dtype), got \(t.dtype)")
            }
            if let dims = decl.dims {
                guard dims.count == t.rank else {
                    throw GraftError(.invalidArgument, "input '\(decl.name)' must have rank \(dims.count) (\(dims.map(\.description))), got shape \(t.shape)")
                }
                for (i, (d, n)) in zip(dims, t.shape).enumerated() {
                    if case .fixed(let want) = d, want != n {
                        throw GraftError(.invalidArgument, "input '\(decl.name)' dimension \(i) must be \(want), got \(n) (shape \(t.shape))")
                    }
                }
            }
            return t
        }
    }

    /// The plan for these (bound) inputs, built on first use of their shape signature.
    package func plan(for inputs: [HostTensor]) throws -> Plan {
        let key = inputs.flatMap { [Int($0.dtype.rawValue), $0.rank] + $0.shape }
        if let p = plans[key] { return p }
        let p = try Plan.build(graph: model.graph, inputTypes: inputs.map { TensorType($0.dtype, $0.shape) }, threads: threads, sites: model.sites,
                               blocks: model.blocks, epilogues: model.fused)
        if plans.count >= Self.maxCachedPlans { plans.removeAll() }
        plans[key] = p
        return p
    }

    /// Runs the model. Outputs are new tensors keyed by output name. `rowAdapters`, when
    /// given, names one adapter (or nil: the base model) per batch row for this run only, in
    /// place of the bound adapters. `modalities`: one modality id per token (batch × sequence,
    /// row-major) for adapters that act only on some modalities.
    /// `aux`: auxiliary inputs (e.g. "image_features") from which generator adapters (VLoRA),
    /// bound or per row, make this run's weights; `merge` chooses merged or unmerged generated
    /// weights (see GeneratedRun.swift). `routing`: per-request control of routed experts and/or
    /// a record of routing decisions.
    package func run(_ named: [String: HostTensor], rowAdapters: [CoreAdapter?]? = nil, modalities: [UInt8]? = nil,
                     aux: [String: HostTensor]? = nil, merge: MergePolicy = .auto, routing: RoutingControl? = nil) throws -> [String: HostTensor] {
        let inputs = try bind(named)
        let plan = try plan(for: inputs)
        let outputs = plan.outputTypes.map { HostTensor(zeros: $0.dtype, shape: $0.shape) }
        try execute(plan, inputs: inputs, outputs: outputs, rowAdapters: rowAdapters, modalities: modalities, aux: aux, merge: merge,
                    routing: routing)
        var result: [String: HostTensor] = [:]
        for (decl, t) in zip(model.graph.outputs, outputs) { result[decl.name] = t }
        return result
    }

    /// Runs `plan` reading `inputs` in place and writing `outputs` (types must match the plan).
    package func execute(_ plan: Plan, inputs: [HostTensor], outputs: [HostTensor], rowAdapters: [CoreAdapter?]? = nil,
                         modalities: [UInt8]? = nil, aux: [String: HostTensor]? = nil, merge: MergePolicy = .auto,
                         routing: RoutingControl? = nil) throws {
        var active: SessionAdapters? = bound.isEmpty ? nil : bound
        var batch = 1
        if let rowAdapters {
            guard !rowAdapters.isEmpty else { throw GraftError(.invalidArgument, "per-row adapters: the list is empty") }
            if let first = inputs.first, first.rank > 0, first.shape[0] != rowAdapters.count {
                throw GraftError(.invalidArgument, "per-row adapters name \(rowAdapters.count) rows but the batch has \(first.shape[0])")
            }
            let distinct = Set(rowAdapters.compactMap { $0.map(ObjectIdentifier.init) }).count
            try model.limits.check(.boundAdapters, distinct, "per-row adapters: the batch", verb: "uses", unit: "distinct adapters")
            batch = rowAdapters.count
        }
        lastRunMergedGenerated = nil
        defer { request.clear() }   // generated weights never outlive their run
        if let rows = try bindGenerated(plan: plan, inputs: inputs, rowAdapters: rowAdapters, aux: aux, merge: merge) {
            active = request
            batch = rows
        } else if let rowAdapters {
            try perRow.bindRows(rowAdapters, model: model)
            active = perRow
        }
        active?.modalities = modalities
        active?.routing = routing
        if let routing { try SessionAdapters.checkRouting(routing, active: active) }
        try reserve(arenaBytes: plan.arenaBytes, slots: plan.slotCount)
        let slots = self.slots!
        let arena = self.arena!
        for (i, source) in plan.sources.enumerated() {
            switch source {
            case .constant(let t): slots[i] = t.raw
            case .arena(let offset): slots[i] = arena + offset
            case .input(let k): slots[i] = inputs[k].raw
            case .output(let k): slots[i] = outputs[k].raw
            }
        }
        if let active {
            for (site, w) in active.mergedWeights {
                if let s = plan.siteSlots[site] { slots[Int(s.weight)] = w.raw }
            }
        }
        let sites = model.sites
        /// One step, with the adapters' work around it.
        func runStep(_ step: Plan.Step) throws {
            guard let active else {
                try step.kernel.run(KernelIO(slots: slots, inputSlots: step.inputSlots, outputSlots: step.outputSlots))
                return
            }
            // A block mixture covering every row computes the block's activation and Mul itself.
            if step.blockOf >= 0 && active.blockMixtures.skips(block: Int(step.blockOf)) { return }
            var blockInput: UnsafeMutableRawPointer?
            if step.linearOf >= 0 {
                blockInput = try active.mixBlockInput(downSite: Int(step.linearOf), plan: plan, slots: slots, sites: sites, batch: batch,
                                                        threads: threads)
            }
            var restore: UnsafeMutableRawPointer?
            if step.linearOf >= 0, let s = plan.siteSlots[Int(step.linearOf)] {
                restore = try active.scaleInput(site: Int(step.linearOf), slots: slots, at: s,
                                                inFeatures: sites[Int(step.linearOf)].inFeatures, batch: batch)
            }
            try step.kernel.run(KernelIO(slots: slots, inputSlots: step.inputSlots, outputSlots: step.outputSlots))
            if let restore, let s = plan.siteSlots[Int(step.linearOf)] { slots[Int(s.x)] = restore }
            if step.outputOf >= 0, let s = plan.siteSlots[Int(step.outputOf)] {
                let site = sites[Int(step.outputOf)]
                try active.apply(site: site.index, slots: slots, at: s, inFeatures: site.inFeatures, outFeatures: site.outFeatures, batch: batch)
            }
            if let blockInput, let s = plan.siteSlots[Int(step.linearOf)] {
                active.finishBlock(downSite: Int(step.linearOf), slots: slots, at: s, outFeatures: sites[Int(step.linearOf)].outFeatures)
                slots[Int(s.x)] = blockInput
            }
        }
        /// Runs steps[i], or steps[i] and steps[i + 1] as one (`Plan.Step.withNext`) when nothing
        /// acts at the site; returns how many steps ran.
        func runSteps(at i: Int) throws -> Int {
            let step = plan.steps[i]
            if let fused = step.withNext, active?.isIdle(site: Int(step.outputOf)) ?? true {
                try fused.run(KernelIO(slots: slots, inputSlots: step.inputSlots, outputSlots: plan.steps[i + 1].outputSlots))
                return 2
            }
            try runStep(step)
            return 1
        }
        if threads > 1, pool == nil, WorkerPool.enabled { pool = WorkerPool(workers: threads - 1) }
        try CurrentWorkerPool.with(pool) { try withExtendedLifetime((inputs, outputs)) {
            profile?.beginRun()
            var i = 0
            while i < plan.steps.count {
                guard let profile else { i += try runSteps(at: i); continue }
                let t0 = StepProfile.now()
                let ran = try runSteps(at: i)
                profile.add(plan.steps[i].opType, nanoseconds: StepProfile.now() &- t0)
                i += ran
            }
            for (k, copySlot) in plan.outputCopySlots.enumerated() {
                if let s = copySlot {
                    outputs[k].raw.copyMemory(from: slots[s], byteCount: plan.outputTypes[k].byteCount)
                }
            }
        } }
    }

    private func reserve(arenaBytes: Int, slots count: Int) throws {
        if arenaBytes > arenaCapacity || arena == nil {
            arena?.deallocate()
            arena = UnsafeMutableRawPointer.allocate(byteCount: max(arenaBytes, 64), alignment: 64)
            arenaCapacity = max(arenaBytes, 64)
        }
        if count > slotCapacity || slots == nil {
            slots?.deallocate()
            slots = UnsafeMutablePointer<UnsafeMutableRawPointer>.allocate(capacity: max(count, 1))
            slotCapacity = max(count, 1)
        }
    }
}

import CGraftPlugin
import COpenBLAS
#if canImport(Glibc)
import Glibc
#endif

/// A session's adapter state: which terms apply at each site (built when adapters are bound
/// or a run names per-row adapters), merged weights, and scratch for the skinny GEMMs.
///
/// At a site with input x [rows, in] and output y [rows, out], for each active term:
///     U [m, r] = X_blk · Aᵀ          one GEMM per contiguous block of rows the term applies to
///     U        = σ(U) ⊙ g            activation, per-token gate
///     Y_blk   += (c · s) · U · Bᵀ    c: the caller's scale, s: the term's own
/// then y ⊙= out_scale; input scales are applied to x before the site's product. Routed and
/// modality-gated terms that act on few of the block's tokens run on those rows only
/// (SparseTerms.swift); controlled and modality-grouped routers go through ControlledRouting.swift.
final class SessionAdapters {
    struct ActiveTerm {
        let term: CoreAdapter.LowRank
        let scale: Float
        /// Batch rows the term applies to (nil: all).
        let rows: [Int]?
        /// Index into the site's `routers` whose expert weight gates this term (nil: none).
        var router: Int? = nil
    }

    struct ActiveScale {
        let values: HostTensor
        let rows: [Int]?
    }

    struct SiteState {
        var terms: [ActiveTerm] = []
        /// Routers evaluated once per run at this site, shared by the terms they gate.
        var routers: [CoreAdapter.Router] = []
        /// Who owns each router (its adapter and index there), for per-run routing control.
        var routerOwners: [(adapter: CoreAdapter, index: Int)] = []
        var inputScales: [ActiveScale] = []
        var outputScales: [ActiveScale] = []
    }

    private(set) var sites: [SiteState?]
    /// site → W' = W + Σ c·s·B·A, in the site's weight layout (merged mode only).
    private(set) var mergedWeights: [Int: HostTensor] = [:]
    private var scratch = ScratchBuffer()
    private var gates = ScratchBuffer()
    private var scaledInput = ScratchBuffer()
    private var routerGates = ScratchBuffer()
    /// Gathered rows for routed / modality-gated terms (SparseTerms.swift).
    var sparse = SparseScratch()
    /// Modality id per token for the current run (nil: none given).
    var modalities: [UInt8]?
    /// Block mixtures bound and their scratch (BlockMixtureExecution.swift).
    let blockMixtures = BlockMixtureState()
    /// Per-run control of routed experts (RoutingControl.swift; nil: none).
    var routing: RoutingControl?

    var isEmpty: Bool { sites.allSatisfy { $0 == nil } && mergedWeights.isEmpty && blockMixtures.isEmpty }

    /// Whether no term, scale or router acts at `site` (a merged weight is the kernel's concern:
    /// it sees another weight pointer).
    func isIdle(site: Int) -> Bool { site < 0 || sites[site] == nil }

    init(siteCount: Int) {
        sites = Array(repeating: nil, count: siteCount)
    }

    /// Adapters for the whole batch, each with a caller scale. In merged mode the low-rank
    /// terms are folded into private copies of the weights; channel scales stay at run time.
    func bind(_ bindings: [(CoreAdapter, Float)], model: CoreModel, merged: Bool) throws {
        var next = [SiteState?](repeating: nil, count: model.sites.count)
        var weights: [Int: HostTensor] = [:]
        for (adapter, scale) in bindings {
            try Self.checkBelongs(adapter, to: model)
            guard scale.isFinite else { throw GraftError(.invalidArgument, "adapter '\(adapter.name)': scale \(scale) is not finite") }
            if merged {
                guard adapter.isMergeable else {
                    throw GraftError(.unsupported, "adapter '\(adapter.name)' has gated or non-linear terms and cannot be merged; bind it unmerged")
                }
                for (site, terms) in adapter.lowRank {
                    let w = try weights[site] ?? model.graph.initializers[model.sites[site].weight].map { $0.copy() }
                        ?? { throw GraftError(.internalError, "site \(site) has no weight") }()
                    for t in terms { Self.merge(t, scale: scale, into: w, layout: model.sites[site].layout) }
                    weights[site] = w
                }
            } else {
                for (site, terms) in adapter.lowRank {
                    Self.edit(&next, site) { Self.add(terms, of: adapter, scale: scale, rows: nil, to: &$0) }
                }
            }
            Self.addScales(adapter, rows: nil, into: &next)
        }
        try blockMixtures.bind(bindings.map { ($0.0, $0.1, nil) }, model: model)
        sites = next
        mergedWeights = weights
    }

    /// Per-row adapters for one run: row b uses `rows[b]` (nil: the base model), scale 1.
    func bindRows(_ rows: [CoreAdapter?], model: CoreModel) throws {
        var next = [SiteState?](repeating: nil, count: model.sites.count)
        var byAdapter: [ObjectIdentifier: (CoreAdapter, [Int])] = [:]
        var order: [ObjectIdentifier] = []
        for (b, a) in rows.enumerated() {
            guard let a else { continue }
            try Self.checkBelongs(a, to: model)
            let id = ObjectIdentifier(a)
            if byAdapter[id] == nil { order.append(id); byAdapter[id] = (a, []) }
            byAdapter[id]!.1.append(b)
        }
        for id in order {
            let (adapter, rowList) = byAdapter[id]!
            for (site, terms) in adapter.lowRank {
                Self.edit(&next, site) { Self.add(terms, of: adapter, scale: 1, rows: rowList, to: &$0) }
            }
            Self.addScales(adapter, rows: rowList, into: &next)
        }
        try blockMixtures.bind(order.map { (byAdapter[$0]!.0, 1, byAdapter[$0]!.1) }, model: model)
        sites = next
        mergedWeights = [:]
    }

    /// How one entry of `bind(entries:)` is applied.
    enum Use { case terms, merge, alreadyMerged }

    /// One adapter of a run that mixes generated and static adapters: its caller scale, the
    /// batch rows it applies to (nil: all), and whether its low-rank terms are evaluated per
    /// token, folded into this run's weight copies, or already in `baseWeights`.
    struct Entry {
        let adapter: CoreAdapter
        let scale: Float
        let rows: [Int]?
        let use: Use
    }

    /// Binds entries on top of `baseWeights` (the bound adapters' merged weights, shared:
    /// copied before any change). Merged entries must apply to every row.
    func bind(entries: [Entry], model: CoreModel, baseWeights: [Int: HostTensor]) throws {
        var next = [SiteState?](repeating: nil, count: model.sites.count)
        var weights = baseWeights
        var copied = Set<Int>()
        for e in entries {
            try Self.checkBelongs(e.adapter, to: model)
            guard e.scale.isFinite else { throw GraftError(.invalidArgument, "adapter '\(e.adapter.name)': scale \(e.scale) is not finite") }
            switch e.use {
            case .terms:
                for (site, terms) in e.adapter.lowRank {
                    Self.edit(&next, site) { Self.add(terms, of: e.adapter, scale: e.scale, rows: e.rows, to: &$0) }
                }
            case .merge:
                guard e.rows == nil, e.adapter.isMergeable else {
                    throw GraftError(.unsupported, "adapter '\(e.adapter.name)' cannot be merged here (gated or non-linear terms, or it applies to some rows only); run it unmerged")
                }
                for (site, terms) in e.adapter.lowRank {
                    if !copied.contains(site) {
                        weights[site] = try (weights[site] ?? model.graph.initializers[model.sites[site].weight])?.copy()
                            ?? { throw GraftError(.internalError, "site \(site) has no weight") }()
                        copied.insert(site)
                    }
                    for t in terms { Self.merge(t, scale: e.scale, into: weights[site]!, layout: model.sites[site].layout) }
                }
            case .alreadyMerged:
                break
            }
            Self.addScales(e.adapter, rows: e.rows, into: &next)
        }
        try blockMixtures.bind(entries.filter { $0.use == .terms }.map { ($0.adapter, $0.scale, $0.rows) }, model: model)
        sites = next
        mergedWeights = weights
    }

    /// Drops every term and weight copy (a run's generated weights end with the run).
    func clear() {
        sites = Array(repeating: nil, count: sites.count)
        mergedWeights = [:]
        modalities = nil
        blockMixtures.clear()
    }

    private static func checkBelongs(_ adapter: CoreAdapter, to model: CoreModel) throws {
        guard adapter.model == ObjectIdentifier(model) else {
            throw GraftError(.invalidArgument, "adapter '\(adapter.name)' was loaded for another model; load it for this one")
        }
    }

    private static func addScales(_ adapter: CoreAdapter, rows: [Int]?, into next: inout [SiteState?]) {
        for (site, v) in adapter.inputScales { edit(&next, site) { $0.inputScales.append(ActiveScale(values: v, rows: rows)) } }
        for (site, v) in adapter.outputScales { edit(&next, site) { $0.outputScales.append(ActiveScale(values: v, rows: rows)) } }
    }

    /// Adds an adapter's terms at one site, bringing the routers they use along once each.
    private static func add(_ terms: [CoreAdapter.LowRank], of adapter: CoreAdapter, scale: Float, rows: [Int]?, to state: inout SiteState) {
        var slotOfRouter: [Int: Int] = [:]
        for t in terms {
            var active = ActiveTerm(term: t, scale: scale * t.scale, rows: rows)
            if let r = t.router {
                if slotOfRouter[r] == nil {
                    slotOfRouter[r] = state.routers.count
                    state.routers.append(adapter.routers[r])
                    state.routerOwners.append((adapter, r))
                }
                active.router = slotOfRouter[r]
            }
            state.terms.append(active)
        }
    }

    private static func edit(_ states: inout [SiteState?], _ site: Int, _ change: (inout SiteState) -> Void) {
        var state = states[site] ?? SiteState()
        change(&state)
        states[site] = state
    }

    /// W += c·s·(B·A) in W's layout: inOut W [in, out] gets (B·A)ᵀ, outIn W [out, in] gets B·A.
    private static func merge(_ t: CoreAdapter.LowRank, scale: Float, into w: HostTensor, layout: Site.WeightLayout) {
        let r = Int32(t.rank), inF = Int32(t.a.shape[1]), outF = Int32(t.b.shape[0])
        let a = t.a.pointer(Float.self), b = t.b.pointer(Float.self), c = w.pointer(Float.self)
        let alpha = scale * t.scale
        switch layout {
        case .inOut:   // W[in, out] += alpha · Aᵀ[in, r] · Bᵀ[r, out]
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, inF, outF, r, alpha, a, inF, b, r, 1, c, outF)
        case .outIn:   // W[out, in] += alpha · B[out, r] · A[r, in]
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, outF, inF, r, alpha, b, r, a, inF, 1, c, inF)
        }
    }

    // MARK: - Run time

    /// Before the site's product: replaces x's slot with x ⊙ in_scale (per affected row) when
    /// the site has input scales. Returns the original pointer to restore, or nil.
    func scaleInput(site: Int, slots: UnsafeMutablePointer<UnsafeMutableRawPointer>, at s: Plan.SiteSlots,
                    inFeatures: Int, batch: Int) throws -> UnsafeMutableRawPointer? {
        guard let state = sites[site], !state.inputScales.isEmpty else { return nil }
        let original = slots[Int(s.x)]
        let n = s.rows * inFeatures
        let dst = scaledInput.floats(n)
        dst.update(from: original.assumingMemoryBound(to: Float.self), count: n)
        for scale in state.inputScales {
            try forEachBlock(scale.rows, rows: s.rows, batch: batch) { start, count in
                let v = scale.values.pointer(Float.self)
                for t in start..<start + count {
                    let row = dst + t * inFeatures
                    for i in 0..<inFeatures { row[i] *= v[i] }
                }
            }
        }
        slots[Int(s.x)] = UnsafeMutableRawPointer(dst)
        return original
    }

    /// After the site's output is complete: adds the low-rank terms and applies output scales.
    func apply(site: Int, slots: UnsafeMutablePointer<UnsafeMutableRawPointer>, at s: Plan.SiteSlots,
               inFeatures inF: Int, outFeatures outF: Int, batch: Int) throws {
        guard let state = sites[site] else { return }
        let x = UnsafePointer(slots[Int(s.x)].assumingMemoryBound(to: Float.self))
        let y = slots[Int(s.y)].assumingMemoryBound(to: Float.self)
        // Router weights for every token: G_r [rows, E_r], one block per router.
        var gateOffsets: [Int] = []
        var total = 0
        for r in state.routers {
            gateOffsets.append(total)
            total += s.rows * r.experts
        }
        let gates = routerGates.floats(max(total, 1))
        for (i, r) in state.routers.enumerated() {
            try routeControlled(r, owner: state.routerOwners[i], x: x, rows: s.rows, inFeatures: inF, into: gates + gateOffsets[i])
        }
        if state.terms.contains(where: { $0.term.modalities != 0 }) {
            guard let ids = modalities else {
                throw GraftError(.invalidArgument, "an adapter acts only on tokens of some modalities; pass a modality id per token with the run")
            }
            guard ids.count == s.rows else {
                throw GraftError(.shapeMismatch, "modality ids cover \(ids.count) tokens but site \(site) sees \(s.rows) rows")
            }
        }
        for active in state.terms {
            let t = active.term
            let r = t.rank
            let a = t.a.pointer(Float.self), b = t.b.pointer(Float.self)
            try forEachBlock(active.rows, rows: s.rows, batch: batch) { start, m in
                if t.gate == nil && (active.router != nil || t.modalities != 0) {
                    let e = active.router.map { state.routers[$0].experts } ?? 0
                    let g = active.router.map { UnsafePointer(gates + gateOffsets[$0] + start * e + t.expert) }
                    if applySparse(active, routed: g, stride: e, start: start, m: m, x: x, y: y, inFeatures: inF, outFeatures: outF) { return }
                }
                let u = scratch.floats(m * r)
                let xb = x + start * inF, yb = y + start * outF
                // U[m, r] = X[m, in] · Aᵀ
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(r), Int32(inF), 1, xb, Int32(inF), a, Int32(inF), 0, u, Int32(r))
                Self.activate(u, count: m * r, t.activation)
                if let gate = t.gate {
                    let g = self.gates.floats(m)
                    gate(t.gateContext, xb, Int64(m), Int64(inF), g)
                    for i in 0..<m { for j in 0..<r { u[i * r + j] *= g[i] } }
                }
                if let ri = active.router {
                    // g[t] = the router's weight for this term's expert on token t.
                    let e = state.routers[ri].experts
                    let g = gates + gateOffsets[ri] + start * e + t.expert
                    for i in 0..<m { for j in 0..<r { u[i * r + j] *= g[i * e] } }
                }
                if t.modalities != 0, let ids = modalities {
                    // Tokens of other modalities get no contribution.
                    for i in 0..<m {
                        let id = UInt32(ids[start + i])
                        if id > 31 || (t.modalities >> id) & 1 == 0 {
                            for j in 0..<r { u[i * r + j] = 0 }
                        }
                    }
                }
                // Y[m, out] += scale · U · Bᵀ
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(outF), Int32(r), active.scale, u, Int32(r), b, Int32(r), 1, yb, Int32(outF))
            }
        }
        for scale in state.outputScales {
            let v = scale.values.pointer(Float.self)
            try forEachBlock(scale.rows, rows: s.rows, batch: batch) { start, m in
                for t in start..<start + m {
                    let row = y + t * outF
                    for o in 0..<outF { row[o] *= v[o] }
                }
            }
        }
    }

    /// Calls `body(firstToken, tokenCount)` for each contiguous block of tokens of `rowList`
    /// (all tokens when nil). Tokens are split evenly into `batch` rows.
    func forEachBlock(_ rowList: [Int]?, rows tokens: Int, batch: Int, _ body: (Int, Int) throws -> Void) throws {
        guard let rowList else {
            if tokens > 0 { try body(0, tokens) }
            return
        }
        guard batch > 0, tokens % batch == 0 else {
            throw GraftError(.shapeMismatch, "per-row adapters name \(batch) rows, but a site sees \(tokens) tokens, which do not split evenly into them")
        }
        let perRow = tokens / batch
        var i = 0
        while i < rowList.count {
            var j = i
            while j + 1 < rowList.count && rowList[j + 1] == rowList[j] + 1 { j += 1 }
            try body(rowList[i] * perRow, (j - i + 1) * perRow)
            i = j + 1
        }
    }

    /// G [rows, E] = gate(X · Wᵀ + b) for one router (`gate: false`: the logits only).
    static func route(_ r: CoreAdapter.Router, x: UnsafePointer<Float>, rows: Int, inFeatures inF: Int, into g: UnsafeMutablePointer<Float>, gate: Bool = true) {
        let e = r.experts
        guard rows > 0 else { return }
        if let b = r.bias {
            for t in 0..<rows { (g + t * e).update(from: b.pointer(Float.self), count: e) }
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(e), Int32(inF), 1, x, Int32(inF),
                    r.weight.pointer(Float.self), Int32(inF), r.bias == nil ? 0 : 1, g, Int32(e))
        if gate { for t in 0..<rows { gateRow(g + t * e, e, r) } }
    }

    /// Turns one token's logits into expert weights in place.
    static func gateRow(_ z: UnsafeMutablePointer<Float>, _ e: Int, _ r: CoreAdapter.Router) {
        if r.gate == GRAFT_GATE_SIGMOID {
            for i in 0..<e { z[i] = 1 / (1 + expf(-z[i])) }
            return
        }
        var m = -Float.infinity
        for i in 0..<e { m = max(m, z[i]) }
        var sum: Float = 0
        for i in 0..<e {
            z[i] = expf(z[i] - m)
            sum += z[i]
        }
        for i in 0..<e { z[i] /= sum }
        switch r.gate {
        case GRAFT_GATE_TOPK:
            // Keep the k largest (ties: lower index first); zero the rest.
            var kept: Float = 0
            for _ in 0..<r.topK {
                var best = -1
                for i in 0..<e where z[i] >= 0 && (best < 0 || z[i] > z[best]) { best = i }
                kept += z[best]
                z[best] = -1 - z[best]          // mark as kept, recoverable
            }
            for i in 0..<e { z[i] = z[i] < 0 ? -1 - z[i] : 0 }
            if r.renormalize && kept > 0 { for i in 0..<e { z[i] /= kept } }
        case GRAFT_GATE_THRESHOLD:
            var kept: Float = 0
            for i in 0..<e {
                if z[i] < r.threshold { z[i] = 0 } else { kept += z[i] }
            }
            if r.renormalize && kept > 0 { for i in 0..<e { z[i] /= kept } }
        default: break
        }
    }

    static func activate(_ u: UnsafeMutablePointer<Float>, count: Int, _ act: Int32) {
        switch act {
        case GRAFT_ACTIVATION_RELU: for i in 0..<count { u[i] = max(u[i], 0) }
        case GRAFT_ACTIVATION_GELU: for i in 0..<count { u[i] = 0.5 * u[i] * (1 + erff(u[i] * 0.70710678)) }
        case GRAFT_ACTIVATION_SILU: for i in 0..<count { u[i] = u[i] / (1 + expf(-u[i])) }
        default: break
        }
    }
}

/// A growable float buffer reused across runs (GrowableBuffer.swift).
typealias ScratchBuffer = GrowableBuffer<Float>

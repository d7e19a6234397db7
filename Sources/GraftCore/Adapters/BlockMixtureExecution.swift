import CGraftPlugin
import CMath
import COpenBLAS

/// Runs block mixtures (graft_block_mixture, MixLoRA) over a gated MLP block
/// `y = down(act(gate(x)) ⊙ up(x))`. For each token t with router weights w[t, e]:
///
///     h_{t,e} = act(G_t + δ_{g,e}(x_t)) ⊙ (U_t + δ_{u,e}(x_t))      G = W_g x, U = W_u x: the graph's own
///                                                                   products, computed once for all experts
///     h̄_t     = Σ_e w[t,e] h_{t,e}
///     y_t     = W_d h̄_t + Σ_e w[t,e] δ_{d,e}(h_{t,e})                W_d once, by linearity
///
/// (exact for any weights: Σ_e w_e W_d h_e = W_d Σ_e w_e h_e; the block has no bias, so nothing
/// else depends on Σ_e w_e). δ_{p,e}(v) = c · s · B σ(A v), c the caller's scale.
///
/// Hooks (CoreSession.execute): the block's activation and Mul steps are skipped when one
/// mixture covers every row; before down's product `mixBlockInput` computes h̄ and the down deltas
/// and points down's input slot at h̄; after down's output is complete (other adapters' terms at
/// down see h̄ as their input) `finishBlock` adds the deltas and restores the slot.
final class BlockMixtureState {
    struct Active {
        let mixture: CoreAdapter.BlockMixture
        let router: CoreAdapter.Router
        /// Who owns the router (its adapter and index there), for per-run routing control.
        let owner: (adapter: CoreAdapter, index: Int)
        let block: MLPBlock
        let scale: Float
        /// Batch rows the mixture applies to (nil: all).
        let rows: [Int]?
    }

    /// Down site index → the mixtures at that block (several only for disjoint per-row sets).
    private(set) var byDown: [Int: [Active]] = [:]
    /// Blocks whose activation / Mul steps are skipped (a mixture covers every row).
    private var skipped: Set<Int> = []

    // Scratch, reused across runs. Shapes in tokens T of the plan.
    var hbar = ScratchBuffer()       // [T, I] h̄ (I: gate/up out features = down in features)
    var ydelta = ScratchBuffer()     // [T, O] Σ_e w δ_d,e (O: down out features)
    var weights = ScratchBuffer()    // [T, E] one mixture's router weights, every token
    /// One per thread: each thread takes a contiguous range of tokens (all experts), so the
    /// threads write disjoint rows of h̄ and ydelta.
    var workers: [Worker] = []

    final class Worker {
        // Shapes in k tokens routed to one expert.
        var xs = ScratchBuffer()         // [k, H] gathered block inputs
        var gs = ScratchBuffer()         // [k, I] gathered G, then h
        var us = ScratchBuffer()         // [k, I] gathered U
        var sig = ScratchBuffer()        // [k, I] sigmoid(G) for SiLU, GELU(G)
        var low = ScratchBuffer()        // [k, r] σ(A v)
        var downOut = ScratchBuffer()    // [k, O] one expert's down delta before scattering
        var routed: [Int] = []           // the k token indices
    }

    var isEmpty: Bool { byDown.isEmpty }

    func skips(block: Int) -> Bool { skipped.contains(block) }

    /// Drops every mixture (the end of a run's generated-weights binding).
    func clear() {
        byDown = [:]
        skipped = []
    }

    /// Binds the block mixtures of `bindings` (adapter, caller scale, rows or nil for all).
    func bind(_ bindings: [(CoreAdapter, Float, [Int]?)], model: CoreModel) throws {
        var next: [Int: [Active]] = [:]
        var owner: [Int: String] = [:]
        for (adapter, scale, rows) in bindings {
            for m in adapter.blocks {
                let block = model.blocks[m.block]
                if let other = owner[block.index], rows == nil || next[block.down]!.contains(where: { $0.rows == nil }) {
                    throw GraftError(.invalidArgument, "adapters '\(other)' and '\(adapter.name)' both replace the MLP block at '\(model.sites[block.down].name)' with a mixture of experts; bind one of them (or give them different rows)")
                }
                owner[block.index] = adapter.name
                next[block.down, default: []].append(Active(mixture: m, router: adapter.routers[m.router], owner: (adapter, m.router), block: block, scale: scale, rows: rows))
            }
        }
        byDown = next
        skipped = Set(next.values.compactMap { list in list.count == 1 && list[0].rows == nil ? list[0].block.index : nil })
    }
}

extension SessionAdapters {
    /// Before the product of site `downSite`: when a block mixture ends there, computes h̄ and the
    /// down deltas and points the site's input slot at h̄. Returns the slot's own pointer (to
    /// restore after `finishBlock`), or nil when no mixture ends at this site.
    func mixBlockInput(downSite: Int, plan: Plan, slots: UnsafeMutablePointer<UnsafeMutableRawPointer>, sites: [Site],
                       batch: Int, threads: Int) throws -> UnsafeMutableRawPointer? {
        let state = blockMixtures
        guard let list = state.byDown[downSite], let block = list.first?.block else { return nil }
        guard let g = plan.siteSlots[block.gate], let u = plan.siteSlots[block.up], let d = plan.siteSlots[block.down] else {
            throw GraftError(.internalError, "the MLP block at '\(sites[downSite].name)' has no buffers in this plan")
        }
        let tokens = d.rows
        let hidden = sites[block.gate].inFeatures, inner = sites[block.gate].outFeatures, out = sites[block.down].outFeatures
        let x = UnsafePointer(slots[Int(g.x)].assumingMemoryBound(to: Float.self))      // [T, H]
        let gy = UnsafePointer(slots[Int(g.y)].assumingMemoryBound(to: Float.self))     // [T, I]
        let uy = UnsafePointer(slots[Int(u.y)].assumingMemoryBound(to: Float.self))     // [T, I]
        let original = slots[Int(d.x)]                                                  // [T, I] the graph's own h
        let hbar = state.hbar.floats(tokens * inner)
        let ydelta = state.ydelta.floats(tokens * out)
        ydelta.update(repeating: 0, count: tokens * out)
        if !state.skips(block: block.index) {
            // Rows no mixture covers keep the graph's own activation ⊙ up (its steps ran).
            hbar.update(from: original.assumingMemoryBound(to: Float.self), count: tokens * inner)
        }
        while state.workers.count < threads { state.workers.append(BlockMixtureState.Worker()) }
        let workers = state.workers
        for active in list {
            // Routed once for every token on this thread (masks, forcing, override and the record
            // apply here, as at a site); the workers read their token ranges of it.
            let w = state.weights.floats(tokens * active.router.experts)
            try routeControlled(active.router, owner: active.owner, x: x, rows: tokens, inFeatures: hidden, into: w)
            let weights = UnsafePointer(w)
            try forEachBlock(active.rows, rows: tokens, batch: batch) { start, m in
                // At most `threads` contiguous token ranges of at least 8 tokens, one per worker.
                let chunks = max(1, min(threads, m / 8))
                parallelFor(chunks, threads: chunks) { range in
                    for c in range {
                        let lo = start + m * c / chunks, hi = start + m * (c + 1) / chunks
                        Self.mix(active, worker: workers[c], tokens: hi - lo, hidden: hidden, inner: inner, out: out,
                                 weights: weights + lo * active.router.experts, x: x + lo * hidden, g: gy + lo * inner, u: uy + lo * inner,
                                 hbar: hbar + lo * inner, ydelta: ydelta + lo * out)
                    }
                }
            }
        }
        slots[Int(d.x)] = UnsafeMutableRawPointer(hbar)
        return original
    }

    /// After down's output is complete: y += Σ_e w δ_d,e (computed by mixBlockInput).
    func finishBlock(downSite: Int, slots: UnsafeMutablePointer<UnsafeMutableRawPointer>, at d: Plan.SiteSlots, outFeatures out: Int) {
        let y = slots[Int(d.y)].assumingMemoryBound(to: Float.self)
        let delta = blockMixtures.ydelta.floats(d.rows * out)
        cblas_saxpy(Int32(d.rows * out), 1, delta, 1, y, 1)
    }

    /// One mixture over `tokens` consecutive tokens with router weights w [tokens, E]: writes
    /// h̄ [tokens, I] and adds the down deltas to ydelta [tokens, O].
    private static func mix(_ a: BlockMixtureState.Active, worker state: BlockMixtureState.Worker, tokens n: Int, hidden: Int, inner: Int, out: Int,
                            weights w: UnsafePointer<Float>, x: UnsafePointer<Float>, g: UnsafePointer<Float>, u: UnsafePointer<Float>,
                            hbar: UnsafeMutablePointer<Float>, ydelta: UnsafeMutablePointer<Float>) {
        let experts = a.router.experts
        hbar.update(repeating: 0, count: n * inner)
        for e in 0..<experts {
            state.routed.removeAll(keepingCapacity: true)
            for t in 0..<n where w[t * experts + e] != 0 { state.routed.append(t) }
            let routed = state.routed
            let k = routed.count
            guard k > 0 else { continue }
            // Gather the routed tokens' x, G, U.
            let xs = state.xs.floats(k * hidden), gs = state.gs.floats(k * inner), us = state.us.floats(k * inner)
            for (j, t) in routed.enumerated() {
                (xs + j * hidden).update(from: x + t * hidden, count: hidden)
                (gs + j * inner).update(from: g + t * inner, count: inner)
                (us + j * inner).update(from: u + t * inner, count: inner)
            }
            let deltas = a.mixture.deltas[e]
            if let dg = deltas[Int(GRAFT_BLOCK_PROJ_GATE)] { addLowRank(dg, scale: a.scale, v: xs, rows: k, into: gs, state: state) }
            if let du = deltas[Int(GRAFT_BLOCK_PROJ_UP)] { addLowRank(du, scale: a.scale, v: xs, rows: k, into: us, state: state) }
            // h = act(G') ⊙ U', in gs.
            blockActivation(a.mixture.activation, gs, count: k * inner, state: state)
            for i in 0..<(k * inner) { gs[i] *= us[i] }
            for (j, t) in routed.enumerated() {
                cblas_saxpy(Int32(inner), w[t * experts + e], gs + j * inner, 1, hbar + t * inner, 1)
            }
            if let dd = deltas[Int(GRAFT_BLOCK_PROJ_DOWN)] {
                // Rows of h pre-scaled by w, so one GEMM gives Σ-ready rows: D[k, O] = c·s·(w ⊙ σ(h Aᵀ)) Bᵀ.
                let r = dd.rank
                let v = state.low.floats(k * r)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(k), Int32(r), Int32(inner), 1, gs, Int32(inner),
                            dd.a.pointer(Float.self), Int32(inner), 0, v, Int32(r))
                activate(v, count: k * r, dd.activation)
                for (j, t) in routed.enumerated() { cblas_sscal(Int32(r), w[t * experts + e], v + j * r, 1) }
                let dOut = state.downOut.floats(k * out)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(k), Int32(out), Int32(r), a.scale * dd.scale, v, Int32(r),
                            dd.b.pointer(Float.self), Int32(r), 0, dOut, Int32(out))
                for (j, t) in routed.enumerated() { cblas_saxpy(Int32(out), 1, dOut + j * out, 1, ydelta + t * out, 1) }
            }
        }
    }

    /// y[k, out] += c·s · σ(v Aᵀ) Bᵀ for one delta.
    private static func addLowRank(_ t: CoreAdapter.LowRank, scale: Float, v: UnsafePointer<Float>, rows k: Int,
                                   into y: UnsafeMutablePointer<Float>, state: BlockMixtureState.Worker) {
        let r = t.rank, inF = t.a.shape[1], outF = t.b.shape[0]
        let low = state.low.floats(k * r)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(k), Int32(r), Int32(inF), 1, v, Int32(inF),
                    t.a.pointer(Float.self), Int32(inF), 0, low, Int32(r))
        activate(low, count: k * r, t.activation)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(k), Int32(outF), Int32(r), scale * t.scale, low, Int32(r),
                    t.b.pointer(Float.self), Int32(r), 1, y, Int32(outF))
    }

    /// The block's act, in place (the graph's own activation chain is not used).
    private static func blockActivation(_ act: Int32, _ v: UnsafeMutablePointer<Float>, count: Int, state: BlockMixtureState.Worker) {
        switch act {
        case GRAFT_ACTIVATION_SILU:
            let s = state.sig.floats(count)
            vmath_sigmoid(v, s, count)
            for i in 0..<count { v[i] *= s[i] }
        case GRAFT_ACTIVATION_GELU:
            let s = state.sig.floats(count)
            vmath_gelu_erf(v, s, count)
            v.update(from: s, count: count)
        case GRAFT_ACTIVATION_RELU:
            for i in 0..<count { v[i] = max(v[i], 0) }
        default:
            break
        }
    }
}

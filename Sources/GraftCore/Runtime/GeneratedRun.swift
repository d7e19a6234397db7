/// Merged or unmerged generated weights for one run (VLoRA).
///
/// Unmerged, a rank-r term costs r·(in + out) multiply-adds per token at its site; merging
/// costs r·in·out once (W' = W + s·B·A in a run-private copy of W) and nothing per token. So
/// `.auto` merges an image's delta when the tokens of this run make the unmerged terms the
/// costlier: Σ_sites tokens·r·(in + out) > Σ_sites r·in·out (for a square d×d layer: more than
/// d/2 tokens). `.merged` / `.unmerged` override it.
package enum MergePolicy: Int32, Sendable {
    case auto = 0
    case unmerged = 1
    case merged = 2
}

extension CoreSession {
    /// Whether `.auto` merges `adapter`'s low-rank terms for a run of `plan` (tokens per site
    /// from the plan).
    package func shouldMerge(_ adapter: CoreAdapter, plan: Plan) -> Bool {
        var perToken = 0, merging = 0
        for (site, terms) in adapter.lowRank {
            let s = model.sites[site]
            let tokens = plan.siteSlots[site]?.rows ?? 0
            for t in terms {
                perToken += tokens * t.rank * (s.inFeatures + s.outFeatures)
                merging += t.rank * s.inFeatures * s.outFeatures
            }
        }
        return perToken > merging
    }

    /// When a bound or per-row adapter of this run is a generator, instantiates it from `aux`
    /// (one image for the batch, or one per row: a leading batch axis) and binds the run's
    /// adapters into `request`; returns the number of batch rows the terms split into. Returns
    /// nil when no generator takes part (the run binds as before).
    func bindGenerated(plan: Plan, inputs: [HostTensor], rowAdapters: [CoreAdapter?]?, aux: [String: HostTensor]?,
                       merge: MergePolicy) throws -> Int? {
        let candidates = rowAdapters.map { $0.compactMap { $0 } } ?? boundList.map(\.0)
        let generators = candidates.filter(\.isGenerator)
        guard !generators.isEmpty else {
            if let aux, !aux.isEmpty {
                throw GraftError(.invalidArgument, "auxiliary inputs \(aux.keys.sorted().map { "'\($0)'" }.joined(separator: ", ")) were given, but no bound or per-row adapter of this run generates weights from them")
            }
            return nil
        }
        let reads = Set(generators.map { $0.generator!.auxInput })
        guard let aux else {
            let g = generators[0]
            throw GraftError(.invalidArgument, "adapter '\(g.name)' generates its weights from the auxiliary input '\(g.generator!.auxInput)': pass it with the run (aux), or make a request adapter with generate() and bind that")
        }
        for key in aux.keys where !reads.contains(key) {
            throw GraftError(.invalidArgument, "'\(key)' is not an auxiliary input of any adapter of this run; they read \(reads.sorted().map { "'\($0)'" }.joined(separator: ", "))")
        }
        let batch = inputs.first.map { $0.rank > 0 ? $0.shape[0] : 1 } ?? 1

        /// One image for the whole batch, or one per row ([batch, …] with one more axis than
        /// the generator's input).
        func features(_ a: CoreAdapter) throws -> (shared: HostTensor?, rows: HostTensor?) {
            let g = a.generator!
            guard let t = aux[g.auxInput] else {
                throw GraftError(.invalidArgument, "adapter '\(a.name)' needs the auxiliary input '\(g.auxInput)'")
            }
            if let dims = g.inputDecl.dims, t.rank == dims.count + 1 {
                guard t.shape[0] == batch else {
                    throw GraftError(.shapeMismatch, "auxiliary input '\(g.auxInput)' has shape \(t.shape): \(t.shape[0]) images for a batch of \(batch) rows (give one image's features \(dims), or one per row)")
                }
                return (nil, t)
            }
            return (t, nil)
        }
        /// Row b of a [batch, …] tensor, as its own tensor.
        func row(_ t: HostTensor, _ b: Int) -> HostTensor {
            let r = HostTensor(zeros: t.dtype, shape: Array(t.shape.dropFirst()))
            r.raw.copyMemory(from: t.raw + b * r.byteCount, byteCount: r.byteCount)
            return r
        }
        let perRowMergeRefusal = "generated weights with a different image per row cannot be merged (one weight per site serves the whole batch); run them unmerged"

        var entries: [SessionAdapters.Entry] = []
        if let rowAdapters {
            if merge == .merged { throw GraftError(.unsupported, perRowMergeRefusal + " (per-row adapters run unmerged)") }
            var order: [ObjectIdentifier] = []
            var groups: [ObjectIdentifier: (CoreAdapter, [Int])] = [:]
            for (b, a) in rowAdapters.enumerated() {
                guard let a else { continue }
                let id = ObjectIdentifier(a)
                if groups[id] == nil { order.append(id); groups[id] = (a, []) }
                groups[id]!.1.append(b)
            }
            for id in order {
                let (a, rows) = groups[id]!
                guard a.isGenerator else {
                    entries.append(.init(adapter: a, scale: 1, rows: rows, use: .terms))
                    continue
                }
                let f = try features(a)
                if let shared = f.shared {
                    entries.append(.init(adapter: try a.generated(features: shared, threads: threads), scale: 1, rows: rows, use: .terms))
                } else {
                    for b in rows {
                        entries.append(.init(adapter: try a.generated(features: row(f.rows!, b), threads: threads), scale: 1, rows: [b], use: .terms))
                    }
                }
            }
            lastRunMergedGenerated = false
            try request.bind(entries: entries, model: model, baseWeights: [:])
            return batch
        }
        var merged: Bool?
        for (a, scale) in boundList {
            guard a.isGenerator else {
                entries.append(.init(adapter: a, scale: scale, rows: nil, use: boundMerged ? .alreadyMerged : .terms))
                continue
            }
            let f = try features(a)
            if let shared = f.shared {
                let g = try a.generated(features: shared, threads: threads)
                // The run's policy; with .auto, a generator bound merged stays merged.
                let m = merge == .merged || (merge == .auto && (boundMerged || shouldMerge(g, plan: plan)))
                entries.append(.init(adapter: g, scale: scale, rows: nil, use: m ? .merge : .terms))
                merged = (merged ?? false) || m
            } else {
                if merge == .merged || (merge == .auto && boundMerged) { throw GraftError(.unsupported, perRowMergeRefusal) }
                for b in 0..<batch {
                    entries.append(.init(adapter: try a.generated(features: row(f.rows!, b), threads: threads), scale: scale, rows: [b], use: .terms))
                }
                merged = merged ?? false
            }
        }
        lastRunMergedGenerated = merged
        try request.bind(entries: entries, model: model, baseWeights: bound.mergedWeights)
        return batch
    }
}

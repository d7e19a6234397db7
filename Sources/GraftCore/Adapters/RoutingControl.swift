import CGraftPlugin

/// A router as callers name it: the adapter that owns it and its index in that adapter's
/// `routers` (the order the plugin added them; one per site for MoE-LoRA).
package struct RouterAddress: Hashable, Sendable {
    package let adapter: ObjectIdentifier
    package let router: Int

    package init(_ adapter: CoreAdapter, _ router: Int) {
        self.adapter = ObjectIdentifier(adapter)
        self.router = router
    }
}

/// Per-request control of routed experts (one run's options; docs/ADAPTERS.md, "Controlling
/// routed experts"):
///   - allow / deny masks [E]: the router chooses among allowed, not denied experts only
///     (denied logits are −∞ before the gate, so softmax and renormalisation run over the
///     rest; top-k keeps min(k, allowed) experts);
///   - force mask [E]: the router is bypassed; each forced expert gets weight 1 on every token
///     (so one forced expert is exactly that expert's LoRA);
///   - override [tokens × E]: caller-supplied weights replace the router's output as they are;
///   - record: when set, the run writes every router's final weights into it.
/// force and override each replace the router, so they are refused together with any other
/// control of the same router. Checks that need the router's shape happen here, when set;
/// the token count of an override is checked at the site.
package final class RoutingControl {
    package enum Mode: Int32 { case allow = 0, deny = 1, force = 2 }

    package struct Entry {
        let adapter: CoreAdapter
        let router: Int
        var allow: [Bool]?
        var deny: [Bool]?
        var force: [Bool]?
        /// [tokens × E] row-major.
        var override: (tokens: Int, weights: [Float])?

        var experts: Int { adapter.routers[router].experts }
        /// Allowed and not denied (nil when neither mask is set).
        var permitted: [Bool]? {
            guard allow != nil || deny != nil else { return nil }
            return (0..<experts).map { (allow?[$0] ?? true) && !(deny?[$0] ?? false) }
        }
    }

    package private(set) var entries: [RouterAddress: Entry] = [:]
    /// Where runs write routing decisions (nil: not recorded).
    package var record: RoutingRecord?

    package init() {}

    package var isEmpty: Bool { entries.isEmpty && record == nil }

    /// Checks that `router` is an index of `adapter`'s routers.
    package static func checkRouter(_ adapter: CoreAdapter, _ router: Int) throws {
        guard router >= 0, router < adapter.routers.count else {
            throw GraftError(.invalidArgument, "adapter '\(adapter.name)' has no router \(router): it has \(adapter.routers.count) router\(adapter.routers.count == 1 ? "" : "s")"
                             + (adapter.routers.isEmpty ? "" : " (0...\(adapter.routers.count - 1), at sites \(adapter.routers.map(\.siteName).joined(separator: ", ")))"))
        }
    }

    /// The index of `adapter`'s router at the site named `site` (the site's module name, or a
    /// `.`-suffix of it, as adapter files name modules).
    package static func findRouter(_ adapter: CoreAdapter, site: String) throws -> Int {
        let hits = adapter.routers.indices.filter { adapter.routers[$0].siteName == site || adapter.routers[$0].siteName.hasSuffix("." + site) }
        guard hits.count == 1 else {
            let known = adapter.routers.map(\.siteName)
            throw GraftError(.invalidArgument, hits.isEmpty
                ? "adapter '\(adapter.name)' has no router at a site named '\(site)'; its routers are at \(known.isEmpty ? "no site (it is not routed)" : known.joined(separator: ", "))"
                : "'\(site)' names \(hits.count) routers of adapter '\(adapter.name)' (\(hits.map { "\($0) at \(known[$0])" }.joined(separator: ", "))); name the router by index")
        }
        return hits[0]
    }

    /// Sets (or, with nil, clears) one expert mask of a router.
    package func setMask(_ adapter: CoreAdapter, router: Int, mode: Mode, mask: [Bool]?) throws {
        try Self.checkRouter(adapter, router)
        let label = "router \(router) of adapter '\(adapter.name)' (site \(adapter.routers[router].siteName))"
        var e = entries[RouterAddress(adapter, router)] ?? Entry(adapter: adapter, router: router)
        if let mask {
            guard mask.count == e.experts else {
                throw GraftError(.invalidArgument, "the \(mode) mask for \(label) has \(mask.count) values but the router has \(e.experts) experts")
            }
            guard mode == .deny ? mask.contains(false) : mask.contains(true) else {
                throw GraftError(.invalidArgument, mode == .deny
                    ? "the deny mask for \(label) denies every expert; it must leave at least one of its \(e.experts) experts"
                    : "the \(mode) mask for \(label) names no expert; it must name at least one of its \(e.experts) experts")
            }
        }
        switch mode {
        case .allow: e.allow = mask
        case .deny: e.deny = mask
        case .force: e.force = mask
        }
        if let p = e.permitted, !p.contains(true) {
            throw GraftError(.invalidArgument, "the allow and deny masks for \(label) together leave no expert")
        }
        try Self.checkExclusive(e, label)
        store(e)
    }

    /// Sets (or, with nil, clears) the weights that replace a router's output: [tokens × E].
    package func setOverride(_ adapter: CoreAdapter, router: Int, weights: [Float]?, tokens: Int, experts: Int) throws {
        try Self.checkRouter(adapter, router)
        let label = "router \(router) of adapter '\(adapter.name)' (site \(adapter.routers[router].siteName))"
        var e = entries[RouterAddress(adapter, router)] ?? Entry(adapter: adapter, router: router)
        if let weights {
            guard experts == e.experts else {
                throw GraftError(.shapeMismatch, "the routing override for \(label) has \(experts) experts per token but the router has \(e.experts)")
            }
            guard tokens >= 1, weights.count == tokens * experts else {
                throw GraftError(.shapeMismatch, "the routing override for \(label) has \(weights.count) values, not tokens × experts = \(tokens) × \(experts)")
            }
            if let bad = weights.firstIndex(where: { !$0.isFinite }) {
                throw GraftError(.invalidArgument, "the routing override for \(label) has a non-finite weight \(weights[bad]) at token \(bad / experts), expert \(bad % experts)")
            }
            e.override = (tokens, weights)
        } else {
            e.override = nil
        }
        try Self.checkExclusive(e, label)
        store(e)
    }

    private func store(_ e: Entry) {
        let key = RouterAddress(e.adapter, e.router)
        if e.allow == nil && e.deny == nil && e.force == nil && e.override == nil { entries[key] = nil } else { entries[key] = e }
    }

    private static func checkExclusive(_ e: Entry, _ label: String) throws {
        let kinds = [e.force != nil ? "force" : nil, e.override != nil ? "override" : nil, e.allow != nil ? "allow" : nil, e.deny != nil ? "deny" : nil].compactMap { $0 }
        if (e.force != nil || e.override != nil) && kinds.count > 1 {
            throw GraftError(.invalidArgument, "\(label) has \(kinds.joined(separator: " and ")) controls: force and override each replace the router, so they cannot be combined with another control; clear one first")
        }
    }

    // MARK: - Run time

    /// Writes the weights of a controlled router for `rows` tokens into g [rows × E].
    /// `logits` computes the router's raw scores (z = W x + b, [rows × E]) into g.
    /// `modalityAllowed(t, e)`: whether token t may use expert e by its modality (ABI 1.2 expert
    /// groups); a token left with no expert by its modality alone gets weight 0 everywhere
    /// (the base layer), but one left with none by the caller's masks is an error.
    static func gate(_ router: CoreAdapter.Router, entry: Entry?, rows: Int, into g: UnsafeMutablePointer<Float>,
                     logits: () -> Void, modalityAllowed: ((Int, Int) -> Bool)?) throws {
        let e = router.experts
        if let entry, let o = entry.override {
            guard o.tokens == rows else {
                throw GraftError(.shapeMismatch, "the routing override for router \(entry.router) of adapter '\(entry.adapter.name)' (site \(router.siteName)) covers \(o.tokens) tokens but the site sees \(rows)")
            }
            o.weights.withUnsafeBufferPointer { g.update(from: $0.baseAddress!, count: rows * e) }
            return
        }
        if let entry, let force = entry.force {
            for t in 0..<rows { for i in 0..<e { g[t * e + i] = force[i] ? 1 : 0 } }
            return
        }
        logits()
        let permitted = entry?.permitted
        var mask = [Bool](repeating: true, count: e)
        for t in 0..<rows {
            var n = 0
            var byModality = false
            for i in 0..<e {
                let m = modalityAllowed?(t, i) ?? true
                mask[i] = m && (permitted?[i] ?? true)
                if m { byModality = true }
                if mask[i] { n += 1 }
            }
            let z = g + t * e
            if n == 0 {
                if byModality, let entry {
                    throw GraftError(.invalidArgument, "the expert masks for router \(entry.router) of adapter '\(entry.adapter.name)' (site \(router.siteName)) leave token \(t) no expert among those its modality may use")
                }
                for i in 0..<e { z[i] = 0 }
                continue
            }
            if n == e {
                SessionAdapters.gateRow(z, e, router)
                continue
            }
            for i in 0..<e where !mask[i] { z[i] = -.infinity }
            var restricted = router
            if router.gate == GRAFT_GATE_TOPK { restricted = router.withTopK(min(router.topK, n)) }
            SessionAdapters.gateRow(z, e, restricted)
            for i in 0..<e where !mask[i] { z[i] = 0 }   // sigmoid(−∞) and exp(−∞) are 0 already; −0 and NaN-free
        }
    }
}

extension CoreAdapter.Router {
    /// The same router keeping `k` experts (top-k among a masked set).
    func withTopK(_ k: Int) -> CoreAdapter.Router {
        var r = CoreAdapter.Router(site: site, experts: experts, gate: gate, weight: weight, bias: bias, topK: k,
                                   renormalize: renormalize, threshold: threshold, siteName: siteName)
        r.expertModalities = expertModalities
        return r
    }
}

/// The routing decisions of the last run with a record: per router evaluated, the final
/// expert weights of every token the site saw (after masks, forcing, override and the gate;
/// an expert was chosen for a token when its weight is non-zero).
package final class RoutingRecord {
    package struct Entry {
        package let adapter: CoreAdapter
        package let router: Int
        package let site: Int
        package let siteName: String
        package let tokens: Int
        package let experts: Int
        /// [tokens, experts] float32 (a stable buffer: C hands out its pointer).
        package let weights: HostTensor
    }

    package private(set) var entries: [Entry] = []
    /// Bumped at every run that writes the record (C keeps strings per generation).
    package private(set) var generation = 0

    package init() {}

    func reset() {
        entries.removeAll(keepingCapacity: true)
        generation += 1
    }

    func append(_ adapter: CoreAdapter, router: Int, rows: Int, weights: UnsafePointer<Float>) {
        let r = adapter.routers[router]
        let w = HostTensor(zeros: .float32, shape: [rows, r.experts])
        w.pointer(Float.self).update(from: weights, count: rows * r.experts)
        entries.append(Entry(adapter: adapter, router: router, site: r.site, siteName: r.siteName, tokens: rows, experts: r.experts, weights: w))
    }
}

/// The run-time side of RoutingControl and of modality-restricted expert groups: how a
/// session evaluates a router that the caller controls or whose experts serve only some
/// modalities. Plain routers take SessionAdapters.route unchanged.
extension SessionAdapters {
    /// Before a run: resets the record and checks that every router the control names is
    /// evaluated in this run (its adapter bound to the session or named in the row adapters):
    /// a site's router or a block mixture's.
    static func checkRouting(_ routing: RoutingControl, active: SessionAdapters?) throws {
        routing.record?.reset()
        var evaluated = Set<RouterAddress>()
        for state in active?.sites ?? [] { for o in state?.routerOwners ?? [] { evaluated.insert(RouterAddress(o.adapter, o.index)) } }
        for list in (active?.blockMixtures.byDown).map({ Array($0.values) }) ?? [] {
            for m in list { evaluated.insert(RouterAddress(m.owner.adapter, m.owner.index)) }
        }
        for (key, e) in routing.entries.sorted(by: { $0.value.router < $1.value.router }) where !evaluated.contains(key) {
            throw GraftError(.invalidArgument, "routing control names router \(e.router) of adapter '\(e.adapter.name)', which this run does not use; bind the adapter to the session (or name it in the row adapters) or clear the control")
        }
    }

    /// G [rows, E] for one router of a site: the plain gate, or the controlled / modality-grouped
    /// one; then records it when the run has a record.
    func routeControlled(_ r: CoreAdapter.Router, owner: (adapter: CoreAdapter, index: Int), x: UnsafePointer<Float>,
                         rows: Int, inFeatures inF: Int, into g: UnsafeMutablePointer<Float>) throws {
        let entry = routing?.entries[RouterAddress(owner.adapter, owner.index)]
        var modalityAllowed: ((Int, Int) -> Bool)?
        if let groups = r.expertModalities {
            guard let ids = modalities else {
                throw GraftError(.invalidArgument, "adapter '\(owner.adapter.name)' routes tokens within modality groups of experts at site \(r.siteName); pass a modality id per token with the run")
            }
            guard ids.count == rows else {
                throw GraftError(.shapeMismatch, "modality ids cover \(ids.count) tokens but site \(r.siteName) sees \(rows) rows")
            }
            // Expert e serves token t when its mask is 0 (every token) or has the token's bit.
            modalityAllowed = { t, e in
                let mask = groups[e], id = UInt32(ids[t])
                return mask == 0 || (id <= 31 && (mask >> id) & 1 == 1)
            }
        }
        if entry == nil && modalityAllowed == nil {
            Self.route(r, x: x, rows: rows, inFeatures: inF, into: g)
        } else {
            try RoutingControl.gate(r, entry: entry, rows: rows, into: g,
                                    logits: { Self.route(r, x: x, rows: rows, inFeatures: inF, into: g, gate: false) },
                                    modalityAllowed: modalityAllowed)
        }
        routing?.record?.append(owner.adapter, router: owner.index, rows: rows, weights: g)
    }
}

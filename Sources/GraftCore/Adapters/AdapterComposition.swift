/// One adapter that is the sum of several, each with a scale — what binding them together does,
/// as a single handle, so that a per-row adapter can carry e.g. an image's request adapter
/// (VLoRA) and a task LoRA at once. Pointer work: the terms' A and B are shared, not copied.
extension CoreAdapter {
    /// y = W x + Σ_k scales[k] · (adapter k's terms); channel scales of several adapters at one
    /// site multiply (as when bound together; caller scales do not apply to them, as in binding).
    /// Generator adapters are refused: compose their request adapters (`generate`) instead.
    package static func compose(_ parts: [(CoreAdapter, Float)]) throws -> CoreAdapter {
        guard let first = parts.first?.0 else { throw GraftError(.invalidArgument, "compose: no adapters") }
        var lowRank: [Int: [LowRank]] = [:]
        var routers: [Router] = []
        var inputScales: [Int: HostTensor] = [:]
        var outputScales: [Int: HostTensor] = [:]
        for (a, scale) in parts {
            guard a.model == first.model else {
                throw GraftError(.invalidArgument, "compose: adapter '\(a.name)' was loaded for another model than '\(first.name)'")
            }
            guard scale.isFinite else { throw GraftError(.invalidArgument, "compose: adapter '\(a.name)': scale \(scale) is not finite") }
            guard !a.isGenerator else {
                throw GraftError(.invalidArgument, "compose: adapter '\(a.name)' generates its weights per request; compose the request adapter made by generate() instead")
            }
            let routerBase = routers.count
            routers += a.routers
            for (site, terms) in a.lowRank {
                lowRank[site, default: []] += terms.map { t in
                    LowRank(site: t.site, rank: t.rank, a: t.a, b: t.b, scale: scale * t.scale, activation: t.activation,
                            gate: t.gate, gateContext: t.gateContext, router: t.router.map { $0 + routerBase },
                            expert: t.expert, modalities: t.modalities)
                }
            }
            for (site, v) in a.inputScales { inputScales[site] = inputScales[site].map { product($0, v) } ?? v }
            for (site, v) in a.outputScales { outputScales[site] = outputScales[site].map { product($0, v) } ?? v }
        }
        return CoreAdapter(name: parts.map(\.0.name).joined(separator: "+"), source: parts.map(\.0.source).joined(separator: "+"),
                           plugin: "compose", model: first.model, lowRank: lowRank, routers: routers,
                           inputScales: inputScales, outputScales: outputScales)
    }

    /// Elementwise x ⊙ y of two [n] float vectors, new storage.
    private static func product(_ x: HostTensor, _ y: HostTensor) -> HostTensor {
        let out = HostTensor(zeros: .float32, shape: x.shape)
        let p = out.pointer(Float.self), a = x.pointer(Float.self), b = y.pointer(Float.self)
        for i in 0..<x.count { p[i] = a[i] * b[i] }
        return out
    }
}

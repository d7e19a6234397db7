import GraftCore

/// A router of a mixture adapter: its index in the adapter (the order the plugin added them),
/// its site and its number of experts.
public struct AdapterRouter: Sendable, Equatable {
    public let index: Int
    /// The site's module name, e.g. `encoder.layer.0.attention.self.query`.
    public let site: String
    public let experts: Int
}

extension Adapter {
    /// The adapter's routers (empty for an adapter without routing).
    public var routers: [AdapterRouter] {
        core.routers.enumerated().map { AdapterRouter(index: $0.offset, site: $0.element.siteName, experts: $0.element.experts) }
    }

    /// The index of the router at the site named `site` (its module name or a `.`-suffix).
    /// Throws when there is none or several.
    public func router(atSite site: String) throws -> Int {
        try RoutingControl.findRouter(core, site: site)
    }
}

/// Per-request control of routed experts, passed to ``Session/run(_:rowAdapters:modalities:routing:)``
/// (docs/ADAPTERS.md, "Controlling routed experts"). Routers are named by adapter and index
/// (``Adapter/routers``, ``Adapter/router(atSite:)``). Setters check what they can at once and
/// throw clear errors (unknown router, a mask of the wrong length or naming no expert, an
/// override of the wrong shape, conflicting controls).
public final class ExpertRouting {
    let core = RoutingControl()

    public init() {}

    /// The router chooses among these experts only (softmax / renormalisation over them; top-k
    /// keeps min(k, count) of them). nil clears.
    public func allow(_ adapter: Adapter, router: Int, experts: [Int]?) throws {
        try core.setMask(adapter.core, router: router, mode: .allow, mask: try mask(adapter, router, experts))
    }

    /// The router never chooses these experts. nil clears.
    public func deny(_ adapter: Adapter, router: Int, experts: [Int]?) throws {
        try core.setMask(adapter.core, router: router, mode: .deny, mask: try mask(adapter, router, experts))
    }

    /// Bypasses the router: each of these experts gets weight 1 on every token. nil clears.
    public func force(_ adapter: Adapter, router: Int, experts: [Int]?) throws {
        try core.setMask(adapter.core, router: router, mode: .force, mask: try mask(adapter, router, experts))
    }

    /// Replaces the router's output with `weights` [tokens × experts] (row-major, one row per
    /// token the site sees), used as given. nil clears.
    public func override(_ adapter: Adapter, router: Int, weights: [Float]?, tokens: Int) throws {
        try RoutingControl.checkRouter(adapter.core, router)
        guard let weights else {
            try core.setOverride(adapter.core, router: router, weights: nil, tokens: 0, experts: 0)
            return
        }
        guard tokens >= 1, weights.count % tokens == 0 else {
            throw GraftError(.shapeMismatch, "the routing override for router \(router) of adapter '\(adapter.name)' has \(weights.count) values, which do not split into \(tokens) tokens")
        }
        try core.setOverride(adapter.core, router: router, weights: weights, tokens: tokens, experts: weights.count / tokens)
    }

    /// Whether runs record their routing decisions into ``decisions``.
    public var recordsDecisions: Bool {
        get { core.record != nil }
        set { core.record = newValue ? (core.record ?? RoutingRecord()) : nil }
    }

    /// The last recorded run's decisions: per router evaluated, every token's final expert
    /// weights (an expert was chosen when its weight is non-zero).
    public var decisions: [RoutingDecision] {
        (core.record?.entries ?? []).map {
            RoutingDecision(adapter: $0.adapter.name, router: $0.router, site: $0.siteName, tokens: $0.tokens,
                            experts: $0.experts, weights: $0.weights.floats())
        }
    }

    private func mask(_ adapter: Adapter, _ router: Int, _ experts: [Int]?) throws -> [Bool]? {
        guard let experts else { return nil }
        try RoutingControl.checkRouter(adapter.core, router)
        let e = adapter.core.routers[router].experts
        var m = [Bool](repeating: false, count: e)
        for i in experts {
            guard i >= 0, i < e else {
                throw GraftError(.invalidArgument, "expert \(i) is out of range for router \(router) of adapter '\(adapter.name)' (\(e) experts)")
            }
            m[i] = true
        }
        return m
    }
}

/// One router evaluation of a recorded run.
public struct RoutingDecision: Sendable {
    public let adapter: String
    public let router: Int
    public let site: String
    public let tokens: Int
    public let experts: Int
    /// [tokens × experts] row-major.
    public let weights: [Float]

    /// The experts chosen for token `t` (non-zero weight), ascending.
    public func chosen(token t: Int) -> [Int] { (0..<experts).filter { weights[t * experts + $0] != 0 } }
}

extension Session {
    /// Runs with per-request control of routed experts (and, optionally, per-row adapters and
    /// modality ids as ``run(_:rowAdapters:modalities:)``). When `routing.recordsDecisions`,
    /// `routing.decisions` holds this run's routing afterwards.
    public func run(_ inputs: [String: Tensor], rowAdapters: [Adapter?]? = nil, modalities: [UInt8]? = nil,
                    routing: ExpertRouting) throws -> [String: Tensor] {
        try core.run(inputs.mapValues(\.host), rowAdapters: rowAdapters?.map { $0?.core }, modalities: modalities,
                     routing: routing.core).mapValues(Tensor.init(host:))
    }
}

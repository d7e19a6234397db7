// The "router" object of Graft's native mixture configs (docs/ADAPTERS.md):
//   {"gate": "topk", "top_k": 2, "renormalize": true, "bias": true}
// Strict: fields that do not apply to the gate and unknown keys are errors. Used by the
// MoE-LoRA and ModalityGate plugins.
import CGraftPlugin

package struct RouterConfig {
    package var gate: Int32 = GRAFT_GATE_SOFTMAX
    package var gateName = "softmax"
    package var topK = 0
    package var renormalize = false
    package var threshold: Float = 0
    package var bias = false

    package init(gate: Int32 = GRAFT_GATE_SOFTMAX, gateName: String = "softmax") {
        self.gate = gate
        self.gateName = gateName
    }
}

package let routerGates: [(name: String, gate: Int32)] = [
    ("softmax", GRAFT_GATE_SOFTMAX), ("topk", GRAFT_GATE_TOPK), ("threshold", GRAFT_GATE_THRESHOLD), ("sigmoid", GRAFT_GATE_SIGMOID),
]
private let routerKeys = ["gate", "top_k", "renormalize", "threshold", "bias"]

/// `field` must be `expected`; says what was there.
package func configError(_ field: String, _ expected: String, _ got: JSONValue) -> PluginFailure {
    var shown = ""
    switch got {
    case .number(let n): shown = " (\(n == n.rounded() && abs(n) < 1e15 ? String(Int64(n)) : String(n)))"
    case .string(let s): shown = " (\"\(s.count > 40 ? String(s.prefix(40)) + "…" : s)\")"
    case .bool(let b): shown = " (\(b))"
    default: break
    }
    return PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "\(configFileName): \"\(field)\" must be \(expected), got \(got.kindDescription)\(shown)")
}

package func configInteger(_ value: JSONValue, _ field: String, _ range: ClosedRange<Int>) throws(PluginFailure) -> Int {
    guard case .number(let number) = value, number.isFinite, number == number.rounded(),
          number >= Double(range.lowerBound), number <= Double(range.upperBound)
    else { throw configError(field, "an integer in \(range.lowerBound)...\(range.upperBound)", value) }
    return Int(number)
}

package func configBool(_ value: JSONValue, _ field: String) throws(PluginFailure) -> Bool {
    guard case .bool(let flag) = value else { throw configError(field, "true or false", value) }
    return flag
}

/// The member, with JSON null taken as absent.
package func configMember(_ json: JSONValue, _ key: String) -> JSONValue? {
    guard let value = json[key] else { return nil }
    if case .null = value { return nil }
    return value
}

/// Reads a "router" object for `experts` experts.
package func parseRouterConfig(_ router: JSONValue, experts: Int) throws(PluginFailure) -> RouterConfig {
    guard case .object(let members) = router else { throw configError("router", "an object", router) }
    for m in members where !routerKeys.contains(m.key) {
        throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA,
                            "\(configFileName): router has an unknown key \"\(m.key)\" (known: \(routerKeys.joined(separator: ", ")))")
    }
    let names = routerGates.map { "\"\($0.name)\"" }.joined(separator: ", ")
    guard let gate = configMember(router, "gate") else {
        throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "\(configFileName): router has no \"gate\" (one of \(names))")
    }
    guard case .string(let gateName) = gate, let found = routerGates.first(where: { $0.name == gateName }) else {
        throw configError("router.gate", "one of \(names)", gate)
    }
    var config = RouterConfig(gate: found.gate, gateName: found.name)
    let topK = configMember(router, "top_k"), threshold = configMember(router, "threshold"), renormalize = configMember(router, "renormalize")
    func notFor(_ field: String, _ value: JSONValue?, onlyWith: String) throws(PluginFailure) {
        guard value != nil else { return }
        throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "\(configFileName): router.\(field) applies only to gate \(onlyWith), but the gate is \"\(gateName)\"")
    }
    func need(_ field: String, _ value: JSONValue?, _ what: String) throws(PluginFailure) -> JSONValue {
        guard let value else { throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "\(configFileName): gate \"\(gateName)\" needs router.\(field) (\(what))") }
        return value
    }
    let renormWhat = "true or false: rescale the kept weights to sum 1"
    switch config.gate {
    case GRAFT_GATE_TOPK:
        config.topK = try configInteger(try need("top_k", topK, "how many experts each token uses"), "router.top_k", 1...1024)
        guard config.topK <= experts else {
            throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "\(configFileName): router.top_k is \(config.topK), more than num_experts (\(experts))")
        }
        config.renormalize = try configBool(try need("renormalize", renormalize, renormWhat), "router.renormalize")
        try notFor("threshold", threshold, onlyWith: "\"threshold\"")
    case GRAFT_GATE_THRESHOLD:
        let t = try need("threshold", threshold, "keep experts whose softmax probability is >= it")
        guard case .number(let tau) = t, tau.isFinite, tau >= 0, tau <= 1 else { throw configError("router.threshold", "a number in [0, 1]", t) }
        config.threshold = Float(tau)
        config.renormalize = try configBool(try need("renormalize", renormalize, renormWhat), "router.renormalize")
        try notFor("top_k", topK, onlyWith: "\"topk\"")
    default:
        try notFor("top_k", topK, onlyWith: "\"topk\"")
        try notFor("threshold", threshold, onlyWith: "\"threshold\"")
        try notFor("renormalize", renormalize, onlyWith: "\"topk\" or \"threshold\"")
    }
    if let bias = configMember(router, "bias") { config.bias = try configBool(bias, "router.bias") }
    return config
}

// adapter_config.json of Graft's native MoE-LoRA format (peft_type "GRAFT_MOE_LORA", docs/ADAPTERS.md):
//
//   {"peft_type": "GRAFT_MOE_LORA", "r": 4, "lora_alpha": 8, "num_experts": 4,
//    "router": {"gate": "topk", "top_k": 2, "renormalize": true, "bias": true},
//    "target_modules": ["query", "value"]}
//
// Strict on purpose: routing fields that do not apply to the chosen gate, unknown router keys and
// PEFT LoRA options this format does not compute are errors, never silently ignored.
import CGraftPlugin
import GraftPluginSupport

let moePeftType = "GRAFT_MOE_LORA"
/// Largest expert count and rank the plugin accepts (the host's own limits).
let maxExperts = 1024
let maxRank = 4096

struct MoEConfig {
    var r = 8
    var alpha = 8.0
    var experts = 0
    var gate: Int32 = GRAFT_GATE_SOFTMAX
    var gateName = "softmax"
    var topK = 0
    var renormalize = false
    var threshold: Float = 0
    var bias = false
    /// nil: no target_modules (the weights decide alone).
    var targetModules: [String]?

    /// s = α/r, the same for every expert.
    var scale: Float { Float(alpha / Double(r)) }

    func targets(_ module: String) -> Bool {
        guard let names = targetModules else { return true }
        return names.contains { module == $0 || module.hasSuffix("." + $0) }
    }

    var targetDescription: String {
        guard let names = targetModules else { return "(none)" }
        return "[" + names.map { "\"\($0)\"" }.joined(separator: ", ") + "]"
    }
}

func invalid(_ field: String, _ expected: String, _ got: JSONValue) -> PluginFailure {
    PluginFailure(GRAFT_PLUGIN_INVALID_DATA,
                  "adapter_config.json: \"\(field)\" must be \(expected), got \(got.kindDescription)\(shortValue(got))")
}

/// " (4.5)" / " (\"x\")" for scalars, so the message shows what was there.
func shortValue(_ value: JSONValue) -> String {
    switch value {
    case .number(let n): return " (\(n == n.rounded() && abs(n) < 1e15 ? String(Int64(n)) : String(n)))"
    case .string(let s): return " (\"\(s.count > 40 ? String(s.prefix(40)) + "…" : s)\")"
    case .bool(let b): return " (\(b))"
    default: return ""
    }
}

func integer(_ value: JSONValue, _ field: String, _ range: ClosedRange<Int>) throws(PluginFailure) -> Int {
    guard case .number(let number) = value, number.isFinite, number == number.rounded(),
          number >= Double(range.lowerBound), number <= Double(range.upperBound)
    else { throw invalid(field, "an integer in \(range.lowerBound)...\(range.upperBound)", value) }
    return Int(number)
}

func boolean(_ value: JSONValue, _ field: String) throws(PluginFailure) -> Bool {
    guard case .bool(let flag) = value else { throw invalid(field, "true or false", value) }
    return flag
}

/// The member, with JSON null taken as absent.
func member(_ json: JSONValue, _ key: String) -> JSONValue? {
    guard let value = json[key] else { return nil }
    if case .null = value { return nil }
    return value
}



private let gates: [(name: String, gate: Int32)] = [
    ("softmax", GRAFT_GATE_SOFTMAX), ("topk", GRAFT_GATE_TOPK), ("threshold", GRAFT_GATE_THRESHOLD), ("sigmoid", GRAFT_GATE_SIGMOID),
]
private let routerKeys = ["gate", "top_k", "renormalize", "threshold", "bias"]

/// Reads and checks a parsed adapter_config.json.
func parseMoEConfig(_ json: JSONValue) throws(PluginFailure) -> MoEConfig {
    guard case .object = json else {
        throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "adapter_config.json must hold a JSON object, got \(json.kindDescription)")
    }
    guard let type = peftType(of: json) else {
        throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "adapter_config.json has no \"peft_type\" string")
    }
    guard type == moePeftType else {
        throw PluginFailure(GRAFT_PLUGIN_UNSUPPORTED,
                            "adapter_config.json has peft_type \"\(type)\"; the MoE-LoRA plugin reads only \"\(moePeftType)\"")
    }

    // LoRA options the format does not compute: refused rather than ignored.
    let refusals: [(field: String, what: String)] = [
        ("use_rslora", "rsLoRA scaling (\"use_rslora\"); the MoE-LoRA format scales every expert by lora_alpha / r"),
        ("use_dora", "DoRA (\"use_dora\")"),
        ("rank_pattern", "per-module ranks (\"rank_pattern\")"),
        ("alpha_pattern", "per-module alphas (\"alpha_pattern\")"),
        ("modules_to_save", "fully trained modules (\"modules_to_save\")"),
        ("lora_bias", "a bias on lora_B (\"lora_bias\")"),
        ("graft_modalities", "modality gates (\"graft_modalities\")"),
    ]
    for refusal in refusals where isSet(json[refusal.field]) {
        throw PluginFailure(GRAFT_PLUGIN_UNSUPPORTED,
                            "adapter_config.json asks for \(refusal.what), which the MoE-LoRA plugin does not support")
    }
    switch json["bias"] {
    case nil, .null?, .string("none")?: break
    case let other?: throw invalid("bias", "\"none\" (trained biases are not supported)", other)
    }

    var config = MoEConfig()
    if let r = member(json, "r") { config.r = try integer(r, "r", 1...maxRank) }
    if let alpha = member(json, "lora_alpha") {
        guard case .number(let a) = alpha, a.isFinite, abs(a) <= 1e30 else { throw invalid("lora_alpha", "a finite number", alpha) }
        config.alpha = a
    }
    guard let experts = member(json, "num_experts") else {
        throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "adapter_config.json has no \"num_experts\" (the number of LoRA experts per module)")
    }
    config.experts = try integer(experts, "num_experts", 1...maxExperts)

    guard let router = member(json, "router") else {
        throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA,
                            "adapter_config.json has no \"router\" object (e.g. {\"gate\": \"topk\", \"top_k\": 2, \"renormalize\": true})")
    }
    guard case .object(let routerMembers) = router else { throw invalid("router", "an object", router) }
    for m in routerMembers where !routerKeys.contains(m.key) {
        throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA,
                            "adapter_config.json: router has an unknown key \"\(m.key)\" (known: \(routerKeys.joined(separator: ", ")))")
    }
    guard let gate = member(router, "gate") else {
        throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA,
                            "adapter_config.json: router has no \"gate\" (one of \(gates.map { "\"\($0.name)\"" }.joined(separator: ", ")))")
    }
    guard case .string(let gateName) = gate, let found = gates.first(where: { $0.name == gateName }) else {
        throw invalid("router.gate", "one of \(gates.map { "\"\($0.name)\"" }.joined(separator: ", "))", gate)
    }
    config.gate = found.gate
    config.gateName = found.name

    let topK = member(router, "top_k"), threshold = member(router, "threshold"), renormalize = member(router, "renormalize")
    func notFor(_ field: String, _ value: JSONValue?, onlyWith: String) throws(PluginFailure) {
        guard value != nil else { return }
        throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA,
                            "adapter_config.json: router.\(field) applies only to gate \(onlyWith), but the gate is \"\(gateName)\"")
    }
    func need(_ field: String, _ value: JSONValue?, _ what: String) throws(PluginFailure) -> JSONValue {
        guard let value else {
            throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "adapter_config.json: gate \"\(gateName)\" needs router.\(field) (\(what))")
        }
        return value
    }
    switch config.gate {
    case GRAFT_GATE_TOPK:
        config.topK = try integer(try need("top_k", topK, "how many experts each token uses"), "router.top_k", 1...maxExperts)
        guard config.topK <= config.experts else {
            throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA,
                                "adapter_config.json: router.top_k is \(config.topK), more than num_experts (\(config.experts))")
        }
        config.renormalize = try boolean(try need("renormalize", renormalize, "true or false: rescale the kept weights to sum 1"), "router.renormalize")
        try notFor("threshold", threshold, onlyWith: "\"threshold\"")
    case GRAFT_GATE_THRESHOLD:
        let t = try need("threshold", threshold, "keep experts whose softmax probability is >= it")
        guard case .number(let tau) = t, tau.isFinite, tau >= 0, tau <= 1 else { throw invalid("router.threshold", "a number in [0, 1]", t) }
        config.threshold = Float(tau)
        config.renormalize = try boolean(try need("renormalize", renormalize, "true or false: rescale the kept weights to sum 1"), "router.renormalize")
        try notFor("top_k", topK, onlyWith: "\"topk\"")
    default:
        try notFor("top_k", topK, onlyWith: "\"topk\"")
        try notFor("threshold", threshold, onlyWith: "\"threshold\"")
        try notFor("renormalize", renormalize, onlyWith: "\"topk\" or \"threshold\"")
    }
    if let bias = member(router, "bias") { config.bias = try boolean(bias, "router.bias") }

    switch member(json, "target_modules") {
    case nil: break
    case .array(let elements)?:
        var names: [String] = []
        for element in elements {
            guard case .string(let name) = element, !name.isEmpty else { throw invalid("target_modules", "a list of module names", element) }
            names.append(name)
        }
        config.targetModules = names
    case let other?:
        throw invalid("target_modules", "a list of module names (names match a module equal to them or ending in \".name\")", other)
    }
    return config
}

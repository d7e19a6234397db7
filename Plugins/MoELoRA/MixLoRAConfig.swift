// adapter_config.json of a MixLoRA checkpoint, as the `mixlora` package (PyPI, 0.2.3) reads it
// (MixLoraConfig.from_config; docs/ADAPTERS.md):
//
//   {"peft_type": "MIXLORA", "routing_strategy": "mixlora", "num_experts": 4, "top_k": 2,
//    "act_fn": "silu", "r": 4, "lora_alpha": 8, "use_rslora": false, "lora_dropout": 0.05,
//    "target_modules": ["q_proj", "v_proj", "gate_proj", "up_proj", "down_proj"], ...}
//
// Where the package would fail later (act_fn missing: its forward calls None) or silently do
// something ambiguous (expert_lora, which 0.2.3 ignores when loading), this is an error now.
import CGraftPlugin
import GraftPluginSupport

let mixloraPeftType = "MIXLORA"

struct MixLoRAConfig {
    var r = 0
    var alpha = 0.0
    var rslora = false
    var experts = 0
    var topK = 2
    var activation: Int32 = GRAFT_ACTIVATION_SILU
    var actName = ""
    /// Module names (q_proj, gate_proj, ...) whose weights the checkpoint may hold.
    var targetModules: [String] = []

    /// s = α/r, or α/√r with use_rslora (the package's LoraLinear.scaling_), for every LoRA.
    var scale: Float { Float(rslora ? alpha / Double(r).squareRoot() : alpha / Double(r)) }

    func targets(_ name: String) -> Bool { targetModules.contains(name) }
}

/// transformers' ACT2FN names Graft computes, and the others (known, not computed).
private let activations: [String: Int32] = [
    "silu": GRAFT_ACTIVATION_SILU, "swish": GRAFT_ACTIVATION_SILU, "gelu": GRAFT_ACTIVATION_GELU, "relu": GRAFT_ACTIVATION_RELU,
]
private let otherACT2FN = [
    "gelu_10", "gelu_fast", "gelu_new", "gelu_python", "gelu_pytorch_tanh", "gelu_accurate", "laplace", "leaky_relu",
    "linear", "mish", "quick_gelu", "relu2", "relu6", "sigmoid", "tanh", "prelu", "xielu",
]

func parseMixLoRAConfig(_ json: JSONValue) throws(PluginFailure) -> MixLoRAConfig {
    try requirePeftType(json, mixloraPeftType, reader: "the MixLoRA reader")
    switch configMember(json, "routing_strategy") {
    case .string("mixlora")?: break
    case nil:
        throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "adapter_config.json has no \"routing_strategy\" (MixLoRA checkpoints say \"mixlora\")")
    case let other?:
        throw PluginFailure(GRAFT_PLUGIN_UNSUPPORTED, "adapter_config.json: routing_strategy must be \"mixlora\" (top-k over a softmax, renormalised), got \(other.kindDescription)")
    }
    let refusals: [(field: String, what: String)] = [
        ("use_dora", "DoRA experts (\"use_dora\")"),
        ("expert_lora", "a separate expert LoRA config (\"expert_lora\"), which the mixlora package 0.2.3 ignores when loading, so the checkpoint's meaning is ambiguous"),
    ]
    try refuseOptions(json, refusals, reader: "Graft")
    try requireNoTrainedBias(json)

    var config = MixLoRAConfig()
    // The package reads r and lora_alpha with config["r"]: no defaults.
    guard let r = configMember(json, "r") else { throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "adapter_config.json has no \"r\" (the LoRA rank)") }
    config.r = try configInteger(r, "r", 1...maxRank)
    guard let alpha = configMember(json, "lora_alpha") else { throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "adapter_config.json has no \"lora_alpha\"") }
    config.alpha = try configFiniteNumber(alpha, "lora_alpha")
    if let rs = configMember(json, "use_rslora") { config.rslora = try configBool(rs, "use_rslora") }

    guard let experts = configMember(json, "num_experts") else {
        throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "adapter_config.json has no \"num_experts\"")
    }
    config.experts = try configInteger(experts, "num_experts", 1...maxExperts)
    if let topK = configMember(json, "top_k") { config.topK = try configInteger(topK, "top_k", 1...maxExperts) }
    guard config.topK <= config.experts else {
        throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "adapter_config.json: top_k is \(config.topK), more than num_experts (\(config.experts))")
    }

    guard let act = configMember(json, "act_fn") else {
        throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, """
            adapter_config.json has no "act_fn": MixLoRA needs the MLP activation in the config (e.g. "act_fn": "silu" for \
            Llama; the mixlora package's forward fails without it)
            """)
    }
    guard case .string(let actName) = act else { throw configError("act_fn", "an activation name such as \"silu\"", act) }
    guard let activation = activations[actName] else {
        if otherACT2FN.contains(actName) {
            throw PluginFailure(GRAFT_PLUGIN_UNSUPPORTED, "adapter_config.json: act_fn \"\(actName)\" is not supported; Graft computes \(activations.keys.sorted().map { "\"\($0)\"" }.joined(separator: ", "))")
        }
        throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "adapter_config.json: act_fn \"\(actName)\" is not an activation name (transformers' ACT2FN); Graft computes \(activations.keys.sorted().map { "\"\($0)\"" }.joined(separator: ", "))")
    }
    config.activation = activation
    config.actName = actName

    switch configMember(json, "target_modules") {
    case .array(let elements)?:
        for element in elements {
            guard case .string(let name) = element, !name.isEmpty else { throw configError("target_modules", "a list of module names", element) }
            config.targetModules.append(name)
        }
    case .object(let members)?:
        // The package also takes {"q_proj": true, ...}.
        for m in members {
            guard case .bool(let on) = m.value else { throw configError("target_modules.\(m.key)", "true or false", m.value) }
            if on { config.targetModules.append(m.key) }
        }
    case nil:
        throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "adapter_config.json has no \"target_modules\"")
    case let other?:
        throw configError("target_modules", "a list of module names or an object of name: true/false", other)
    }
    return config
}

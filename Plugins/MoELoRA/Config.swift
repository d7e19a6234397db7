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
    /// The "router" object (Plugins/Support/RouterConfig.swift, shared with ModalityGate).
    var router = RouterConfig()
    /// nil: no target_modules (the weights decide alone).
    var targetModules: [String]?

    /// s = α/r, the same for every expert.
    var scale: Float { Float(alpha / Double(r)) }

    func targets(_ module: String) -> Bool { targetNamesMatch(targetModules, module) }

    var targetDescription: String { describeTargetNames(targetModules) }
}

/// Reads and checks a parsed adapter_config.json.
func parseMoEConfig(_ json: JSONValue) throws(PluginFailure) -> MoEConfig {
    try requirePeftType(json, moePeftType, reader: "the MoE-LoRA plugin")

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
    try refuseOptions(json, refusals, reader: "the MoE-LoRA plugin")
    try requireNoTrainedBias(json)

    var config = MoEConfig()
    if let r = configMember(json, "r") { config.r = try configInteger(r, "r", 1...maxRank) }
    if let alpha = configMember(json, "lora_alpha") { config.alpha = try configFiniteNumber(alpha, "lora_alpha") }
    guard let experts = configMember(json, "num_experts") else {
        throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "adapter_config.json has no \"num_experts\" (the number of LoRA experts per module)")
    }
    config.experts = try configInteger(experts, "num_experts", 1...maxExperts)

    guard let router = configMember(json, "router") else {
        throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA,
                            "adapter_config.json has no \"router\" object (e.g. {\"gate\": \"topk\", \"top_k\": 2, \"renormalize\": true})")
    }
    config.router = try parseRouterConfig(router, experts: config.experts)

    config.targetModules = try parseTargetNames(json)
    return config
}

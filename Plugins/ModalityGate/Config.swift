// adapter_config.json of Graft's ModalityGate format (peft_type "GRAFT_MODALITY_GATE",
// docs/ADAPTERS.md):
//
//   {"peft_type": "GRAFT_MODALITY_GATE", "r": 4, "lora_alpha": 8, "num_experts": 3,
//    "expert_modalities": [[0], [1], [0, 1]],
//    "router": {"gate": "topk", "top_k": 1, "renormalize": true, "bias": false},
//    "target_modules": ["query", "value"]}
//
// Each expert is a LoRA serving the tokens of the modality ids it lists. Without "router" every
// expert acts with weight 1 on its tokens (hard gates); with one, the router weighs, per token,
// only the experts serving that token's modality (top-k: MoMa / MoIIE; softmax / sigmoid: soft
// mixtures of a modality-specific and a shared LoRA, Slide-LoRA).
import CGraftPlugin
import GraftPluginSupport

let modalityGatePeftType = "GRAFT_MODALITY_GATE"

struct ModalityGateConfig {
    var r = 8
    var alpha = 8.0
    var experts = 0
    /// Per expert, the bit mask of the modality ids it serves (never 0).
    var expertMasks: [UInt32] = []
    /// nil: hard gates (no router).
    var router: RouterConfig?
    var targetModules: [String]?

    var scale: Float { Float(alpha / Double(r)) }

    func targets(_ module: String) -> Bool { targetNamesMatch(targetModules, module) }

    var targetDescription: String { describeTargetNames(targetModules) }
}

func parseModalityGateConfig(_ json: JSONValue) throws(PluginFailure) -> ModalityGateConfig {
    try requirePeftType(json, modalityGatePeftType, reader: "the ModalityGate plugin")
    let refusals: [(field: String, what: String)] = [
        ("use_rslora", "rsLoRA scaling (\"use_rslora\"); every expert is scaled by lora_alpha / r"),
        ("use_dora", "DoRA (\"use_dora\")"),
        ("rank_pattern", "per-module ranks (\"rank_pattern\")"),
        ("alpha_pattern", "per-module alphas (\"alpha_pattern\")"),
        ("modules_to_save", "fully trained modules (\"modules_to_save\")"),
        ("lora_bias", "a bias on lora_B (\"lora_bias\")"),
        ("graft_modalities", "\"graft_modalities\" (a LORA key; this format names modalities per expert in \"expert_modalities\")"),
    ]
    try refuseOptions(json, refusals, reader: "the ModalityGate plugin")
    try requireNoTrainedBias(json)

    var config = ModalityGateConfig()
    if let r = configMember(json, "r") { config.r = try configInteger(r, "r", 1...4096) }
    if let alpha = configMember(json, "lora_alpha") { config.alpha = try configFiniteNumber(alpha, "lora_alpha") }
    guard let experts = configMember(json, "num_experts") else {
        throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "\(configFileName) has no \"num_experts\" (the number of LoRA experts per module)")
    }
    config.experts = try configInteger(experts, "num_experts", 1...1024)

    guard let groups = configMember(json, "expert_modalities") else {
        throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "\(configFileName) has no \"expert_modalities\" (per expert, the list of modality ids 0...31 it serves)")
    }
    guard case .array(let lists) = groups, lists.count == config.experts else {
        throw configError("expert_modalities", "a list of num_experts (\(config.experts)) lists of modality ids", groups)
    }
    for (e, list) in lists.enumerated() {
        guard case .array(let ids) = list, !ids.isEmpty else {
            throw configError("expert_modalities[\(e)]", "a non-empty list of modality ids 0...31", list)
        }
        var mask: UInt32 = 0
        for id in ids {
            let m = try configInteger(id, "expert_modalities[\(e)]", 0...31)
            guard mask & (1 << UInt32(m)) == 0 else {
                throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "\(configFileName): \"expert_modalities[\(e)]\" lists modality \(m) twice")
            }
            mask |= 1 << UInt32(m)
        }
        config.expertMasks.append(mask)
    }
    if let router = configMember(json, "router") {
        config.router = try parseRouterConfig(router, experts: config.experts)
    }

    config.targetModules = try parseTargetNames(json)
    return config
}

// adapter_config.json of a PEFT LoRA adapter: what Graft supports, what it refuses and why.
// Missing fields take PEFT's defaults (LoraConfig), as PEFT itself does when it loads the file.
import CGraftPlugin
import GraftPluginSupport

/// `target_modules` as PEFT saves it: names matched as suffixes, one regex matched against the
/// whole module name, or "all-linear".
enum TargetModules {
    case unspecified
    case names([String])
    case regex(String, Regex<AnyRegexOutput>)
    case allLinear

    /// PEFT's check_target_module_exists for a module name (exclusions and layer filters aside).
    func matches(_ module: String) -> Bool {
        switch self {
        case .unspecified, .allLinear:
            return true
        case .names(let names):
            return targetNamesMatch(names, module)
        case .regex(_, let regex):
            return (try? regex.wholeMatch(in: module)) != nil
        }
    }

    var description: String {
        switch self {
        case .unspecified: return "(none)"
        case .names(let names): return describeTargetNames(names)
        case .regex(let pattern, _): return "\"\(pattern)\" (a regular expression)"
        case .allLinear: return "\"all-linear\""
        }
    }
}

/// Compiles a pattern of the config once (Swift's Regex reads the Python patterns PEFT users write).
func compile(_ pattern: String, field: String) throws(PluginFailure) -> Regex<AnyRegexOutput> {
    do {
        return try Regex(pattern)
    } catch {
        throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA,
                            "adapter_config.json: \(field) holds \"\(pattern)\", which is not a regular expression Graft can read")
    }
}

/// One rank_pattern / alpha_pattern entry, its key compiled as PEFT's get_pattern_key uses it.
struct PatternEntry<V> {
    let key: String
    let regex: Regex<AnyRegexOutput>
    let value: V

    init(key: String, value: V, field: String) throws(PluginFailure) {
        self.key = key
        self.value = value
        // re.match(rf"(.*\.)?({key})$", module): anchored at the start, `$` at the end.
        regex = try compile("(.*\\.)?(\(key))", field: field)
    }
}

/// rank_pattern / alpha_pattern: an object of module patterns to values (`what`), each value
/// read by `read(value, "field[\"key\"]")`; absent or null is no entries.
private func patternEntries<V>(_ json: JSONValue, _ field: String, of what: String,
                               _ read: (JSONValue, String) throws(PluginFailure) -> V) throws(PluginFailure) -> [PatternEntry<V>] {
    switch json[field] {
    case nil, .null?: return []
    case .object(let members)?:
        var entries: [PatternEntry<V>] = []
        for member in members {
            entries.append(try PatternEntry(key: member.key, value: try read(member.value, "\(field)[\"\(member.key)\"]"), field: field))
        }
        return entries
    case let other?: throw configError(field, "an object of module patterns to \(what)", other)
    }
}

struct LoRAConfig {
    var r = 8
    var alpha = 8.0
    var useRSLoRA = false
    var fanInFanOut = false
    /// In file order: PEFT uses the first key that matches.
    var rankPattern: [PatternEntry<Int>] = []
    var alphaPattern: [PatternEntry<Double>] = []
    var targetModules = TargetModules.unspecified
    /// Graft's extension `graft_modalities` (a list of modality ids 0...31): the adapter acts
    /// only on tokens of those modalities. 0: every token.
    var modalities: UInt32 = 0

    /// PEFT's get_pattern_key: the first key for which re.match(rf"(.*\.)?({key})$", module) holds.
    static func patternValue<V>(_ pattern: [PatternEntry<V>], for module: String) -> V? {
        pattern.first { (try? $0.regex.wholeMatch(in: module)) != nil }?.value
    }

    func rank(for module: String) -> Int {
        Self.patternValue(rankPattern, for: module) ?? r
    }

    func alpha(for module: String) -> Double {
        Self.patternValue(alphaPattern, for: module) ?? alpha
    }

    /// s = α/r, or α/√r with rsLoRA (PEFT's LoraLayer.update_layer).
    func scale(rank: Int, alpha: Double) -> Float {
        Float(useRSLoRA ? alpha / Double(rank).squareRoot() : alpha / Double(rank))
    }
}

private func positiveInt(_ value: JSONValue, _ field: String) throws(PluginFailure) -> Int {
    guard case .number(let number) = value, number.isFinite, number >= 1, number <= 1_000_000,
          number == number.rounded()
    else { throw configError(field, "a positive integer", value) }
    return Int(number)
}

private func boolean(_ value: JSONValue?, _ field: String) throws(PluginFailure) -> Bool {
    switch value {
    case nil, .null?: return false
    case .bool(let flag)?: return flag
    case let other?: throw configError(field, "true or false", other)
    }
}



/// Reads and checks a parsed adapter_config.json.
func parseLoRAConfig(_ json: JSONValue) throws(PluginFailure) -> LoRAConfig {
    try requirePeftType(json, "LORA", reader: "the LoRA plugin")

    // Refusals first: each of these changes the forward pass in a way this plugin does not compute.
    if try boolean(json["use_dora"], "use_dora") {
        throw PluginFailure(GRAFT_PLUGIN_UNSUPPORTED,
                            "DoRA (\"use_dora\": true) is not supported yet: Graft's LoRA plugin loads plain LoRA and rsLoRA only")
    }
    switch json["bias"] {
    case nil, .null?: break
    case .string("none")?: break
    case .string(let bias)?:
        throw PluginFailure(GRAFT_PLUGIN_UNSUPPORTED,
                            "adapter_config.json has \"bias\": \"\(bias)\": trained biases are not supported; only \"none\" is")
    case let other?: throw configError("bias", "\"none\"", other)
    }
    let refusals: [(field: String, what: String)] = [
        ("lora_bias", "a bias on lora_B (\"lora_bias\": true)"),
        ("modules_to_save", "fully trained modules (\"modules_to_save\")"),
        ("trainable_token_indices", "trainable tokens (\"trainable_token_indices\")"),
        ("target_parameters", "LoRA on parameters (\"target_parameters\")"),
        ("layer_replication", "layer replication (\"layer_replication\")"),
        ("alora_invocation_tokens", "activated LoRA (\"alora_invocation_tokens\")"),
        ("use_qalora", "QA-LoRA (\"use_qalora\")"),
        ("use_bdlora", "block-diagonal LoRA (\"use_bdlora\")"),
        ("arrow_config", "Arrow routing (\"arrow_config\")"),
        ("kasa_config", "KaSA (\"kasa_config\")"),
        ("monteclora_config", "MonteCLoRA (\"monteclora_config\")"),
        ("megatron_config", "Megatron parallel layers (\"megatron_config\")"),
    ]
    try refuseOptions(json, refusals, reader: "Graft's LoRA plugin")

    var config = LoRAConfig()
    if let r = json["r"], !(r.isNull) { config.r = try positiveInt(r, "r") }
    if let alpha = json["lora_alpha"], !(alpha.isNull) { config.alpha = try configFiniteNumber(alpha, "lora_alpha") }
    config.useRSLoRA = try boolean(json["use_rslora"], "use_rslora")
    config.fanInFanOut = try boolean(json["fan_in_fan_out"], "fan_in_fan_out")

    config.rankPattern = try patternEntries(json, "rank_pattern", of: "ranks", positiveInt)
    config.alphaPattern = try patternEntries(json, "alpha_pattern", of: "alphas", configFiniteNumber)

    switch json["target_modules"] {
    case nil, .null?: break
    case .string("all-linear")?: config.targetModules = .allLinear
    case .string(let pattern)?: config.targetModules = .regex(pattern, try compile(pattern, field: "target_modules"))
    case .array(let elements)?:
        var names: [String] = []
        for element in elements {
            guard case .string(let name) = element else { throw configError("target_modules", "a list of strings or one string", element) }
            names.append(name)
        }
        config.targetModules = .names(names)
    case let other?: throw configError("target_modules", "a list of strings or one string", other)
    }

    switch json["graft_modalities"] {
    case nil, .null?: break
    case .array(let elements)? where !elements.isEmpty:
        for element in elements {
            guard case .number(let id) = element, id == id.rounded(), id >= 0, id <= 31 else {
                throw configError("graft_modalities", "a non-empty list of modality ids 0...31", element)
            }
            config.modalities |= 1 << UInt32(id)
        }
    case let other?: throw configError("graft_modalities", "a non-empty list of modality ids 0...31", other)
    }
    return config
}

extension JSONValue {
    var isNull: Bool {
        if case .null = self { return true }
        return false
    }
}

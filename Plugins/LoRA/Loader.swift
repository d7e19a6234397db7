// Loads a PEFT LoRA directory into low-rank terms: one term per adapted linear layer,
// y += s · B (A x) with A [r × in], B [out × r], s = α/r (or α/√r with rsLoRA).
import CGraftPlugin
import GraftPluginSupport


/// The pair of tensors for one module, in file order of first appearance.
private struct ModuleWeights {
    let module: String
    var a: graft_st_tensor?
    var b: graft_st_tensor?
}

/// Classifies a key of adapter_model.safetensors.
private enum KeyKind {
    case loraA(String)
    case loraB(String)
}

private func classify(_ key: String) throws(PluginFailure) -> KeyKind {
    if key.contains("lora_embedding_A") || key.contains("lora_embedding_B") {
        throw PluginFailure(GRAFT_PLUGIN_UNSUPPORTED,
                            "\(weightsFileName) holds \(key): LoRA on embedding layers is not supported (only linear layers are)")
    }
    if key.contains("lora_magnitude_vector") {
        throw PluginFailure(GRAFT_PLUGIN_UNSUPPORTED,
                            "\(weightsFileName) holds \(key): DoRA is not supported yet (plain LoRA and rsLoRA only)")
    }
    guard key.hasPrefix(keyPrefix) else {
        throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA,
                            "\(weightsFileName) holds \(key), which does not start with \"\(keyPrefix)\" as PEFT's keys do")
    }
    let rest = String(key.dropFirst(keyPrefix.count))
    for (suffix, isA) in [(".lora_A.weight", true), (".lora_B.weight", false)] where rest.hasSuffix(suffix) {
        let module = String(rest.dropLast(suffix.count))
        guard !module.isEmpty else { break }
        return isA ? .loraA(module) : .loraB(module)
    }
    if rest.hasSuffix(".lora_B.bias") {
        throw PluginFailure(GRAFT_PLUGIN_UNSUPPORTED, "\(weightsFileName) holds \(key): a bias on lora_B is not supported")
    }
    if rest.hasSuffix(".bias") {
        throw PluginFailure(GRAFT_PLUGIN_UNSUPPORTED, "\(weightsFileName) holds \(key): trained biases are not supported")
    }
    throw PluginFailure(GRAFT_PLUGIN_UNSUPPORTED,
                        "\(weightsFileName) holds \(key); the LoRA plugin reads only <module>.lora_A.weight and <module>.lora_B.weight")
}

/// One checked term, ready for add_lowrank.
private struct PlannedTerm {
    let site: UInt32
    let rank: UInt32
    let a: UnsafePointer<Float>
    let b: UnsafePointer<Float>
    let scale: Float
}

func loadLoRA(host: Host, directory: String, builder: OpaquePointer) throws(PluginFailure) {
    try requireAdapterDirectory(directory, kind: "a PEFT LoRA adapter")
    let config = try parseLoRAConfig(try readConfigJSON(directory))

    let weights = try weightsPath(in: directory)
    let file = try host.openSafetensors(weights)
    defer { host.closeSafetensors(file) }

    // Group lora_A / lora_B by module, in file order.
    var groups = ModuleGroups<ModuleWeights>()
    try host.forEachTensor(file) { (key, tensor) throws(PluginFailure) in
        switch try classify(key) {
        case .loraA(let m): groups[groups.index(of: m, make: { ModuleWeights(module: $0) })].a = tensor
        case .loraB(let m): groups[groups.index(of: m, make: { ModuleWeights(module: $0) })].b = tensor
        }
    }
    let modules = groups.groups
    guard !modules.isEmpty else {
        throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "\(weights) holds no <module>.lora_A.weight / lora_B.weight tensors")
    }

    // Check everything before adding anything.
    var plan: [PlannedTerm] = []
    for weights in modules {
        let module = weights.module
        let keyA = keyPrefix + module + ".lora_A.weight"
        let keyB = keyPrefix + module + ".lora_B.weight"
        guard let a = weights.a else {
            throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "\(weightsFileName) has \(keyB) but no \(keyA)")
        }
        guard let b = weights.b else {
            throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "\(weightsFileName) has \(keyA) but no \(keyB)")
        }
        guard config.targetModules.matches(module) else {
            throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA,
                                "\(weightsFileName) adapts \(module), which target_modules \(config.targetModules.description) in \(configFileName) does not name")
        }
        let shapeA = try checkTensor(a, keyA)
        let shapeB = try checkTensor(b, keyB)
        guard shapeA.count == 2 else {
            throw PluginFailure(GRAFT_PLUGIN_UNSUPPORTED,
                                "\(keyA) has shape \(describe(shapeA)); only linear layers (2-D [r, in] lora_A) are supported")
        }
        guard shapeB.count == 2 else {
            throw PluginFailure(GRAFT_PLUGIN_UNSUPPORTED,
                                "\(keyB) has shape \(describe(shapeB)); only linear layers (2-D [out, r] lora_B) are supported")
        }
        let rank = config.rank(for: module)
        let alpha = config.alpha(for: module)
        guard shapeA[0] == Int64(rank), shapeB[1] == Int64(rank) else {
            throw PluginFailure(GRAFT_PLUGIN_SHAPE_MISMATCH,
                                "\(keyA) has shape \(describe(shapeA)) and \(keyB) \(describe(shapeB)), but \(configFileName) gives \(module) rank \(rank) (r / rank_pattern)")
        }
        let siteIndex = try host.findSite(builder, module)
        let site = try host.siteInfo(builder, siteIndex)
        let siteName = site.name.map { String(cString: $0) } ?? module
        // fan_in_fan_out only says the BASE weight is stored [in, out] (GPT-2's Conv1D); PEFT keeps
        // lora_A / lora_B as nn.Linear weights either way, so A is [r, in] and B is [out, r].
        guard shapeA[1] == site.in_features else {
            throw PluginFailure(GRAFT_PLUGIN_SHAPE_MISMATCH,
                                "\(keyA) has shape \(describe(shapeA)): expected [\(rank), \(site.in_features)] for site \(siteName) (in_features \(site.in_features), out_features \(site.out_features))")
        }
        guard shapeB[0] == site.out_features else {
            throw PluginFailure(GRAFT_PLUGIN_SHAPE_MISMATCH,
                                "\(keyB) has shape \(describe(shapeB)): expected [\(site.out_features), \(rank)] for site \(siteName) (in_features \(site.in_features), out_features \(site.out_features))")
        }
        guard let siteNumber = UInt32(exactly: siteIndex), let rankNumber = UInt32(exactly: rank),
              let aData = a.data, let bData = b.data
        else { throw PluginFailure(GRAFT_PLUGIN_INTERNAL, "site index or tensor data out of range for \(module)") }
        plan.append(PlannedTerm(site: siteNumber, rank: rankNumber, a: aData, b: bData,
                                scale: config.scale(rank: rank, alpha: alpha)))
    }

    if config.modalities != 0 && host.api.pointee.abi_version & 0xFFFF < 1 {
        throw PluginFailure(GRAFT_PLUGIN_UNSUPPORTED, "graft_modalities needs a host with plugin ABI 1.1 or newer")
    }
    for term in plan {
        try host.addLowRank(builder, site: term.site, rank: term.rank, a: term.a, b: term.b, scale: term.scale,
                            modalities: config.modalities)
    }
    host.setName(builder, lastComponent(directory))
    host.log(GRAFT_LOG_DEBUG, "lora: \(plan.count) term(s) from \(directory)")
}

/// claims: a directory whose adapter_config.json says peft_type "LORA". Reads only that file.
func claimsLoRA(_ path: String) -> Bool { isAdapterDirectory(path, peftType: "LORA") }

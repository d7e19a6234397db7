// Loads a GRAFT_MOE_LORA directory: per adapted module one router (host->add_router) and one
// routed low-rank term per expert (router = id, expert = e, s = α/r). The host evaluates the
// router (z = W_r x + b_r, then the gate) and scales each expert's term per token.
import CGraftPlugin
import GraftPluginSupport


/// What one key of adapter_model.safetensors is.
private enum KeyKind {
    case routerWeight(String)
    case routerBias(String)
    case expertA(String, Int)
    case expertB(String, Int)

    var module: String {
        switch self {
        case .routerWeight(let m), .routerBias(let m), .expertA(let m, _), .expertB(let m, _): return m
        }
    }
}

private let expectedKeys = "<module>.router.weight, <module>.router.bias, <module>.experts.<e>.lora_A.weight and <module>.experts.<e>.lora_B.weight"

/// "12" → 12; nil for "", "012", "+1", "1e3" or more than 7 digits.
private func expertIndex(_ text: Substring) -> Int? {
    guard !text.isEmpty, text.count <= 7, text.allSatisfy({ $0 >= "0" && $0 <= "9" }),
          text == "0" || !text.hasPrefix("0")
    else { return nil }
    return Int(text)
}

private func classify(_ key: String) throws(PluginFailure) -> KeyKind {
    guard key.hasPrefix(keyPrefix) else {
        throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA,
                            "\(weightsFileName) holds \(key), which does not start with \"\(keyPrefix)\" (keys are \(keyPrefix)\(expectedKeys))")
    }
    let rest = key.dropFirst(keyPrefix.count)
    for (suffix, isWeight) in [(".router.weight", true), (".router.bias", false)] where rest.hasSuffix(suffix) {
        let module = String(rest.dropLast(suffix.count))
        guard !module.isEmpty else { break }
        return isWeight ? .routerWeight(module) : .routerBias(module)
    }
    for (suffix, isA) in [(".lora_A.weight", true), (".lora_B.weight", false)] where rest.hasSuffix(suffix) {
        let stem = rest.dropLast(suffix.count)
        // <module>.experts.<e>: the LAST ".experts." (module names may contain "experts" themselves).
        guard let marker = stem.ranges(of: ".experts.").last else {
            throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA,
                                "\(weightsFileName) holds \(key), a LoRA weight outside any expert; MoE-LoRA keys are \(expectedKeys) (a plain LoRA is a peft_type \"LORA\" adapter)")
        }
        let module = String(stem[..<marker.lowerBound])
        guard !module.isEmpty, let e = expertIndex(stem[marker.upperBound...]) else {
            throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA,
                                "\(weightsFileName) holds \(key): \"\(stem[marker.upperBound...])\" is not an expert index (a decimal number without leading zeros)")
        }
        return isA ? .expertA(module, e) : .expertB(module, e)
    }
    throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "\(weightsFileName) holds \(key); the MoE-LoRA plugin reads only \(expectedKeys)")
}

/// "0, 2 and 3" (at most 8 listed).
private func list(_ numbers: [Int]) -> String {
    let shown = numbers.prefix(8).map(String.init)
    let more = numbers.count > 8 ? " and \(numbers.count - 8) more" : ""
    if shown.count == 1 { return shown[0] + more }
    return shown.dropLast().joined(separator: ", ") + (more.isEmpty ? " and " + shown.last! : ", " + shown.last! + more)
}

/// One checked module, ready for add_router / add_lowrank.
private struct PlannedModule {
    let module: String
    let site: UInt32
    let router: UnsafePointer<Float>
    let bias: UnsafePointer<Float>?
    let experts: [(a: UnsafePointer<Float>, b: UnsafePointer<Float>)]
}

func loadMoELoRA(host: Host, directory: String, builder: OpaquePointer) throws(PluginFailure) {
    try requireAdapterDirectory(directory, kind: "a MoE-LoRA adapter")
    // Nothing below can be added without routers: say so first, not after reading the weights.
    try host.requireRouters()
    let config = try parseMoEConfig(try readConfigJSON(directory))

    let weights = try weightsPath(in: directory)
    let file = try host.openSafetensors(weights)
    defer { host.closeSafetensors(file) }

    // Group the tensors by module, in file order of first appearance.
    var groups = ModuleGroups<ExpertModuleWeights>()
    try host.forEachTensor(file) { (key, tensor) throws(PluginFailure) in
        let kind = try classify(key)
        let i = groups.index(of: kind.module, make: { ExpertModuleWeights(module: $0) })
        switch kind {
        case .routerWeight: groups[i].router = tensor
        case .routerBias: groups[i].bias = tensor
        case .expertA(_, let e), .expertB(_, let e):
            guard e < config.experts else {
                throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA,
                                    "\(weightsFileName) holds \(key), expert \(e), but \(configFileName) has num_experts \(config.experts) (experts 0...\(config.experts - 1))")
            }
            if case .expertA = kind { groups[i].a[e] = tensor } else { groups[i].b[e] = tensor }
        }
    }
    let modules = groups.groups
    guard !modules.isEmpty else {
        throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "\(weights) holds no tensors (expected \(expectedKeys))")
    }

    // Check everything before adding anything.
    let rank = Int64(config.r)
    var plan: [PlannedModule] = []
    var moduleOfSite: [Int: String] = [:]
    for weights in modules {
        let module = weights.module
        let p = keyPrefix + module
        guard config.targets(module) else {
            throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA,
                                "\(weightsFileName) adapts \(module), which target_modules \(config.targetDescription) in \(configFileName) does not name")
        }
        guard let router = weights.router else {
            throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "\(weightsFileName) has experts for \(module) but no router: \(p).router.weight is missing")
        }
        if config.router.bias && weights.bias == nil {
            throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "\(configFileName) has router.bias true, but \(weightsFileName) has no \(p).router.bias")
        }
        if !config.router.bias && weights.bias != nil {
            throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA,
                                "\(weightsFileName) has \(p).router.bias, but \(configFileName) does not set router.bias to true")
        }
        let missingA = (0..<config.experts).filter { weights.a[$0] == nil }
        let missingB = (0..<config.experts).filter { weights.b[$0] == nil }
        if !missingA.isEmpty || !missingB.isEmpty {
            let which = !missingA.isEmpty ? "lora_A" : "lora_B"
            let missing = !missingA.isEmpty ? missingA : missingB
            throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA,
                                "\(configFileName) has num_experts \(config.experts), but \(weightsFileName) has no \(which).weight for expert\(missing.count == 1 ? "" : "s") \(list(missing)) of \(module) (e.g. \(p).experts.\(missing[0]).\(which).weight)")
        }

        let siteIndex = try host.findSite(builder, module)
        let site = try host.siteInfo(builder, siteIndex)
        let siteName = site.name.map { String(cString: $0) } ?? module
        if let other = moduleOfSite[siteIndex] {
            throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "\(weightsFileName) has weights for both \(other) and \(module), which name the same site \(siteName)")
        }
        moduleOfSite[siteIndex] = module
        let features = "site \(siteName) (in_features \(site.in_features), out_features \(site.out_features))"

        let routerShape = try checkTensor(router, p + ".router.weight")
        guard routerShape.count == 2, routerShape[0] == Int64(config.experts) else {
            throw PluginFailure(GRAFT_PLUGIN_SHAPE_MISMATCH,
                                "\(p).router.weight has shape \(describe(routerShape)), but \(configFileName) has num_experts \(config.experts): expected [\(config.experts), \(site.in_features)] for \(features)")
        }
        guard routerShape[1] == site.in_features else {
            throw PluginFailure(GRAFT_PLUGIN_SHAPE_MISMATCH,
                                "\(p).router.weight has shape \(describe(routerShape)): expected [\(config.experts), \(site.in_features)] for \(features)")
        }
        if let bias = weights.bias {
            let shape = try checkTensor(bias, p + ".router.bias")
            guard shape == [Int64(config.experts)] else {
                throw PluginFailure(GRAFT_PLUGIN_SHAPE_MISMATCH,
                                    "\(p).router.bias has shape \(describe(shape)): expected [\(config.experts)] (num_experts)")
            }
        }
        var experts: [(a: UnsafePointer<Float>, b: UnsafePointer<Float>)] = []
        for e in 0..<config.experts {
            let a = weights.a[e]!, b = weights.b[e]!
            let keyA = "\(p).experts.\(e).lora_A.weight", keyB = "\(p).experts.\(e).lora_B.weight"
            let shapeA = try checkTensor(a, keyA), shapeB = try checkTensor(b, keyB)
            guard shapeA.count == 2, shapeB.count == 2, shapeA[0] == rank, shapeB[1] == rank else {
                throw PluginFailure(GRAFT_PLUGIN_SHAPE_MISMATCH,
                                    "\(keyA) has shape \(describe(shapeA)) and \(keyB) \(describe(shapeB)), but \(configFileName) has r \(rank): expected [\(rank), \(site.in_features)] and [\(site.out_features), \(rank)] for \(features)")
            }
            guard shapeA[1] == site.in_features else {
                throw PluginFailure(GRAFT_PLUGIN_SHAPE_MISMATCH,
                                    "\(keyA) has shape \(describe(shapeA)): expected [\(rank), \(site.in_features)] for \(features)")
            }
            guard shapeB[0] == site.out_features else {
                throw PluginFailure(GRAFT_PLUGIN_SHAPE_MISMATCH,
                                    "\(keyB) has shape \(describe(shapeB)): expected [\(site.out_features), \(rank)] for \(features)")
            }
            guard let aData = a.data, let bData = b.data else {
                throw PluginFailure(GRAFT_PLUGIN_INTERNAL, "the host returned no data for \(keyA) or \(keyB)")
            }
            experts.append((aData, bData))
        }
        guard let siteNumber = UInt32(exactly: siteIndex), let routerData = router.data else {
            throw PluginFailure(GRAFT_PLUGIN_INTERNAL, "site index or router data out of range for \(module)")
        }
        plan.append(PlannedModule(module: module, site: siteNumber, router: routerData, bias: weights.bias?.data, experts: experts))
    }

    for m in plan {
        var router = graft_router(
            struct_size: UInt32(MemoryLayout<graft_router>.size), site: m.site, experts: UInt32(config.experts),
            gate: config.router.gate, weight: m.router, bias: m.bias, top_k: UInt32(config.router.topK),
            renormalize: config.router.renormalize ? 1 : 0, threshold: config.router.threshold, expert_modalities: nil)
        let id = try host.addRouter(builder, &router)
        for (e, expert) in m.experts.enumerated() {
            try host.addLowRank(builder, site: m.site, rank: UInt32(config.r), a: expert.a, b: expert.b, scale: config.scale,
                                router: id, expert: UInt32(e))
        }
    }
    host.setName(builder, lastComponent(directory))
    host.log(GRAFT_LOG_DEBUG, "moe-lora: \(plan.count) router(s) with \(config.experts) expert(s) each (gate \(config.router.gateName)) from \(directory)")
}

/// claims: a directory whose adapter_config.json says peft_type "GRAFT_MOE_LORA". Reads only that file.
func claimsMoELoRA(_ path: String) -> Bool { isAdapterDirectory(path, peftType: moePeftType) }

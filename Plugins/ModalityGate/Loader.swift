// Loads a GRAFT_MODALITY_GATE directory. Per adapted module, one low-rank term per expert whose
// `modalities` mask is the expert's modality ids; with a router, also one router
// (host->add_router) with the experts' masks as graft_router.expert_modalities (plugin ABI 1.2),
// and each term gated by its expert's weight. Keys are MoE-LoRA's:
//   base_model.model.<module>.experts.<e>.lora_A.weight  [r, in]
//   base_model.model.<module>.experts.<e>.lora_B.weight  [out, r]
//   base_model.model.<module>.router.weight [E, in], .router.bias [E]   (with a router only)
import CGraftPlugin
import GraftPluginSupport

private let expectedKeys = "<module>.experts.<e>.lora_A.weight, <module>.experts.<e>.lora_B.weight (and, with a router, <module>.router.weight / .router.bias)"

private struct Planned {
    let site: UInt32
    let router: UnsafePointer<Float>?
    let bias: UnsafePointer<Float>?
    let experts: [(a: UnsafePointer<Float>, b: UnsafePointer<Float>)]
}

/// Splits a key into its module and what it is: ("router", nil) / ("bias", nil) / ("A"|"B", e).
private func classify(_ key: String, experts: Int) throws(PluginFailure) -> (module: String, kind: String, expert: Int) {
    guard key.hasPrefix(keyPrefix) else {
        throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "\(weightsFileName) holds \(key), which does not start with \"\(keyPrefix)\" (keys are \(keyPrefix)\(expectedKeys))")
    }
    let rest = key.dropFirst(keyPrefix.count)
    for (suffix, kind) in [(".router.weight", "router"), (".router.bias", "bias")] where rest.hasSuffix(suffix) && rest.count > suffix.count {
        return (String(rest.dropLast(suffix.count)), kind, 0)
    }
    for (suffix, kind) in [(".lora_A.weight", "A"), (".lora_B.weight", "B")] where rest.hasSuffix(suffix) {
        let stem = rest.dropLast(suffix.count)
        guard let marker = stem.ranges(of: ".experts.").last, marker.lowerBound > stem.startIndex else {
            throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "\(weightsFileName) holds \(key), a LoRA weight outside any expert; ModalityGate keys are \(expectedKeys)")
        }
        let index = stem[marker.upperBound...]
        guard !index.isEmpty, index.count <= 7, index.allSatisfy({ $0 >= "0" && $0 <= "9" }), index == "0" || !index.hasPrefix("0"),
              let e = Int(index) else {
            throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "\(weightsFileName) holds \(key): \"\(index)\" is not an expert index (a decimal number without leading zeros)")
        }
        guard e < experts else {
            throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "\(weightsFileName) holds \(key), expert \(e), but \(configFileName) has num_experts \(experts) (experts 0...\(experts - 1))")
        }
        return (String(stem[..<marker.lowerBound]), kind, e)
    }
    throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "\(weightsFileName) holds \(key); the ModalityGate plugin reads only \(expectedKeys)")
}

func loadModalityGate(host: Host, directory: String, builder: OpaquePointer) throws(PluginFailure) {
    try requireAdapterDirectory(directory, kind: "a ModalityGate adapter")
    let config = try parseModalityGateConfig(try readConfigJSON(directory))
    // Hard gates need ABI 1.1 (graft_lowrank_term.modalities); routing within groups 1.2.
    if config.router != nil { try host.requireExpertGroups("modality-gate") } else { try host.requireTermModalities("modality-gate") }

    let weights = try weightsPath(in: directory)
    let file = try host.openSafetensors(weights)
    defer { host.closeSafetensors(file) }
    var groups = ModuleGroups<ExpertModuleWeights>()
    try host.forEachTensor(file) { (key, tensor) throws(PluginFailure) in
        let (module, kind, e) = try classify(key, experts: config.experts)
        if (kind == "router" || kind == "bias") && config.router == nil {
            throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "\(weightsFileName) holds \(key), but \(configFileName) has no \"router\" (hard modality gates have no router weights)")
        }
        let i = groups.index(of: module, make: { ExpertModuleWeights(module: $0) })
        switch kind {
        case "router": groups[i].router = tensor
        case "bias": groups[i].bias = tensor
        case "A": groups[i].a[e] = tensor
        default: groups[i].b[e] = tensor
        }
    }
    let modules = groups.groups
    guard !modules.isEmpty else { throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "\(weights) holds no tensors (expected \(expectedKeys))") }

    // Check everything before adding anything.
    let rank = Int64(config.r), e = Int64(config.experts)
    var plan: [Planned] = []
    var moduleOfSite: [Int: String] = [:]
    for w in modules {
        let p = keyPrefix + w.module
        guard config.targets(w.module) else {
            throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "\(weightsFileName) adapts \(w.module), which target_modules \(config.targetDescription) in \(configFileName) does not name")
        }
        for which in ["A", "B"] {
            let have = which == "A" ? w.a : w.b
            if let missing = (0..<config.experts).first(where: { have[$0] == nil }) {
                throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "\(configFileName) has num_experts \(config.experts), but \(weightsFileName) has no \(p).experts.\(missing).lora_\(which).weight")
            }
        }
        let siteIndex = try host.findSite(builder, w.module)
        let site = try host.siteInfo(builder, siteIndex)
        let siteName = site.name.map { String(cString: $0) } ?? w.module
        if let other = moduleOfSite[siteIndex] {
            throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "\(weightsFileName) has weights for both \(other) and \(w.module), which name the same site \(siteName)")
        }
        moduleOfSite[siteIndex] = w.module
        let features = "site \(siteName) (in_features \(site.in_features), out_features \(site.out_features))"
        var routerData: UnsafePointer<Float>?
        if let router = config.router {
            guard let r = w.router else {
                throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "\(configFileName) has a router, but \(weightsFileName) has no \(p).router.weight")
            }
            let shape = try checkTensor(r, p + ".router.weight")
            guard shape == [e, site.in_features] else {
                throw PluginFailure(GRAFT_PLUGIN_SHAPE_MISMATCH, "\(p).router.weight has shape \(describe(shape)): expected [\(e), \(site.in_features)] (num_experts, in_features) for \(features)")
            }
            if router.bias != (w.bias != nil) {
                throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, router.bias
                    ? "\(configFileName) has router.bias true, but \(weightsFileName) has no \(p).router.bias"
                    : "\(weightsFileName) has \(p).router.bias, but \(configFileName) does not set router.bias to true")
            }
            if let bias = w.bias {
                let bs = try checkTensor(bias, p + ".router.bias")
                guard bs == [e] else { throw PluginFailure(GRAFT_PLUGIN_SHAPE_MISMATCH, "\(p).router.bias has shape \(describe(bs)): expected [\(e)] (num_experts)") }
            }
            routerData = r.data
        }
        var experts: [(a: UnsafePointer<Float>, b: UnsafePointer<Float>)] = []
        for x in 0..<config.experts {
            let keyA = "\(p).experts.\(x).lora_A.weight", keyB = "\(p).experts.\(x).lora_B.weight"
            let sa = try checkTensor(w.a[x]!, keyA), sb = try checkTensor(w.b[x]!, keyB)
            guard sa == [rank, site.in_features], sb == [site.out_features, rank] else {
                throw PluginFailure(GRAFT_PLUGIN_SHAPE_MISMATCH, "\(keyA) has shape \(describe(sa)) and \(keyB) \(describe(sb)): expected [\(rank), \(site.in_features)] and [\(site.out_features), \(rank)] (r \(rank)) for \(features)")
            }
            guard let a = w.a[x]!.data, let b = w.b[x]!.data else { throw PluginFailure(GRAFT_PLUGIN_INTERNAL, "the host returned no data for \(keyA) or \(keyB)") }
            experts.append((a, b))
        }
        guard let siteNumber = UInt32(exactly: siteIndex) else { throw PluginFailure(GRAFT_PLUGIN_INTERNAL, "site index \(siteIndex) out of range") }
        plan.append(Planned(site: siteNumber, router: routerData, bias: w.bias?.data, experts: experts))
    }

    for m in plan {
        var id: UInt32 = 0
        if let r = config.router, let weight = m.router {
            id = try config.expertMasks.withUnsafeBufferPointer { masks throws(PluginFailure) -> UInt32 in
                var router = graft_router(
                    struct_size: UInt32(MemoryLayout<graft_router>.size), site: m.site, experts: UInt32(config.experts),
                    gate: r.gate, weight: weight, bias: m.bias, top_k: UInt32(r.topK), renormalize: r.renormalize ? 1 : 0,
                    threshold: r.threshold, expert_modalities: masks.baseAddress)
                return try host.addRouter(builder, &router)
            }
        }
        for (x, expert) in m.experts.enumerated() {
            try host.addLowRank(builder, site: m.site, rank: UInt32(config.r), a: expert.a, b: expert.b, scale: config.scale,
                                router: id, expert: UInt32(x), modalities: config.expertMasks[x])
        }
    }
    host.setName(builder, lastComponent(directory))
    host.log(GRAFT_LOG_DEBUG, "modality-gate: \(plan.count) module(s) with \(config.experts) expert(s) each (\(config.router.map { "gate \($0.gateName)" } ?? "hard gates")) from \(directory)")
}

/// claims: a directory whose adapter_config.json says peft_type "GRAFT_MODALITY_GATE".
func claimsModalityGate(_ path: String) -> Bool { isAdapterDirectory(path, peftType: modalityGatePeftType) }

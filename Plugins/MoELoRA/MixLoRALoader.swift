// Loads a MixLoRA checkpoint (peft_type "MIXLORA", the `mixlora` package's layout, weights
// converted to adapter_model.safetensors) as
//   - one low-rank term per attention projection (mixlora.layers.{i}.self_attn.{proj}.lora_A/B),
//   - per layer one router at the MLP's gate site (moe_gate, top-k over a softmax, renormalised)
//     and one block mixture over the layer's gate/up/down sites (host->add_block_mixture) with
//     each expert's LoRA deltas on the projections (mixlora.layers.{i}.mlp.{proj}.experts.{e}.lora_A/B).
// The host evaluates the mixture (BlockMixtureExecution.swift in GraftCore).
import CGraftPlugin
import GraftPluginSupport

private let mixloraPrefix = "mixlora.layers."
private let mlpProjections = ["gate_proj", "up_proj", "down_proj"]   // GRAFT_BLOCK_PROJ_GATE, _UP, _DOWN
/// MLP names of other model families the package knows (Phi's fc1/fc2, Phi-3's fused gate_up_proj).
private let otherMLPProjections = ["fc1", "fc2", "gate_up_proj"]
private let mixloraKeys = "mixlora.layers.<i>.mlp.moe_gate.weight, mixlora.layers.<i>.mlp.<proj>.experts.<e>.lora_A/lora_B.weight and mixlora.layers.<i>.self_attn.<proj>.lora_A/lora_B.weight"

private struct LoRAPair {
    var a: graft_st_tensor?
    var b: graft_st_tensor?
}

private struct LayerWeights {
    var moeGate: graft_st_tensor?
    /// projection → expert → A/B
    var experts: [String: [Int: LoRAPair]] = [:]
    /// attention projection → A/B
    var attention: [String: LoRAPair] = [:]
}

/// "12" → 12; nil for "", "012", "+1" or more than 7 digits.
private func decimal(_ text: Substring) -> Int? {
    guard !text.isEmpty, text.count <= 7, text.allSatisfy({ $0 >= "0" && $0 <= "9" }), text == "0" || !text.hasPrefix("0") else { return nil }
    return Int(text)
}

/// Sorts one key into `layers`.
private func classify(_ key: String, _ tensor: graft_st_tensor, config: MixLoRAConfig, into layers: inout [Int: LayerWeights]) throws(PluginFailure) {
    let parts = key.split(separator: ".", omittingEmptySubsequences: false)
    func bad() -> PluginFailure {
        PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "\(weightsFileName) holds \(key); a MixLoRA checkpoint holds only \(mixloraKeys)")
    }
    guard key.hasPrefix(mixloraPrefix), parts.count >= 6, let layer = decimal(parts[2]) else { throw bad() }
    let isAB = parts.last == "weight" && (parts[parts.count - 2] == "lora_A" || parts[parts.count - 2] == "lora_B")
    let isA = parts.count >= 2 && parts[parts.count - 2] == "lora_A"
    switch (parts[3], parts.count) {
    case ("mlp", 6) where parts[4] == "moe_gate" && parts[5] == "weight":
        layers[layer, default: LayerWeights()].moeGate = tensor
    case ("mlp", 9) where parts[5] == "experts" && isAB:
        guard let e = decimal(parts[6]) else {
            throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "\(weightsFileName) holds \(key): \"\(parts[6])\" is not an expert index")
        }
        guard e < config.experts else {
            throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "\(weightsFileName) holds \(key), expert \(e), but \(configFileName) has num_experts \(config.experts) (experts 0...\(config.experts - 1))")
        }
        let proj = String(parts[4])
        var pair = layers[layer, default: LayerWeights()].experts[proj, default: [:]][e, default: LoRAPair()]
        if isA { pair.a = tensor } else { pair.b = tensor }
        layers[layer, default: LayerWeights()].experts[proj, default: [:]][e] = pair
    case ("self_attn", 7) where isAB:
        let proj = String(parts[4])
        var pair = layers[layer, default: LayerWeights()].attention[proj, default: LoRAPair()]
        if isA { pair.a = tensor } else { pair.b = tensor }
        layers[layer, default: LayerWeights()].attention[proj] = pair
    default:
        throw bad()
    }
}

/// A checked LoRA: site and weights, ready for add_lowrank / add_block_delta.
private struct CheckedLoRA {
    let site: Int
    let a: UnsafePointer<Float>
    let b: UnsafePointer<Float>
}

/// Checks A [r, in] / B [out, r] against a site.
private func check(_ pair: LoRAPair, key p: String, site: Int, info: graft_site_info, rank: Int64) throws(PluginFailure) -> CheckedLoRA {
    guard let a = pair.a, let b = pair.b else {
        throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "\(weightsFileName) has \(pair.a == nil ? p + ".lora_B.weight" : p + ".lora_A.weight") but no \(pair.a == nil ? p + ".lora_A.weight" : p + ".lora_B.weight")")
    }
    let shapeA = try checkTensor(a, p + ".lora_A.weight"), shapeB = try checkTensor(b, p + ".lora_B.weight")
    let siteName = info.name.map { String(cString: $0) } ?? "#\(site)"
    guard shapeA == [rank, info.in_features], shapeB == [info.out_features, rank], let aData = a.data, let bData = b.data else {
        throw PluginFailure(GRAFT_PLUGIN_SHAPE_MISMATCH, """
            \(p).lora_A.weight has shape \(describe(shapeA)) and lora_B \(describe(shapeB)): expected [\(rank), \(info.in_features)] and \
            [\(info.out_features), \(rank)] for r \(rank) (\(configFileName)) and site \(siteName) (in_features \(info.in_features), out_features \(info.out_features))
            """)
    }
    return CheckedLoRA(site: site, a: aData, b: bData)
}

private struct PlannedLayer {
    let gateSite: Int, upSite: Int, downSite: Int
    let router: UnsafePointer<Float>
    /// experts[e][p]: expert e's LoRA on projection p (gate, up, down), nil when not targeted.
    let experts: [[CheckedLoRA?]]
}

func loadMixLoRA(host: Host, directory: String, builder: OpaquePointer) throws(PluginFailure) {
    let plugin = "moe-lora (MixLoRA)"
    try host.requireBlocks(plugin)
    try host.requireRouters()
    let config = try parseMixLoRAConfig(try readConfigJSON(directory))
    let file = try host.openSafetensors(try weightsPath(in: directory))
    defer { host.closeSafetensors(file) }

    var layers: [Int: LayerWeights] = [:]
    try host.forEachTensor(file) { (key, tensor) throws(PluginFailure) in try classify(key, tensor, config: config, into: &layers) }
    guard !layers.isEmpty else { throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "\(weightsFileName) holds no tensors (expected \(mixloraKeys))") }

    // Check everything before adding anything.
    let rank = Int64(config.r)
    var attention: [CheckedLoRA] = []
    var planned: [PlannedLayer] = []
    for layer in layers.keys.sorted() {
        let w = layers[layer]!
        let stem = "model.layers.\(layer)"
        for (proj, pair) in w.attention.sorted(by: { $0.key < $1.key }) {
            let p = "\(mixloraPrefix)\(layer).self_attn.\(proj)"
            guard config.targets(proj) else {
                throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "\(weightsFileName) has \(p).lora_A/B.weight, but target_modules in \(configFileName) does not name \(proj)")
            }
            let site = try host.findSite(builder, "\(stem).self_attn.\(proj)")
            attention.append(try check(pair, key: p, site: site, info: try host.siteInfo(builder, site), rank: rank))
        }
        for proj in w.experts.keys.sorted() where !mlpProjections.contains(proj) {
            throw PluginFailure(GRAFT_PLUGIN_UNSUPPORTED, otherMLPProjections.contains(proj)
                ? "\(weightsFileName) has experts on mlp.\(proj): Graft runs MixLoRA on gated MLPs (gate_proj, up_proj, down_proj: Llama, Mistral, Qwen2, Gemma) only"
                : "\(weightsFileName) has experts on mlp.\(proj), which is not a projection of a gated MLP (gate_proj, up_proj, down_proj)")
        }
        guard let gate = w.moeGate else {
            guard w.experts.isEmpty else {
                throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "\(weightsFileName) has experts for layer \(layer) but no router: \(mixloraPrefix)\(layer).mlp.moe_gate.weight is missing")
            }
            continue
        }
        let sites = try mlpProjections.map { proj throws(PluginFailure) in try host.findSite(builder, "\(stem).mlp.\(proj)") }
        let infos = try sites.map { s throws(PluginFailure) in try host.siteInfo(builder, s) }
        let gateKey = "\(mixloraPrefix)\(layer).mlp.moe_gate.weight"
        let gateShape = try checkTensor(gate, gateKey)
        guard gateShape.count == 2, gateShape[0] == Int64(config.experts), gateShape[1] == infos[0].in_features, let gateData = gate.data else {
            throw PluginFailure(GRAFT_PLUGIN_SHAPE_MISMATCH, """
                \(gateKey) has shape \(describe(gateShape)), but \(configFileName) has num_experts \(config.experts): expected \
                [\(config.experts), \(infos[0].in_features)] (one router row per expert over the MLP input)
                """)
        }
        var experts = [[CheckedLoRA?]](repeating: [nil, nil, nil], count: config.experts)
        for (p, proj) in mlpProjections.enumerated() {
            let found = w.experts[proj] ?? [:]
            guard config.targets(proj) else {
                if !found.isEmpty {
                    throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "\(weightsFileName) has experts on \(mixloraPrefix)\(layer).mlp.\(proj), but target_modules in \(configFileName) does not name \(proj)")
                }
                continue
            }
            let missing = (0..<config.experts).filter { found[$0] == nil }
            guard missing.isEmpty else {
                throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, """
                    \(configFileName) has num_experts \(config.experts) and targets \(proj), but \(weightsFileName) has no LoRA for \
                    expert\(missing.count == 1 ? "" : "s") \(missing.prefix(8).map(String.init).joined(separator: ", ")) of layer \(layer) \
                    (e.g. \(mixloraPrefix)\(layer).mlp.\(proj).experts.\(missing[0]).lora_A.weight)
                    """)
            }
            for e in 0..<config.experts {
                experts[e][p] = try check(found[e]!, key: "\(mixloraPrefix)\(layer).mlp.\(proj).experts.\(e)", site: sites[p], info: infos[p], rank: rank)
            }
        }
        planned.append(PlannedLayer(gateSite: sites[0], upSite: sites[1], downSite: sites[2], router: gateData, experts: experts))
    }
    guard !planned.isEmpty else {
        throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "\(weightsFileName) has no \(mixloraPrefix)<i>.mlp.moe_gate.weight: a MixLoRA checkpoint has a router per layer")
    }

    // The package injects a mixture into every layer of the model (and fails on a missing one):
    // a model layer with a gated MLP the checkpoint has no router for is an error, not the base MLP.
    let covered = Set(layers.compactMap { $0.value.moeGate == nil ? nil : $0.key })
    for index in 0..<(host.api.pointee.site_count?(builder) ?? 0) {
        guard let name = try host.siteInfo(builder, index).name.map({ String(cString: $0) }),
              name.hasSuffix(".mlp.gate_proj"), let range = name.ranges(of: "model.layers.").last else { continue }
        if let layer = decimal(name[range.upperBound...].prefix { $0 != "." }), !covered.contains(layer) {
            throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "the model has layer \(layer) (\(name)) but \(weightsFileName) has no \(mixloraPrefix)\(layer).mlp.moe_gate.weight: a MixLoRA checkpoint covers every layer")
        }
    }

    let scale = config.scale
    for t in attention {
        try host.addLowRank(builder, site: UInt32(t.site), rank: UInt32(config.r), a: t.a, b: t.b, scale: scale)
    }
    for layer in planned {
        var router = graft_router(
            struct_size: UInt32(MemoryLayout<graft_router>.size), site: UInt32(layer.gateSite), experts: UInt32(config.experts),
            gate: GRAFT_GATE_TOPK, weight: layer.router, bias: nil, top_k: UInt32(config.topK), renormalize: 1, threshold: 0,
            expert_modalities: nil)
        let routerID = try host.addRouter(builder, &router)
        var mixture = graft_block_mixture(
            struct_size: UInt32(MemoryLayout<graft_block_mixture>.size), kind: GRAFT_BLOCK_GATED_MLP,
            gate_site: UInt32(layer.gateSite), up_site: UInt32(layer.upSite), down_site: UInt32(layer.downSite),
            activation: config.activation, router: routerID)
        let blockID = try host.addBlockMixture(builder, &mixture, plugin: plugin)
        for (e, projections) in layer.experts.enumerated() {
            for (p, lora) in projections.enumerated() {
                guard let lora else { continue }
                var delta = graft_block_delta(
                    struct_size: UInt32(MemoryLayout<graft_block_delta>.size), block: blockID, expert: UInt32(e), projection: Int32(p),
                    rank: UInt32(config.r), a: lora.a, b: lora.b, scale: scale, activation: GRAFT_ACTIVATION_IDENTITY)
                try host.addBlockDelta(builder, &delta, plugin: plugin)
            }
        }
    }
    host.setName(builder, lastComponent(directory))
    host.log(GRAFT_LOG_DEBUG, "moe-lora: MixLoRA with \(planned.count) MLP block(s) of \(config.experts) experts (top-\(config.topK), act \(config.actName)) and \(attention.count) attention LoRA(s) from \(directory)")
}

/// claims: a directory whose adapter_config.json says peft_type "MIXLORA". Reads only that file.
func claimsMixLoRA(_ path: String) -> Bool { isAdapterDirectory(path, peftType: mixloraPeftType) }

// adapter_config.json of Graft's VLoRA format (peft_type "GRAFT_VLORA", docs/ADAPTERS.md):
//
//   {"peft_type": "GRAFT_VLORA", "generator": "generator.onnx", "aux_input": "image_features",
//    "targets": [{"module": "model.layers.0.self_attn.q_proj", "r": 8, "scale": 0.5,
//                 "lora_A": "model.layers.0.self_attn.q_proj.lora_A",
//                 "lora_B": {"fixed": "model.layers.0.self_attn.q_proj.lora_B"}}]}
//
// Strict on purpose: unknown keys of a target, wrong types and duplicate modules are errors.
import CGraftPlugin
import GraftPluginSupport

let vloraPeftType = "GRAFT_VLORA"
let maxRank = 4096
let maxTargets = 65536

/// Where a factor comes from: a generator output, or a fixed tensor of adapter_model.safetensors.
enum FactorSource {
    case output(String)
    case fixed(String)
}

struct VLoRATarget {
    var module: String
    var r: Int
    var scale: Float
    var a: FactorSource
    var b: FactorSource
}

struct VLoRAConfig {
    var generator: String
    var auxInput: String
    var targets: [VLoRATarget]

    var needsWeights: Bool {
        targets.contains { if case .fixed = $0.a { return true }; if case .fixed = $0.b { return true }; return false }
    }
}

private func invalid(_ field: String, _ expected: String, _ got: JSONValue) -> PluginFailure {
    PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "adapter_config.json: \"\(field)\" must be \(expected), got \(got.kindDescription)")
}

private func string(_ json: JSONValue, _ key: String, field: String) throws(PluginFailure) -> String {
    guard let v = json[key] else { throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "adapter_config.json: \"\(field)\" is required") }
    guard case .string(let s) = v, !s.isEmpty else { throw invalid(field, "a non-empty string", v) }
    return s
}

private func factor(_ target: JSONValue, _ key: String, module: String, index: Int) throws(PluginFailure) -> FactorSource {
    let field = "targets[\(index)].\(key)"
    guard let v = target[key] else { return .output("\(module).\(key)") }   // default: the output named after the site
    switch v {
    case .string(let s) where !s.isEmpty: return .output(s)
    case .object(let members):
        guard members.count == 1, members[0].key == "fixed", case .string(let s) = members[0].value, !s.isEmpty else {
            throw invalid(field, "a generator output name or {\"fixed\": \"<tensor in adapter_model.safetensors>\"}", v)
        }
        return .fixed(s)
    default:
        throw invalid(field, "a generator output name or {\"fixed\": \"<tensor in adapter_model.safetensors>\"}", v)
    }
}

func parseVLoRAConfig(_ json: JSONValue) throws(PluginFailure) -> VLoRAConfig {
    try requirePeftType(json, vloraPeftType, reader: "the VLoRA plugin")
    let generator = try string(json, "generator", field: "generator")
    let aux = try string(json, "aux_input", field: "aux_input")
    guard let list = json["targets"] else { throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "adapter_config.json: \"targets\" is required") }
    guard case .array(let items) = list, !items.isEmpty, items.count <= maxTargets else {
        throw invalid("targets", "a non-empty list of at most \(maxTargets) objects", list)
    }
    var targets: [VLoRATarget] = []
    var seen = Set<String>()
    for (i, item) in items.enumerated() {
        guard case .object(let members) = item else { throw invalid("targets[\(i)]", "an object", item) }
        let known: Set<String> = ["module", "r", "scale", "lora_A", "lora_B"]
        if let extra = members.first(where: { !known.contains($0.key) }) {
            throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "adapter_config.json: targets[\(i)] has an unknown key \"\(extra.key)\" (known: module, r, scale, lora_A, lora_B)")
        }
        let module = try string(item, "module", field: "targets[\(i)].module")
        guard seen.insert(module).inserted else {
            throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "adapter_config.json: module \"\(module)\" is listed twice in targets")
        }
        guard let rv = item["r"], case .number(let r) = rv, r.isFinite, r == r.rounded(), r >= 1, r <= Double(maxRank) else {
            throw invalid("targets[\(i)].r", "an integer in 1...\(maxRank)", item["r"] ?? .null)
        }
        var scale: Float = 1
        if let sv = item["scale"] {
            guard case .number(let s) = sv, s.isFinite else { throw invalid("targets[\(i)].scale", "a finite number", sv) }
            scale = Float(s)
        }
        let a = try factor(item, "lora_A", module: module, index: i)
        let b = try factor(item, "lora_B", module: module, index: i)
        if case .fixed = a, case .fixed = b {
            throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "adapter_config.json: targets[\(i)] (\(module)) has both factors fixed, so nothing is generated; use a LORA adapter for it")
        }
        targets.append(VLoRATarget(module: module, r: Int(r), scale: scale, a: a, b: b))
    }
    return VLoRAConfig(generator: generator, auxInput: aux, targets: targets)
}

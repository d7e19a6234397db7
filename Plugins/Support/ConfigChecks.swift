// Checks every Swift plugin's adapter_config.json reader makes before reading its own fields:
// the peft_type, the options it refuses rather than ignores, and "bias".
import CGraftPlugin

/// The config is a JSON object (else INVALID_DATA) with a "peft_type" string (else INVALID_DATA)
/// that is `type` (else UNSUPPORTED: another format). `reader` names the plugin in the message.
package func requirePeftType(_ json: JSONValue, _ type: String, reader: String) throws(PluginFailure) {
    guard case .object = json else {
        throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "\(configFileName) must hold a JSON object, got \(json.kindDescription)")
    }
    guard let found = peftType(of: json) else {
        throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "\(configFileName) has no \"peft_type\" string")
    }
    guard found == type else {
        throw PluginFailure(GRAFT_PLUGIN_UNSUPPORTED, "\(configFileName) has peft_type \"\(found)\"; \(reader) reads only \"\(type)\"")
    }
}

/// Options that change the forward pass in a way `reader` does not compute: the first one that
/// is set (isSet) is refused with UNSUPPORTED rather than ignored.
package func refuseOptions(_ json: JSONValue, _ refusals: [(field: String, what: String)], reader: String) throws(PluginFailure) {
    for refusal in refusals where isSet(json[refusal.field]) {
        throw PluginFailure(GRAFT_PLUGIN_UNSUPPORTED, "\(configFileName) asks for \(refusal.what), which \(reader) does not support")
    }
}

/// "bias" must be absent, null or "none": trained biases are not supported.
package func requireNoTrainedBias(_ json: JSONValue) throws(PluginFailure) {
    switch json["bias"] {
    case nil, .null?, .string("none")?: break
    case let other?: throw configError("bias", "\"none\" (trained biases are not supported)", other)
    }
}

/// A number field such as lora_alpha: finite and at most 1e30 in magnitude (so products with
/// weights stay finite in Float).
package func configFiniteNumber(_ value: JSONValue, _ field: String) throws(PluginFailure) -> Double {
    guard case .number(let number) = value, number.isFinite, abs(number) <= 1e30 else {
        throw configError(field, "a finite number", value)
    }
    return number
}

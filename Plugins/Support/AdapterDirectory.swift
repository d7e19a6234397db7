// The layout both Swift plugins read: a PEFT-style directory with adapter_config.json and
// adapter_model.safetensors, and the small config helpers they share.
import CGraftPlugin

package let configFileName = "adapter_config.json"
package let weightsFileName = "adapter_model.safetensors"
package let pickleFileName = "adapter_model.bin"
/// Larger than any real adapter_config.json by far; bounds what claims/load read.
package let configSizeLimit = 4 << 20
/// PEFT's prefix on every saved key (PeftModel.base_model.model.<module>).
package let keyPrefix = "base_model.model."

/// The first check of every load: `directory` must be one (IO error otherwise). `kind` names the
/// format in the message ("a MoE-LoRA adapter").
package func requireAdapterDirectory(_ directory: String, kind: String) throws(PluginFailure) {
    guard fileKind(directory) == .directory else {
        throw PluginFailure(GRAFT_PLUGIN_IO, "\(directory) is not a directory; \(kind) is a directory with \(configFileName) and \(weightsFileName)")
    }
}

/// Reads and parses adapter_config.json in `directory`.
package func readConfigJSON(_ directory: String) throws(PluginFailure) -> JSONValue {
    let path = joinPath(directory, configFileName)
    guard fileKind(path) == .regular else {
        throw PluginFailure(GRAFT_PLUGIN_IO, "\(directory) has no \(configFileName): not an adapter directory")
    }
    guard let bytes = readSmallFile(path, limit: configSizeLimit) else {
        throw PluginFailure(GRAFT_PLUGIN_IO, "cannot read \(path) (unreadable, or larger than \(configSizeLimit) bytes)")
    }
    do {
        return try parseJSON(bytes)
    } catch {
        throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "\(path) is not valid JSON: \(error.reason) at byte \(error.offset)")
    }
}

/// The peft_type of a parsed config, if it is a string.
package func peftType(of config: JSONValue) -> String? {
    if case .string(let type)? = config["peft_type"] { return type }
    return nil
}

/// claims: true when `path` is a directory whose adapter_config.json says peft_type `type`.
/// Reads only that file; any failure to read it is "not mine".
package func isAdapterDirectory(_ path: String, peftType type: String) -> Bool {
    guard fileKind(path) == .directory, let json = try? readConfigJSON(path) else { return false }
    return peftType(of: json) == type
}

/// True when the field is present and not null / false / empty.
package func isSet(_ value: JSONValue?) -> Bool {
    switch value {
    case nil, .null?, .bool(false)?: return false
    case .array(let elements)?: return !elements.isEmpty
    case .object(let members)?: return !members.isEmpty
    case .string(let text)?: return !text.isEmpty
    default: return true
    }
}

/// The path of adapter_model.safetensors in `directory`, refusing a directory that holds only a
/// pickled adapter_model.bin (unpickling can execute code).
package func weightsPath(in directory: String) throws(PluginFailure) -> String {
    let path = joinPath(directory, weightsFileName)
    if fileKind(path) != .regular {
        if fileKind(joinPath(directory, pickleFileName)) != .missing {
            throw PluginFailure(GRAFT_PLUGIN_UNSUPPORTED, """
                \(directory) has only \(pickleFileName). adapter_model.bin is a Python pickle, which can execute code; \
                Graft reads only \(weightsFileName) (convert with: python -c "import torch, safetensors.torch as st; \
                st.save_file(torch.load('adapter_model.bin', weights_only=True), 'adapter_model.safetensors')")
                """)
        }
        throw PluginFailure(GRAFT_PLUGIN_IO, "\(directory) has no \(weightsFileName)")
    }
    return path
}

/// The dims of a tensor the host returned.
package func shapeOf(_ t: graft_st_tensor) -> [Int64] {
    guard let shape = t.shape else { return [] }
    return (0..<Int(t.rank)).map { shape[$0] }
}

package func describe(_ shape: [Int64]) -> String {
    "[" + shape.map(String.init).joined(separator: ", ") + "]"
}

/// Rejects a tensor whose host-reported element count and data do not agree with its shape.
package func checkTensor(_ t: graft_st_tensor, _ key: String) throws(PluginFailure) -> [Int64] {
    let shape = shapeOf(t)
    var product: Int64 = 1
    for extent in shape {
        let (p, overflow) = product.multipliedReportingOverflow(by: extent)
        guard extent >= 0, !overflow else {
            throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "\(weightsFileName): tensor \(key) has an invalid shape \(describe(shape))")
        }
        product = p
    }
    guard product == t.count, t.data != nil || product == 0 else {
        throw PluginFailure(GRAFT_PLUGIN_INTERNAL, "the host returned tensor \(key) with \(t.count) elements for shape \(describe(shape))")
    }
    return shape
}

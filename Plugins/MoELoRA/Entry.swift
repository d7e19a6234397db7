// graft_plugin_entry: the one exported symbol of libGraftPluginMoELoRA.so (Plugins/MoELoRA/exports.map).
// Two formats: Graft's per-linear GRAFT_MOE_LORA (Loader.swift) and block-level MIXLORA checkpoints
// (MixLoRALoader.swift). A 1.0 host (no add_router) still gets the plugin: `load` then says routers
// need ABI 1.1 (and block mixtures 1.2).
import CGraftPlugin
import GraftPluginSupport

private let plugin = SwiftPlugin(
    name: "moe-lora", version: "1.1.0",
    description: "Mixtures of LoRA experts: per linear layer (peft_type GRAFT_MOE_LORA: router + experts, softmax / top-k / threshold / sigmoid gates) and per MLP block (peft_type MIXLORA checkpoints)",
    claims: { claimsMoELoRA($0) || claimsMixLoRA($0) },
    load: { host, directory, builder throws(PluginFailure) in
        if claimsMixLoRA(directory) {
            try loadMixLoRA(host: host, directory: directory, builder: builder)
        } else {
            try loadMoELoRA(host: host, directory: directory, builder: builder)
        }
    })

@_cdecl("graft_plugin_entry")
public func graftPluginEntry(_ hostAPI: UnsafePointer<graft_host_api>?) -> UnsafePointer<graft_plugin>? {
    plugin.table(host: hostAPI, claims: { _, path in plugin.claims(path) }, load: { ctx, path, builder in plugin.load(ctx, path, builder) })
}

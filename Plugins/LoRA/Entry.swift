// graft_plugin_entry: the one exported symbol of libGraftPluginLoRA.so (Plugins/LoRA/exports.map).
import CGraftPlugin
import GraftPluginSupport

private let plugin = SwiftPlugin(
    name: "lora", version: "1.0.0",
    description: "PEFT LoRA / rsLoRA directories (adapter_config.json + adapter_model.safetensors) on linear layers",
    claims: claimsLoRA, load: loadLoRA)

@_cdecl("graft_plugin_entry")
public func graftPluginEntry(_ hostAPI: UnsafePointer<graft_host_api>?) -> UnsafePointer<graft_plugin>? {
    plugin.table(host: hostAPI, claims: { _, path in plugin.claims(path) }, load: { ctx, path, builder in plugin.load(ctx, path, builder) })
}

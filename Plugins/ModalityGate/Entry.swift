// graft_plugin_entry: the one exported symbol of libGraftPluginModalityGate.so (exports.map).
import CGraftPlugin
import GraftPluginSupport

private let plugin = SwiftPlugin(
    name: "modality-gate", version: "1.0.0",
    description: "LoRA experts per modality (peft_type GRAFT_MODALITY_GATE): hard modality gates, routing within modality groups, soft modality-specific + shared mixtures",
    claims: claimsModalityGate, load: loadModalityGate)

@_cdecl("graft_plugin_entry")
public func graftPluginEntry(_ hostAPI: UnsafePointer<graft_host_api>?) -> UnsafePointer<graft_plugin>? {
    plugin.table(host: hostAPI, claims: { _, path in plugin.claims(path) }, load: { ctx, path, builder in plugin.load(ctx, path, builder) })
}

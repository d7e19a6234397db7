// graft_plugin_entry: the one exported symbol of libGraftPluginVLoRA.so (Plugins/VLoRA/exports.map).
import CGraftPlugin
import GraftPluginSupport

private let plugin = SwiftPlugin(
    name: "vlora", version: "1.0.0",
    description: "Graft VLoRA directories (GRAFT_VLORA): an ONNX generator turns per-request features into low-rank weights",
    claims: claimsVLoRA, load: loadVLoRA)

@_cdecl("graft_plugin_entry")
public func graftPluginEntry(_ hostAPI: UnsafePointer<graft_host_api>?) -> UnsafePointer<graft_plugin>? {
    plugin.table(host: hostAPI, claims: { _, path in plugin.claims(path) }, load: { ctx, path, builder in plugin.load(ctx, path, builder) })
}

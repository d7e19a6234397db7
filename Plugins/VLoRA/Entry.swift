// graft_plugin_entry: the one exported symbol of libGraftPluginVLoRA.so (Plugins/VLoRA/exports.map).
import CGraftPlugin
import GraftPluginSupport

private let claimsThunk: ClaimsFunction = { _, path in runClaims(path, claimsVLoRA) }

private let loadThunk: LoadFunction = { ctx, path, builder in
    runLoad(ctx, path, builder, plugin: "vlora") { host, directory, builder throws(PluginFailure) in
        try loadVLoRA(host: host, directory: directory, builder: builder)
    }
}

@_cdecl("graft_plugin_entry")
public func graftPluginEntry(_ hostAPI: UnsafePointer<graft_host_api>?) -> UnsafePointer<graft_plugin>? {
    makePluginTable(host: hostAPI, name: "vlora", version: "1.0.0",
                    description: "Graft VLoRA directories (GRAFT_VLORA): an ONNX generator turns per-request features into low-rank weights",
                    claims: claimsThunk, load: loadThunk)
}

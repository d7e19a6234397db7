// graft_plugin_entry: the one exported symbol of libGraftPluginMoELoRA.so (Plugins/MoELoRA/exports.map).
// A 1.0 host (no add_router) still gets the plugin: `load` then says routers need ABI 1.1.
import CGraftPlugin
import GraftPluginSupport

private let claimsThunk: ClaimsFunction = { _, path in runClaims(path, claimsMoELoRA) }

private let loadThunk: LoadFunction = { ctx, path, builder in
    runLoad(ctx, path, builder, plugin: "moe-lora") { host, directory, builder throws(PluginFailure) in
        try loadMoELoRA(host: host, directory: directory, builder: builder)
    }
}

@_cdecl("graft_plugin_entry")
public func graftPluginEntry(_ hostAPI: UnsafePointer<graft_host_api>?) -> UnsafePointer<graft_plugin>? {
    makePluginTable(host: hostAPI, name: "moe-lora", version: "1.0.0",
                    description: "Mixtures of LoRA experts per linear layer (peft_type GRAFT_MOE_LORA: router + experts, softmax / top-k / threshold / sigmoid gates)",
                    claims: claimsThunk, load: loadThunk)
}

// graft_plugin_entry: the one exported symbol of libGraftPluginLoRA.so (Plugins/LoRA/exports.map).
import CGraftPlugin
import GraftPluginSupport

private let claimsThunk: ClaimsFunction = { _, path in runClaims(path, claimsLoRA) }

private let loadThunk: LoadFunction = { ctx, path, builder in
    runLoad(ctx, path, builder, plugin: "lora") { host, directory, builder throws(PluginFailure) in
        try loadLoRA(host: host, directory: directory, builder: builder)
    }
}

@_cdecl("graft_plugin_entry")
public func graftPluginEntry(_ hostAPI: UnsafePointer<graft_host_api>?) -> UnsafePointer<graft_plugin>? {
    makePluginTable(host: hostAPI, name: "lora", version: "1.0.0",
                    description: "PEFT LoRA / rsLoRA directories (adapter_config.json + adapter_model.safetensors) on linear layers",
                    claims: claimsThunk, load: loadThunk)
}

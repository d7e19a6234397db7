// graft_plugin_entry: the one exported symbol of libGraftPluginModalityGate.so (exports.map).
import CGraftPlugin
import GraftPluginSupport

private let claimsThunk: ClaimsFunction = { _, path in runClaims(path, claimsModalityGate) }

private let loadThunk: LoadFunction = { ctx, path, builder in
    runLoad(ctx, path, builder, plugin: "modality-gate") { host, directory, builder throws(PluginFailure) in
        try loadModalityGate(host: host, directory: directory, builder: builder)
    }
}

@_cdecl("graft_plugin_entry")
public func graftPluginEntry(_ hostAPI: UnsafePointer<graft_host_api>?) -> UnsafePointer<graft_plugin>? {
    makePluginTable(host: hostAPI, name: "modality-gate", version: "1.0.0",
                    description: "LoRA experts per modality (peft_type GRAFT_MODALITY_GATE): hard modality gates, routing within modality groups, soft modality-specific + shared mixtures",
                    claims: claimsThunk, load: loadThunk)
}

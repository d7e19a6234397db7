// Plugin ABI 1.2's per-expert modality groups (graft_router.expert_modalities).
import CGraftPlugin

extension Host {
    /// Routers restricted by modality need a host of plugin ABI 1.2 or newer: an older host
    /// would not read graft_router.expert_modalities and route every token over every expert.
    package func requireExpertGroups(_ plugin: String) throws(PluginFailure) {
        try requireRouters()
        let version = api.pointee.abi_version
        guard version >> 16 == 1, version & 0xFFFF >= 2 else {
            throw PluginFailure(GRAFT_PLUGIN_UNSUPPORTED,
                                "\(plugin): routing within modality groups needs a host with plugin ABI 1.2 or newer (graft_router.expert_modalities); this host speaks \(version >> 16).\(version & 0xFFFF)")
        }
    }
}

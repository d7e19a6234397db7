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

    /// Modality masks on terms (graft_lowrank_term.modalities) need a host of plugin ABI 1.1:
    /// an older one reads the 1.0 term and would apply the term to every token.
    package func requireTermModalities(_ plugin: String) throws(PluginFailure) {
        let version = api.pointee.abi_version
        guard version >> 16 == 1, version & 0xFFFF >= 1 else {
            throw PluginFailure(GRAFT_PLUGIN_UNSUPPORTED,
                                "\(plugin): modality gates need a host with plugin ABI 1.1 or newer (graft_lowrank_term.modalities); this host speaks \(version >> 16).\(version & 0xFFFF)")
        }
    }
}

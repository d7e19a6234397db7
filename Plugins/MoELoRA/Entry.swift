// graft_plugin_entry: the one exported symbol of libGraftPluginMoELoRA.so (Plugins/MoELoRA/exports.map).
import CGraftPlugin
import GraftPluginSupport

private let pluginName: StaticString = "moe-lora"
private let pluginVersion: StaticString = "1.0.0"
private let pluginDescription: StaticString =
    "Mixtures of LoRA experts per linear layer (peft_type GRAFT_MOE_LORA: router + experts, softmax / top-k / threshold / sigmoid gates)"

private func cString(_ s: StaticString) -> UnsafePointer<CChar> {
    // String literals are NUL-terminated static storage.
    UnsafeRawPointer(s.utf8Start).assumingMemoryBound(to: CChar.self)
}

/// The host table travels in `ctx`, so the plugin keeps no mutable global state.
private let claimsThunk: @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<CChar>?) -> Int32 = { _, path in
    guard let path else { return 0 }
    return claimsMoELoRA(String(cString: path)) ? 1 : 0
}

private let loadThunk: @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<CChar>?, OpaquePointer?) -> Int32 = {
    ctx, path, builder in
    guard let ctx else { return GRAFT_PLUGIN_INTERNAL }
    let host = Host(api: UnsafePointer(ctx.assumingMemoryBound(to: graft_host_api.self)))
    guard let path, let builder else {
        host.setError("moe-lora: load needs a path and a builder")
        return GRAFT_PLUGIN_INVALID_ARGUMENT
    }
    do throws(PluginFailure) {
        try loadMoELoRA(host: host, directory: String(cString: path), builder: builder)
        return GRAFT_PLUGIN_OK
    } catch {
        // An empty message means the host already set one (find_site, safetensors_open, add_router...).
        if !error.message.isEmpty { host.setError(error.message) }
        return error.status
    }
}

@_cdecl("graft_plugin_entry")
public func graftPluginEntry(_ hostAPI: UnsafePointer<graft_host_api>?) -> UnsafePointer<graft_plugin>? {
    guard let hostAPI else { return nil }
    let host = Host(api: hostAPI)
    let hostMajor = hostAPI.pointee.abi_version >> 16
    guard hostMajor == UInt32(GRAFT_PLUGIN_ABI_MAJOR) else {
        host.log(GRAFT_LOG_ERROR, "moe-lora: plugin built for ABI \(GRAFT_PLUGIN_ABI_MAJOR).\(GRAFT_PLUGIN_ABI_MINOR), host has \(hostMajor).\(hostAPI.pointee.abi_version & 0xFFFF)")
        return nil
    }
    // A 1.0 host (no add_router) still gets the plugin: `load` then says routers need ABI 1.1.
    guard Int(hostAPI.pointee.struct_size) >= Host.v10Size else {
        host.log(GRAFT_LOG_ERROR, "moe-lora: the host's graft_host_api is \(hostAPI.pointee.struct_size) bytes, smaller than ABI 1.0's \(Host.v10Size)")
        return nil
    }
    // One table per host table (a process has one host; never freed, as the plugin is never unloaded).
    let table = UnsafeMutablePointer<graft_plugin>.allocate(capacity: 1)
    table.initialize(to: graft_plugin(
        abi_version: GRAFT_PLUGIN_ABI_VERSION_VALUE,
        struct_size: UInt32(MemoryLayout<graft_plugin>.size),
        name: cString(pluginName), version: cString(pluginVersion), description: cString(pluginDescription),
        claims: claimsThunk, load: loadThunk,
        ctx: UnsafeMutableRawPointer(mutating: hostAPI)))
    return UnsafePointer(table)
}

/// GRAFT_PLUGIN_ABI_VERSION is a cast macro Swift does not import.
private let GRAFT_PLUGIN_ABI_VERSION_VALUE = UInt32(GRAFT_PLUGIN_ABI_MAJOR) << 16 | UInt32(GRAFT_PLUGIN_ABI_MINOR)

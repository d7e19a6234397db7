// What every Swift plugin's graft_plugin_entry and its claims/load thunks do, written once.
import CGraftPlugin

/// GRAFT_PLUGIN_ABI_VERSION is a cast macro Swift does not import.
package let pluginABIVersion = UInt32(GRAFT_PLUGIN_ABI_MAJOR) << 16 | UInt32(GRAFT_PLUGIN_ABI_MINOR)

package typealias ClaimsFunction = @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<CChar>?) -> Int32
package typealias LoadFunction = @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<CChar>?, OpaquePointer?) -> Int32

/// The body of graft_plugin_entry: refuses a host of another ABI major or with a table smaller
/// than ABI 1.0's (newer slots are checked where they are used), and returns a new table with
/// the host in `ctx`, so the plugin keeps no mutable global state. Never freed: plugins are
/// never unloaded.
package func makePluginTable(host hostAPI: UnsafePointer<graft_host_api>?, name: StaticString, version: StaticString,
                             description: StaticString, claims: ClaimsFunction, load: LoadFunction) -> UnsafePointer<graft_plugin>? {
    guard let hostAPI else { return nil }
    let host = Host(api: hostAPI)
    let hostVersion = hostAPI.pointee.abi_version
    guard hostVersion >> 16 == UInt32(GRAFT_PLUGIN_ABI_MAJOR) else {
        host.log(GRAFT_LOG_ERROR, "\(name): plugin built for ABI \(GRAFT_PLUGIN_ABI_MAJOR).\(GRAFT_PLUGIN_ABI_MINOR), host has \(hostVersion >> 16).\(hostVersion & 0xFFFF)")
        return nil
    }
    guard Int(hostAPI.pointee.struct_size) >= Host.v10Size else {
        host.log(GRAFT_LOG_ERROR, "\(name): the host's graft_host_api is \(hostAPI.pointee.struct_size) bytes, smaller than ABI 1.0's \(Host.v10Size)")
        return nil
    }
    let table = UnsafeMutablePointer<graft_plugin>.allocate(capacity: 1)
    table.initialize(to: graft_plugin(
        abi_version: pluginABIVersion,
        struct_size: UInt32(MemoryLayout<graft_plugin>.size),
        name: cString(name), version: cString(version), description: cString(description),
        claims: claims, load: load,
        ctx: UnsafeMutableRawPointer(mutating: hostAPI)))
    return UnsafePointer(table)
}

/// The body of a claims thunk.
package func runClaims(_ path: UnsafePointer<CChar>?, _ claims: (String) -> Bool) -> Int32 {
    guard let path else { return 0 }
    return claims(String(cString: path)) ? 1 : 0
}

/// The body of a load thunk: unpacks the host from `ctx`, and turns a PluginFailure into its
/// status and message (an empty message means the host already set one: find_site,
/// safetensors_open, add_router...).
package func runLoad(_ ctx: UnsafeMutableRawPointer?, _ path: UnsafePointer<CChar>?, _ builder: OpaquePointer?, plugin: String,
                     _ load: (Host, String, OpaquePointer) throws(PluginFailure) -> Void) -> Int32 {
    guard let ctx else { return GRAFT_PLUGIN_INTERNAL }
    let host = Host(api: UnsafePointer(ctx.assumingMemoryBound(to: graft_host_api.self)))
    guard let path, let builder else {
        host.setError("\(plugin): load needs a path and a builder")
        return GRAFT_PLUGIN_INVALID_ARGUMENT
    }
    do throws(PluginFailure) {
        try load(host, String(cString: path), builder)
        return GRAFT_PLUGIN_OK
    } catch {
        if !error.message.isEmpty { host.setError(error.message) }
        return error.status
    }
}

/// String literals are NUL-terminated static storage.
private func cString(_ s: StaticString) -> UnsafePointer<CChar> {
    UnsafeRawPointer(s.utf8Start).assumingMemoryBound(to: CChar.self)
}

/// What makes one Swift plugin: its graft_plugin strings and its claims and load functions.
/// Each plugin's Entry.swift holds one as a global constant, and its graft_plugin_entry and
/// thunks (C function pointers cannot capture, so they name that constant) only forward to it.
package struct SwiftPlugin: Sendable {
    package let name: StaticString
    package let version: StaticString
    package let description: StaticString
    let claimsPath: @Sendable (String) -> Bool
    let loadDirectory: @Sendable (Host, String, OpaquePointer) throws(PluginFailure) -> Void

    package init(name: StaticString, version: StaticString, description: StaticString,
                 claims: @escaping @Sendable (String) -> Bool,
                 load: @escaping @Sendable (Host, String, OpaquePointer) throws(PluginFailure) -> Void) {
        self.name = name
        self.version = version
        self.description = description
        self.claimsPath = claims
        self.loadDirectory = load
    }

    /// The body of graft_plugin_entry (makePluginTable), given the plugin's two thunks.
    package func table(host: UnsafePointer<graft_host_api>?, claims: ClaimsFunction, load: LoadFunction) -> UnsafePointer<graft_plugin>? {
        makePluginTable(host: host, name: name, version: version, description: description, claims: claims, load: load)
    }

    /// The body of the claims thunk.
    package func claims(_ path: UnsafePointer<CChar>?) -> Int32 { runClaims(path, claimsPath) }

    /// The body of the load thunk.
    package func load(_ ctx: UnsafeMutableRawPointer?, _ path: UnsafePointer<CChar>?, _ builder: OpaquePointer?) -> Int32 {
        runLoad(ctx, path, builder, plugin: "\(name)", loadDirectory)
    }
}

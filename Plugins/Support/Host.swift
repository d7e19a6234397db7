// The host's function table (graft_host_api) seen from Swift, and file helpers that use libc only.
// The Swift plugins' view of graft_host_api: typed wrappers that turn statuses into thrown
// PluginFailures, plus small file helpers. Linked statically into each Swift plugin.
import CGraftPlugin
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A failure to report through host->set_error with a graft_plugin.h status.
package struct PluginFailure: Error {
    package let status: Int32
    package let message: String

    package init(_ status: Int32, _ message: String) {
        self.status = status
        self.message = message
    }
}

/// The host's table. The entry point checked the ABI major and that `struct_size` covers every
/// 1.0 field, so the 1.0 slots may be read; a NULL slot is still reported, not trusted. The 1.1
/// slot (add_router) is read only after `requireRouters` checked that the table has it.
package struct Host {
    package let api: UnsafePointer<graft_host_api>

    package init(api: UnsafePointer<graft_host_api>) {
        self.api = api
    }

    package func log(_ level: Int32, _ message: String) {
        guard let log = api.pointee.log else { return }
        message.withCString { log(level, $0) }
    }

    package func setError(_ message: String) {
        guard let setError = api.pointee.set_error else { return }
        message.withCString { setError($0) }
    }

    private func missing(_ name: String) -> PluginFailure {
        PluginFailure(GRAFT_PLUGIN_INTERNAL, "the host's graft_host_api has no \(name) function")
    }

    /// Opens a safetensors file through the host (which validates its header).
    package func openSafetensors(_ path: String) throws(PluginFailure) -> OpaquePointer {
        guard let open = api.pointee.safetensors_open else { throw missing("safetensors_open") }
        var file: OpaquePointer?
        let status = path.withCString { open($0, &file) }
        guard status == GRAFT_PLUGIN_OK, let file else {
            // The host set the message (bad header, offsets, dtype...).
            throw PluginFailure(status == GRAFT_PLUGIN_OK ? GRAFT_PLUGIN_INTERNAL : status, "")
        }
        return file
    }

    package func closeSafetensors(_ file: OpaquePointer) {
        api.pointee.safetensors_close?(file)
    }

    package func tensorCount(_ file: OpaquePointer) throws(PluginFailure) -> Int {
        guard let count = api.pointee.safetensors_count else { throw missing("safetensors_count") }
        return count(file)
    }

    /// The index-th tensor; its pointers stay valid until closeSafetensors.
    package func tensor(_ file: OpaquePointer, at index: Int) throws(PluginFailure) -> graft_st_tensor {
        guard let get = api.pointee.safetensors_get else { throw missing("safetensors_get") }
        var tensor = graft_st_tensor()
        tensor.struct_size = UInt32(MemoryLayout<graft_st_tensor>.size)
        let status = get(file, index, &tensor)
        guard status == GRAFT_PLUGIN_OK else { throw PluginFailure(status, "") }
        return tensor
    }

    /// Calls `body(key, tensor)` for every tensor of an open file, in file order (a tensor
    /// without a name is keyed "(unnamed tensor i)").
    package func forEachTensor(_ file: OpaquePointer,
                               _ body: (String, graft_st_tensor) throws(PluginFailure) -> Void) throws(PluginFailure) {
        for index in 0..<(try tensorCount(file)) {
            let t = try tensor(file, at: index)
            try body(t.name.map { String(cString: $0) } ?? "(unnamed tensor \(index))", t)
        }
    }

    package func siteInfo(_ builder: OpaquePointer, _ index: Int) throws(PluginFailure) -> graft_site_info {
        guard let siteInfo = api.pointee.site_info else { throw missing("site_info") }
        var info = graft_site_info()
        info.struct_size = UInt32(MemoryLayout<graft_site_info>.size)
        let status = siteInfo(builder, index, &info)
        guard status == GRAFT_PLUGIN_OK else { throw PluginFailure(status, "") }
        return info
    }

    /// The site whose module name is `module` or ends with ".module". On failure the host has
    /// set a message listing the closest sites; it is kept (an empty message here).
    package func findSite(_ builder: OpaquePointer, _ module: String) throws(PluginFailure) -> Int {
        guard let findSite = api.pointee.find_site else { throw missing("find_site") }
        var index = 0
        let status = module.withCString { findSite(builder, $0, &index) }
        guard status == GRAFT_PLUGIN_OK else { throw PluginFailure(status, "") }
        return index
    }

    package func addLowRank(_ builder: OpaquePointer, _ term: inout graft_lowrank_term) throws(PluginFailure) {
        guard let add = api.pointee.add_lowrank else { throw missing("add_lowrank") }
        let status = add(builder, &term)
        guard status == GRAFT_PLUGIN_OK else { throw PluginFailure(status, "") }
    }

    /// add_lowrank for the terms the Swift plugins make: no activation between A and B, no gate
    /// function. `router` 0 means not routed; `modalities` 0 means every token.
    ///     a [rank, in_features], b [out_features, rank], row-major; the host copies both.
    package func addLowRank(_ builder: OpaquePointer, site: UInt32, rank: UInt32, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                            scale: Float, router: UInt32 = 0, expert: UInt32 = 0, modalities: UInt32 = 0) throws(PluginFailure) {
        var term = graft_lowrank_term(
            struct_size: UInt32(MemoryLayout<graft_lowrank_term>.size), site: site, rank: rank,
            a: a, b: b, scale: scale, activation: GRAFT_ACTIVATION_IDENTITY,
            gate: nil, gate_ctx: nil, router: router, expert: expert, modalities: modalities)
        try addLowRank(builder, &term)
    }

    /// Byte size of graft_host_api in plugin ABI 1.0 (everything before add_router).
    package static let v10Size = MemoryLayout<graft_host_api>.offset(of: \graft_host_api.add_router)!
    /// Byte size of graft_host_api up to and including add_router (ABI 1.1).
    package static let routerSize = v10Size + MemoryLayout<UnsafeRawPointer>.size

    /// Routers need plugin ABI 1.1: `struct_size` must cover add_router, and it must be set.
    package func requireRouters() throws(PluginFailure) {
        let size = Int(api.pointee.struct_size)
        let version = api.pointee.abi_version
        guard size >= Self.routerSize, version & 0xFFFF >= 1, api.pointee.add_router != nil else {
            throw PluginFailure(GRAFT_PLUGIN_UNSUPPORTED, """
                moe-lora: routed experts need a host with plugin ABI 1.1 or newer (graft_host_api.add_router); \
                this host speaks \(version >> 16).\(version & 0xFFFF) and its function table is \(size) bytes \
                (add_router needs \(Self.routerSize))\(size >= Self.routerSize && api.pointee.add_router == nil ? ", with add_router NULL" : "")
                """)
        }
    }

    /// Adds a router at a site; returns its id (>= 1) for graft_lowrank_term.router.
    package func addRouter(_ builder: OpaquePointer, _ router: inout graft_router) throws(PluginFailure) -> UInt32 {
        try requireRouters()
        guard let add = api.pointee.add_router else { throw missing("add_router") }
        var id: UInt32 = 0
        let status = add(builder, &router, &id)
        guard status == GRAFT_PLUGIN_OK else { throw PluginFailure(status, "") }
        guard id >= 1 else { throw PluginFailure(GRAFT_PLUGIN_INTERNAL, "the host's add_router returned router id 0") }
        return id
    }

    /// Byte size of graft_host_api up to and including add_block_delta (ABI 1.2).
    package static let blockSize = MemoryLayout<graft_host_api>.offset(of: \graft_host_api.add_block_delta)! + MemoryLayout<UnsafeRawPointer>.size

    /// Block mixtures need plugin ABI 1.2: `struct_size` must cover add_block_mixture and
    /// add_block_delta, and both must be set.
    package func requireBlocks(_ plugin: String) throws(PluginFailure) {
        let size = Int(api.pointee.struct_size)
        let version = api.pointee.abi_version
        guard size >= Self.blockSize, version & 0xFFFF >= 2, api.pointee.add_block_mixture != nil, api.pointee.add_block_delta != nil else {
            throw PluginFailure(GRAFT_PLUGIN_UNSUPPORTED, """
                \(plugin): block-level mixtures need a host with plugin ABI 1.2 or newer (graft_host_api.add_block_mixture); \
                this host speaks \(version >> 16).\(version & 0xFFFF) and its function table is \(size) bytes (1.2 needs \(Self.blockSize))
                """)
        }
    }

    /// Adds a block mixture; returns its id (>= 1) for graft_block_delta.block.
    package func addBlockMixture(_ builder: OpaquePointer, _ mixture: inout graft_block_mixture, plugin: String) throws(PluginFailure) -> UInt32 {
        try requireBlocks(plugin)
        var id: UInt32 = 0
        let status = api.pointee.add_block_mixture!(builder, &mixture, &id)
        guard status == GRAFT_PLUGIN_OK else { throw PluginFailure(status, "") }
        guard id >= 1 else { throw PluginFailure(GRAFT_PLUGIN_INTERNAL, "the host's add_block_mixture returned block id 0") }
        return id
    }

    package func addBlockDelta(_ builder: OpaquePointer, _ delta: inout graft_block_delta, plugin: String) throws(PluginFailure) {
        try requireBlocks(plugin)
        let status = api.pointee.add_block_delta!(builder, &delta)
        guard status == GRAFT_PLUGIN_OK else { throw PluginFailure(status, "") }
    }

    /// Byte size of graft_host_api up to and including add_generator (ABI 1.2).
    package static let generatorSize = MemoryLayout<graft_host_api>.offset(of: \graft_host_api.add_generator)! + MemoryLayout<UnsafeRawPointer>.size

    /// Declares the adapter's generator (plugin ABI 1.2: `struct_size` must cover add_generator).
    package func addGenerator(_ builder: OpaquePointer, _ generator: inout graft_generator) throws(PluginFailure) {
        let size = Int(api.pointee.struct_size)
        let version = api.pointee.abi_version
        guard size >= Self.generatorSize, version & 0xFFFF >= 2, let add = api.pointee.add_generator else {
            throw PluginFailure(GRAFT_PLUGIN_UNSUPPORTED, """
                generated weights need a host with plugin ABI 1.2 or newer (graft_host_api.add_generator); \
                this host speaks \(version >> 16).\(version & 0xFFFF) and its function table is \(size) bytes \
                (add_generator needs \(Self.generatorSize))
                """)
        }
        let status = add(builder, &generator)
        guard status == GRAFT_PLUGIN_OK else { throw PluginFailure(status, "") }
    }

    package func setName(_ builder: OpaquePointer, _ name: String) {
        guard let setName = api.pointee.set_name else { return }
        _ = name.withCString { setName(builder, $0) }
    }
}

package enum FileKind { case missing, directory, regular, other }

package func fileKind(_ path: String) -> FileKind {
    var info = stat()
    guard stat(path, &info) == 0 else { return .missing }
    switch info.st_mode & S_IFMT {
    case S_IFDIR: return .directory
    case S_IFREG: return .regular
    default: return .other
    }
}

/// Reads a whole regular file of at most `limit` bytes; nil when it is missing, larger or unreadable.
package func readSmallFile(_ path: String, limit: Int) -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG, info.st_size >= 0,
          info.st_size <= limit
    else { return nil }
    var bytes = [UInt8](repeating: 0, count: Int(info.st_size))
    var filled = 0
    while filled < bytes.count {
        let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + filled, $0.count - filled) }
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { return nil }
        filled += n
    }
    return bytes
}

package func joinPath(_ directory: String, _ name: String) -> String {
    directory.hasSuffix("/") ? directory + name : directory + "/" + name
}

/// The last path component of a directory ("…/my-adapter/" → "my-adapter").
package func lastComponent(_ path: String) -> String {
    var trimmed = Substring(path)
    while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
    if let slash = trimmed.lastIndex(of: "/") { return String(trimmed[trimmed.index(after: slash)...]) }
    return String(trimmed)
}

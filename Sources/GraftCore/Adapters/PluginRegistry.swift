import CGraftPlugin
#if canImport(Glibc)
import Glibc
#endif

/// A plugin the process has loaded (never unloaded: `RTLD_NODELETE`).
package struct LoadedPlugin: @unchecked Sendable {
    package let path: String
    package let name: String
    package let version: String
    package let description: String
    let table: UnsafePointer<graft_plugin>
}

/// Finds, loads and validates adapter plugins, and asks them to load adapters.
///
/// Plugins are found, once per process, beside the binary that contains Graft (so beside
/// `libgraft.so` for C users), then in each entry of `GRAFT_PLUGIN_PATH` (files, or folders
/// whose `libGraftPlugin*.so` files are loaded); `load(path:)` loads one explicitly.
package enum PluginRegistry {
    private static let state = Locked<(plugins: [LoadedPlugin], problems: [String])>(([], []))

    /// Smallest plugin table the host can use: everything up to and including `ctx`.
    static let minimalTableSize = MemoryLayout<graft_plugin>.size

    /// Loads the plugin at `path` (idempotent per resolved path).
    @discardableResult
    package static func load(path: String) throws -> LoadedPlugin {
        let resolved = realPath(path) ?? path
        if let p = state.withLock({ $0.plugins.first { $0.path == resolved } }) { return p }
        guard let handle = dlopen(resolved, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE) else {
            let why = dlerror().map { String(cString: $0) } ?? "unknown error"
            throw GraftError(.io, "cannot load plugin '\(path)': \(why)")
        }
        guard let sym = dlsym(handle, GRAFT_PLUGIN_ENTRY_SYMBOL) else {
            throw GraftError(.invalidArgument, "'\(path)' is not a Graft plugin: it exports no \(GRAFT_PLUGIN_ENTRY_SYMBOL) symbol")
        }
        let entry = unsafeBitCast(sym, to: graft_plugin_entry_fn.self)
        guard let table = entry(PluginHost.api) else {
            throw GraftError(.invalidArgument, "plugin '\(path)' refused to load (its entry returned NULL)")
        }
        let abi = table.pointee.abi_version
        let hostMajor = PluginHost.abiVersion >> 16, hostMinor = PluginHost.abiVersion & 0xFFFF
        guard abi >> 16 == hostMajor else {
            throw GraftError(.unsupported, "plugin '\(path)' was built for plugin ABI \(abi >> 16).\(abi & 0xFFFF); this Graft speaks \(hostMajor).\(hostMinor) (the major versions must match)")
        }
        guard Int(table.pointee.struct_size) >= minimalTableSize else {
            throw GraftError(.invalidArgument, "plugin '\(path)' has a malformed table: struct_size \(table.pointee.struct_size) is smaller than the \(minimalTableSize) bytes of plugin ABI \(hostMajor).0")
        }
        guard table.pointee.claims != nil, table.pointee.load != nil, let name = table.pointee.name else {
            throw GraftError(.invalidArgument, "plugin '\(path)' has a malformed table: name, claims or load is NULL")
        }
        let plugin = LoadedPlugin(path: resolved, name: String(cString: name),
                                  version: table.pointee.version.map { String(cString: $0) } ?? "",
                                  description: table.pointee.description.map { String(cString: $0) } ?? "",
                                  table: table)
        return state.withLock { s in
            if let p = s.plugins.first(where: { $0.path == resolved }) { return p }
            s.plugins.append(plugin)
            return plugin
        }
    }

    /// Every plugin loaded so far, after discovery.
    package static var plugins: [LoadedPlugin] {
        discover()
        return state.withLock { $0.plugins }
    }

    /// Held for the whole of discovery, so that no caller sees a partial plugin list.
    private static let discovery = Locked(false)

    /// Loads the plugins found beside Graft's binary and in GRAFT_PLUGIN_PATH, once.
    /// A candidate that fails to load is recorded (see `problems`) and skipped.
    package static func discover() {
        discovery.withLock { done in
            guard !done else { return }
            var candidates: [String] = []
            if let dir = binaryDirectory() { candidates += pluginFiles(in: dir) }
            if let env = getenv("GRAFT_PLUGIN_PATH") {
                for entry in String(cString: env).split(separator: ":").map(String.init) where !entry.isEmpty {
                    candidates += isDirectory(entry) ? pluginFiles(in: entry) : [entry]
                }
            }
            for c in candidates {
                do { try load(path: c) } catch let e as GraftError {
                    state.withLock { $0.problems.append(e.message) }
                } catch {}
            }
            done = true
        }
    }

    package static var problems: [String] { state.withLock { $0.problems } }

    /// Asks the loaded plugins, in load order, which one claims `path`, and builds the adapter
    /// with it.
    package static func loadAdapter(model: CoreModel, path: String) throws -> CoreAdapter {
        guard access(path, F_OK) == 0 else { throw GraftError(.io, "adapter '\(path)' does not exist") }
        let all = plugins
        guard let plugin = all.first(where: { $0.table.pointee.claims!($0.table.pointee.ctx, path) != 0 }) else {
            let known = all.map { "\($0.name) (\($0.description))" }.joined(separator: "; ")
            let extra = problems.isEmpty ? "" : "; plugins that failed to load: \(problems.joined(separator: "; "))"
            throw GraftError(.unsupported, "no plugin claims '\(path)'; loaded plugins: \(known.isEmpty ? "none (set GRAFT_PLUGIN_PATH or load one by path)" : known)\(extra)")
        }
        let defaultName = path.split(separator: "/").last.map(String.init) ?? path
        let builder = AdapterBuilder(model: model, name: defaultName)
        builder.path = path
        cgraft_plugin_clear_error()
        let status = withExtendedLifetime(builder) {
            plugin.table.pointee.load!(plugin.table.pointee.ctx, path, builder.opaque)
        }
        if status != 0 {
            let message = String(cString: cgraft_plugin_error())
            let code = GraftError.Code(rawValue: status) ?? .internalError
            throw GraftError(code, "plugin \(plugin.name) could not load '\(path)': \(message.isEmpty ? "status \(status) without a message" : message)")
        }
        guard !builder.lowRank.isEmpty || !builder.inputScales.isEmpty || !builder.outputScales.isEmpty || !builder.blocks.isEmpty
                || builder.generator != nil else {
            throw GraftError(.invalidData, "plugin \(plugin.name) loaded '\(path)' but it adds nothing to any site")
        }
        return CoreAdapter(name: builder.name, source: path, plugin: plugin.name, model: ObjectIdentifier(model),
                           lowRank: builder.lowRank, routers: builder.routers, inputScales: builder.inputScales, outputScales: builder.outputScales,
                           blocks: builder.blocks, generator: builder.generator)
    }

    /// Files that look like plugins in a folder: `libGraftPlugin*.so`.
    static func pluginFiles(in dir: String) -> [String] {
        guard let d = opendir(dir) else { return [] }
        defer { closedir(d) }
        var out: [String] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name.hasPrefix("libGraftPlugin") && name.hasSuffix(".so") { out.append(dir + "/" + name) }
        }
        return out.sorted()
    }

    /// The folder of the binary (executable or shared library) that contains this code.
    static func binaryDirectory() -> String? {
        guard let fname = cgraft_binary_path() else { return nil }
        let path = realPath(String(cString: fname)) ?? String(cString: fname)
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return String(path[..<slash])
    }

    static func isDirectory(_ p: String) -> Bool {
        var st = stat()
        return stat(p, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    static func realPath(_ p: String) -> String? {
        guard let c = realpath(p, nil) else { return nil }
        defer { free(c) }
        return String(cString: c)
    }
}

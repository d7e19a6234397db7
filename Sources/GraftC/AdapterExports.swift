import CGraft
import GraftCore
#if canImport(Glibc)
import Glibc
#endif

// The adapter part of include/graft.h: plugins, adapters, binding, per-row adapters, sites.

/// C strings for plugin names, made once per plugin and kept for the life of the process
/// (plugins are never unloaded).
private let pluginStrings = PluginStrings()

private final class PluginStrings: @unchecked Sendable {
    private let table = Locked<[String: (UnsafeMutablePointer<CChar>, UnsafeMutablePointer<CChar>, UnsafeMutablePointer<CChar>)]>([:])

    func strings(_ p: LoadedPlugin) -> (UnsafeMutablePointer<CChar>, UnsafeMutablePointer<CChar>, UnsafeMutablePointer<CChar>) {
        table.withLock { table in
            if let s = table[p.path] { return s }
            let s = (strdup(p.name)!, strdup(p.version)!, strdup(p.description)!)
            table[p.path] = s
            return s
        }
    }
}

@c @implementation
public func graft_plugin_load(_ path: UnsafePointer<CChar>!) -> graft_status {
    guarded {
        try PluginRegistry.load(path: String(cString: try require(path, "path")))
    }
}

@c @implementation
public func graft_plugin_count(_ count: UnsafeMutablePointer<Int>!) -> graft_status {
    guarded {
        try require(count, "count").pointee = PluginRegistry.plugins.count
    }
}

@c @implementation
public func graft_plugin_info(_ index: Int, _ name: UnsafeMutablePointer<UnsafePointer<CChar>?>!,
                              _ version: UnsafeMutablePointer<UnsafePointer<CChar>?>!,
                              _ description: UnsafeMutablePointer<UnsafePointer<CChar>?>!) -> graft_status {
    guarded {
        let all = PluginRegistry.plugins
        guard index >= 0, index < all.count else { throw invalid("plugin index \(index) is out of range (\(all.count) plugins loaded)") }
        let s = pluginStrings.strings(all[index])
        name?.pointee = UnsafePointer(s.0)
        version?.pointee = UnsafePointer(s.1)
        description?.pointee = UnsafePointer(s.2)
    }
}

@c @implementation
public func graft_adapter_load(_ model: OpaquePointer!, _ path: UnsafePointer<CChar>!,
                               _ out: UnsafeMutablePointer<OpaquePointer?>!) -> graft_status {
    guarded {
        let out = try require(out, "out")
        out.pointee = nil
        let box = object(try require(model, "model"), as: ModelBox.self)
        let adapter = try PluginRegistry.loadAdapter(model: box.core, path: String(cString: try require(path, "path")))
        out.pointee = retainedHandle(AdapterBox(core: adapter))
    }
}

@c @implementation
public func graft_adapter_free(_ adapter: OpaquePointer!) {
    release(adapter)
}

@c @implementation
public func graft_adapter_name(_ adapter: OpaquePointer!) -> UnsafePointer<CChar>! {
    guard let adapter else { return emptyCString }
    return UnsafePointer(object(adapter, as: AdapterBox.self).name)
}

/// "" with static storage, for NULL handles.
private var emptyCString: UnsafePointer<CChar> { StaticString("").utf8Start.withMemoryRebound(to: CChar.self, capacity: 1) { $0 } }

/// Reads `count` adapter handles (NULL entries allowed only when `allowNull`).
private func adapters(_ list: UnsafePointer<OpaquePointer?>?, _ count: Int, allowNull: Bool) throws -> [CoreAdapter?] {
    guard count > 0 else { return [] }
    let list = try require(list, "adapters")
    return try (0..<count).map { i in
        guard let h = list[i] else {
            if allowNull { return nil }
            throw invalid("adapters[\(i)] is NULL")
        }
        return object(h, as: AdapterBox.self).core
    }
}

@c @implementation
public func graft_session_set_adapters(_ session: OpaquePointer!, _ list: UnsafePointer<OpaquePointer?>!,
                                       _ scales: UnsafePointer<Float>!, _ count: Int, _ merged: Int32) -> graft_status {
    guarded {
        let box = object(try require(session, "session"), as: SessionBox.self)
        let items = try adapters(list, count, allowNull: false).map { $0! }
        let bindings = items.enumerated().map { ($1, scales?[$0] ?? 1) }
        try box.exclusive { try box.core.setAdapters(bindings, merged: merged != 0) }
    }
}

@c @implementation
public func graft_run_options_set_row_adapters(_ options: OpaquePointer!, _ list: UnsafePointer<OpaquePointer?>!,
                                               _ count: Int) -> graft_status {
    guarded {
        let box = object(try require(options, "options"), as: RunOptionsBox.self)
        box.rowAdapters = count == 0 ? nil : try adapters(list, count, allowNull: true)
    }
}

@c @implementation
public func graft_run_options_set_modalities(_ options: OpaquePointer!, _ ids: UnsafePointer<UInt8>!, _ count: Int) -> graft_status {
    guarded {
        let box = object(try require(options, "options"), as: RunOptionsBox.self)
        box.modalities = count == 0 ? nil : Array(UnsafeBufferPointer(start: try require(ids, "ids"), count: count))
    }
}

@c @implementation
public func graft_model_site_count(_ model: OpaquePointer!, _ count: UnsafeMutablePointer<Int>!) -> graft_status {
    guarded {
        let box = object(try require(model, "model"), as: ModelBox.self)
        try require(count, "count").pointee = box.core.sites.count
    }
}

@c @implementation
public func graft_model_site_info(_ model: OpaquePointer!, _ index: Int, _ name: UnsafeMutablePointer<UnsafePointer<CChar>?>!,
                                  _ inFeatures: UnsafeMutablePointer<Int64>!, _ outFeatures: UnsafeMutablePointer<Int64>!) -> graft_status {
    guarded {
        let core = object(try require(model, "model"), as: ModelBox.self).core
        guard index >= 0, index < core.sites.count else { throw invalid("site index \(index) is out of range (the model has \(core.sites.count) sites)") }
        name?.pointee = core.siteNames.name(index)
        inFeatures?.pointee = Int64(core.sites[index].inFeatures)
        outFeatures?.pointee = Int64(core.sites[index].outFeatures)
    }
}

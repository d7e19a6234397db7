import GraftCore

/// An adapter (a PEFT LoRA directory, an (IA)³ directory, ...) loaded for one ``Model`` by the
/// plugin that claims its path. Immutable: share it between sessions and threads.
public final class Adapter: Sendable {
    let core: CoreAdapter

    init(core: CoreAdapter) { self.core = core }

    /// The adapter's name (by default the last component of its path).
    public var name: String { core.name }
    /// The plugin that loaded it.
    public var plugin: String { core.plugin }
}

/// A linear layer of a model that adapters can attach to.
public struct AdapterSite: Sendable, Equatable {
    /// Source module name, e.g. `encoder.layer.0.attention.self.query`.
    public let name: String
    public let inFeatures: Int
    public let outFeatures: Int
}

/// Adapter plugins of this process.
public enum Plugins {
    /// Loads the plugin shared object at `path` (idempotent). Plugins beside the library and in
    /// `GRAFT_PLUGIN_PATH` are loaded automatically.
    public static func load(path: String) throws {
        try PluginRegistry.load(path: path)
    }

    /// Names of the loaded plugins.
    public static var names: [String] { PluginRegistry.plugins.map(\.name) }
}

extension Model {
    /// Loads the adapter at `path` for this model with the plugin that claims it. Throws when
    /// no plugin claims it, when it names a layer the model does not have (the message lists
    /// the closest ones), or when its files are malformed.
    public func loadAdapter(path: String) throws -> Adapter {
        Adapter(core: try PluginRegistry.loadAdapter(model: core, path: path))
    }

    /// The layers adapters can attach to, in graph order.
    public var adapterSites: [AdapterSite] {
        core.sites.map { AdapterSite(name: $0.name, inFeatures: $0.inFeatures, outFeatures: $0.outFeatures) }
    }
}

extension Session {
    /// Binds adapters for every following run, each with a scale: y = W x + Σ scale·(terms).
    /// Unmerged (the default) evaluates the terms per run and swaps by pointer; `merged` folds
    /// low-rank terms into session-private weights (no per-run cost, slower to bind).
    public func setAdapters(_ adapters: [(Adapter, Float)], merged: Bool = false) throws {
        try core.setAdapters(adapters.map { ($0.0.core, $0.1) }, merged: merged)
    }

    /// Runs with one adapter (or nil: the base model) per batch row, for this run only, and/or
    /// a modality id per token (batch × sequence, row-major) for adapters that act only on
    /// some modalities.
    public func run(_ inputs: [String: Tensor], rowAdapters: [Adapter?]? = nil, modalities: [UInt8]? = nil) throws -> [String: Tensor] {
        try core.run(inputs.mapValues(\.host), rowAdapters: rowAdapters?.map { $0?.core }, modalities: modalities).mapValues(Tensor.init(host:))
    }
}

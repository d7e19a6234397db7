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

    /// The auxiliary input this adapter's generator reads (e.g. `image_features` for a VLoRA
    /// adapter), or nil for an adapter without a generator.
    public var auxInput: String? { core.generator?.auxInput }

    /// Runs the generator on one image's auxiliary tensors and returns a request adapter
    /// holding the generated weights: bind it (merged or not, beside other adapters) or name it
    /// per row for as many runs as the request lasts (decode steps).
    /// - Throws: ``GraftError`` for an adapter without a generator, a missing or unknown
    ///   auxiliary tensor, or features of the wrong element type or shape.
    public func generate(aux: [String: Tensor], threads: Int = 1) throws -> Adapter {
        try CoreSession.checkThreads(threads)
        return Adapter(core: try core.generate(aux: aux.mapValues(\.host), threads: threads))
    }

    /// One adapter that is the sum of several, each at a scale (binding it equals binding them
    /// together): e.g. an image's request adapter and a task LoRA for one row of a mixed batch.
    public static func compose(_ parts: [(Adapter, Float)]) throws -> Adapter {
        Adapter(core: try CoreAdapter.compose(parts.map { ($0.0.core, $0.1) }))
    }
}

/// How a run applies generated low-rank weights. Unmerged costs r·(in+out) multiply-adds per
/// token at a layer; merging (W' = W + s·B·A in a run-private copy) costs r·in·out once.
public enum MergeMode: Sendable {
    /// Merge one image's weights when the run's tokens make the unmerged terms costlier.
    case auto
    case unmerged
    /// Needs one image for the whole batch and no per-row adapters.
    case merged

    var policy: MergePolicy {
        switch self {
        case .auto: return .auto
        case .unmerged: return .unmerged
        case .merged: return .merged
        }
    }
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
    /// some modalities, and/or auxiliary tensors by name for generator adapters (VLoRA), bound
    /// or per row: `aux: ["image_features": feats]` with one image's features `[N_v, d_v]` for
    /// every row, or one image per row `[batch, N_v, d_v]`. Generated weights live for this run
    /// only; `merge` says how they are applied (see ``MergeMode``).
    public func run(_ inputs: [String: Tensor], rowAdapters: [Adapter?]? = nil, modalities: [UInt8]? = nil,
                    aux: [String: Tensor]? = nil, merge: MergeMode = .auto) throws -> [String: Tensor] {
        try core.run(inputs.mapValues(\.host), rowAdapters: rowAdapters?.map { $0?.core }, modalities: modalities,
                     aux: aux?.mapValues(\.host), merge: merge.policy).mapValues(Tensor.init(host:))
    }
}

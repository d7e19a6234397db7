import ArgumentParser
import GraftCore

/// The adapter options `graft run` and `graft bench` share: plugins to load, adapters to bind
/// (scale 1, unmerged or merged) and the auxiliary tensors generator adapters (VLoRA) read.
struct AdapterOptions: ParsableArguments {
    @Option(name: .customLong("adapter"), help: "An adapter to bind (repeatable; PEFT directory or anything a plugin claims), scale 1.")
    var adapters: [String] = []

    @Flag(help: "Bind the adapters merged (W + sBA in a session copy) instead of unmerged.")
    var merged = false

    @Option(help: "Plugin shared objects to load first (repeatable).")
    var plugin: [String] = []

    @Option(name: .customLong("aux"), help: "An auxiliary tensor for generator adapters (VLoRA) as NAME=FILE.npy, e.g. image_features=feats.npy: one image's features for every row (repeatable).")
    var auxFiles: [String] = []

    /// Loads the plugins (before the model, so their kernels and readers are there).
    func loadPlugins() throws {
        for p in plugin { try PluginRegistry.load(path: p) }
    }

    /// Loads each adapter for `core`, with its load time in ms.
    func loadAdapters(for core: CoreModel) throws -> [(adapter: CoreAdapter, ms: Double)] {
        try adapters.map { path in
            let t = now()
            let adapter = try PluginRegistry.loadAdapter(model: core, path: path)
            return (adapter, ms(since: t))
        }
    }

    /// Binds `loaded` to `session` at scale 1 (nothing when empty).
    func bind(_ loaded: [CoreAdapter], to session: CoreSession) throws {
        if !loaded.isEmpty { try session.setAdapters(loaded.map { ($0, 1) }, merged: merged) }
    }

    /// The --aux tensors by name, or nil when none were given.
    func auxTensors() throws -> [String: HostTensor]? {
        guard !auxFiles.isEmpty else { return nil }
        var named: [String: HostTensor] = [:]
        for spec in auxFiles {
            let (name, file) = try splitNameValue(spec, option: "--aux", form: "NAME=FILE.npy")
            named[name] = try Npy.read(path: file)
        }
        return named
    }
}

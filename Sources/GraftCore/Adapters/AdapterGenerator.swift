import CGraftPlugin

/// A weight generator declared by a plugin (plugin ABI 1.2, `add_generator`; VLoRA): an ONNX
/// model that Graft loads and runs itself, turning a request's auxiliary input (an image's
/// visual features [N_v, d_v]) into the factors of low-rank terms `y += s · B (A x)`.
///
/// Immutable and shareable like the adapter that owns it. Each `generate` call runs the model in
/// a session taken from a small pool (sessions are one-thread-at-a-time; the pool keeps their
/// plans warm across requests).
package final class AdapterGenerator: @unchecked Sendable {
    /// Where a factor comes from: the generator output with this index, or a fixed learned matrix.
    package enum Factor: Sendable {
        case output(Int)
        case fixed(HostTensor)
    }

    /// One generated term at a site: A [rank, in], B [out, rank], scale. The site's name and
    /// features are kept so that factors are checked without the host model.
    package struct Term: Sendable {
        package let site: Int
        package let siteName: String
        package let inFeatures: Int
        package let outFeatures: Int
        package let rank: Int
        package let scale: Float
        package let a: Factor
        package let b: Factor
    }

    package let model: CoreModel
    /// The .onnx path the generator was loaded from (for messages).
    package let path: String
    /// The auxiliary input the caller passes; the generator's only graph input.
    package let auxInput: String
    package let terms: [Term]
    private let idle = Locked<[Pooled]>([])
    /// A session handed between threads through the pool (used by one thread at a time).
    private final class Pooled: @unchecked Sendable {
        let session: CoreSession
        init(_ session: CoreSession) { self.session = session }
    }
    /// Idle sessions kept per generator (reused by callers asking for the same thread count).
    private static let poolLimit = 8

    package init(model: CoreModel, path: String, auxInput: String, terms: [Term]) {
        self.model = model
        self.path = path
        self.auxInput = auxInput
        self.terms = terms
    }

    /// The declared input (dtype, dims) the auxiliary tensor must match.
    package var inputDecl: ValueDecl { model.graph.inputs[0] }

    /// Checks one image's auxiliary tensor against the generator's declared input.
    package func checkFeatures(_ t: HostTensor, adapter: String) throws {
        let decl = inputDecl
        let want = decl.dims.map { "[\($0.map(\.description).joined(separator: ", "))]" } ?? "any shape"
        let got = "\(t.dtype) \(t.shape)"
        guard t.dtype == decl.dtype else {
            throw GraftError(.invalidArgument, "auxiliary input '\(auxInput)' of adapter '\(adapter)' must be \(decl.dtype) \(want), got \(got)")
        }
        if let dims = decl.dims {
            let fits = dims.count == t.rank && zip(dims, t.shape).allSatisfy { d, n in
                if case .fixed(let w) = d { return w == n }
                return true
            }
            guard fits else {
                throw GraftError(.shapeMismatch, "auxiliary input '\(auxInput)' of adapter '\(adapter)' must have shape \(want) (one image's features), got \(t.shape)")
            }
        }
    }

    /// Runs the generator on one image's features [N_v, d_v] and returns the terms per site,
    /// each factor checked against its site: A [rank, in], B [out, rank].
    package func generate(features: HostTensor, adapter: String, threads: Int) throws -> [Int: [CoreAdapter.LowRank]] {
        try checkFeatures(features, adapter: adapter)
        let reused = idle.withLock { pool in pool.lastIndex { $0.session.threads == threads }.map { pool.remove(at: $0) } }
        let pooled = try reused ?? Pooled(CoreSession(model: model, threads: threads))
        let session = pooled.session
        let outputs: [String: HostTensor]
        do {
            outputs = try session.run([auxInput: features])
        } catch let e as GraftError {
            throw GraftError(e.code, "generator '\(path)' of adapter '\(adapter)' failed on auxiliary input '\(auxInput)' \(features.shape): \(e.message)")
        }
        idle.withLock { if $0.count < Self.poolLimit { $0.append(pooled) } }
        let names = model.graph.outputs.map(\.name)
        var result: [Int: [CoreAdapter.LowRank]] = [:]
        for t in terms {
            let a = try factor(t.a, names: names, outputs: outputs, want: [t.rank, t.inFeatures], role: "A", term: t)
            let b = try factor(t.b, names: names, outputs: outputs, want: [t.outFeatures, t.rank], role: "B", term: t)
            result[t.site, default: []].append(CoreAdapter.LowRank(site: t.site, rank: t.rank, a: a, b: b, scale: t.scale,
                                                                  activation: GRAFT_ACTIVATION_IDENTITY, gate: nil, gateContext: nil))
        }
        return result
    }

    /// A factor as a [rows, cols] float tensor: a fixed one as stored, a generated one after
    /// checking its shape (leading 1s are dropped: [1, r, in] is accepted for [r, in]).
    private func factor(_ f: Factor, names: [String], outputs: [String: HostTensor], want: [Int], role: String, term: Term) throws -> HostTensor {
        switch f {
        case .fixed(let t): return t
        case .output(let i):
            let name = names[i]
            guard let t = outputs[name] else { throw GraftError(.internalError, "generator output '\(name)' was not produced") }
            var shape = t.shape
            while shape.count > want.count, shape.first == 1 { shape.removeFirst() }
            guard t.dtype == .float32, shape == want else {
                throw GraftError(.shapeMismatch, "generator '\(path)': output '\(name)' is \(t.dtype) \(t.shape) but site '\(term.siteName)' (in_features \(term.inFeatures), out_features \(term.outFeatures)) needs \(role) float32 \(want)")
            }
            return t.reshaped(want)
        }
    }
}

extension CoreAdapter {
    /// Whether the adapter's terms come from a generator run per request.
    package var isGenerator: Bool { generator != nil }

    /// An ordinary adapter holding this one's terms with the generated ones for one image
    /// (`features`: the auxiliary input). The result has no generator: bind it to sessions,
    /// merged or not, or name it per row, across as many runs (decode steps) as the request
    /// lasts; it is freed with its last reference.
    package func generate(aux: [String: HostTensor], threads: Int = 1) throws -> CoreAdapter {
        guard let generator else {
            throw GraftError(.invalidArgument, "adapter '\(name)' has no generator: it takes no auxiliary inputs")
        }
        for key in aux.keys where key != generator.auxInput {
            throw GraftError(.invalidArgument, "'\(key)' is not an auxiliary input of adapter '\(name)'; it reads '\(generator.auxInput)'")
        }
        guard let features = aux[generator.auxInput] else {
            throw GraftError(.invalidArgument, "adapter '\(name)' needs the auxiliary input '\(generator.auxInput)'")
        }
        return try generated(features: features, threads: threads)
    }

    /// This adapter's static terms plus those generated from one image's features.
    package func generated(features: HostTensor, threads: Int) throws -> CoreAdapter {
        guard let generator else { return self }
        var terms = lowRank
        for (site, list) in try generator.generate(features: features, adapter: name, threads: threads) {
            terms[site, default: []].append(contentsOf: list)
        }
        return CoreAdapter(name: name, source: source, plugin: plugin, model: self.model, lowRank: terms, routers: routers,
                           inputScales: inputScales, outputScales: outputScales)
    }
}

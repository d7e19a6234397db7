import CGraftPlugin
#if canImport(Glibc)
import Glibc
#endif

/// `graft_host_api.add_generator` (plugin ABI 1.2): checks a plugin's generator declaration
/// against the generator model and the sites, and keeps it on the adapter being built. Nothing
/// is kept unless the whole declaration checks out.
extension AdapterBuilder {
    /// Largest number of generated terms one adapter may declare.
    static let maxGeneratedTerms = 65536

    func addGenerator(_ declaration: UnsafePointer<graft_generator>) -> Int32 {
        do {
            generator = try buildGenerator(declaration.pointee)
            return 0
        } catch let e as GraftError {
            return PluginHost.fail(e.code, e.message)
        } catch {
            return PluginHost.fail(.internalError, "\(error)")
        }
    }

    private func buildGenerator(_ g: graft_generator) throws -> AdapterGenerator {
        guard Int(g.struct_size) >= MemoryLayout<graft_generator>.size else {
            throw GraftError(.invalidArgument, "add_generator: struct_size \(g.struct_size) is smaller than graft_generator (\(MemoryLayout<graft_generator>.size))")
        }
        guard generator == nil else { throw GraftError(.invalidArgument, "add_generator: the adapter already has a generator (one per adapter)") }
        guard let cpath = g.model_path, let cinput = g.aux_input else {
            throw GraftError(.invalidArgument, "add_generator: model_path and aux_input must not be NULL")
        }
        let auxInput = String(cString: cinput)
        guard !auxInput.isEmpty else { throw GraftError(.invalidArgument, "add_generator: aux_input is empty") }
        let file = try Self.confined(String(cString: cpath), in: path)
        let generatorModel: CoreModel
        do {
            generatorModel = try CoreModel(path: file)
        } catch let e as GraftError {
            throw GraftError(e.code, "generator '\(file)': \(e.message)")
        }

        // Inputs: exactly the auxiliary input, float32.
        let inputs = generatorModel.graph.inputs
        guard inputs.count == 1, inputs[0].name == auxInput else {
            throw GraftError(.invalidModel, "generator '\(file)' must have exactly one input, named '\(auxInput)' (the auxiliary input); it has \(inputs.map { "'\($0.name)'" }.joined(separator: ", "))")
        }
        guard inputs[0].dtype == .float32 else {
            throw GraftError(.unsupported, "generator '\(file)': input '\(auxInput)' is \(inputs[0].dtype); only float32 features are supported")
        }

        // Terms: each factor a known output or a fixed matrix; every output used exactly once.
        let outputs = generatorModel.graph.outputs.map(\.name)
        let count = Int(g.term_count)
        guard count >= 1, count <= Self.maxGeneratedTerms else {
            throw GraftError(.invalidArgument, "add_generator: term_count \(count) is outside 1...\(Self.maxGeneratedTerms)")
        }
        guard let list = g.terms else { throw GraftError(.invalidArgument, "add_generator: terms is NULL") }
        let stride = Int(list.pointee.struct_size)
        guard stride >= MemoryLayout<graft_generated_term>.size, stride <= 4096, stride % 8 == 0 else {
            throw GraftError(.invalidArgument, "add_generator: terms[0].struct_size is \(stride); set it to sizeof(graft_generated_term) (\(MemoryLayout<graft_generated_term>.size))")
        }
        var usedBy: [Int: String] = [:]
        var terms: [AdapterGenerator.Term] = []
        for i in 0..<count {
            let t = (UnsafeRawPointer(list) + i * stride).assumingMemoryBound(to: graft_generated_term.self).pointee
            guard Int(t.struct_size) == stride else {
                throw GraftError(.invalidArgument, "add_generator: terms[\(i)].struct_size is \(t.struct_size) but terms[0]'s is \(stride)")
            }
            let siteIndex = Int(t.site)
            guard siteIndex < self.model.sites.count else {
                throw GraftError(.invalidArgument, "add_generator: terms[\(i)] names site \(siteIndex), out of range (\(self.model.sites.count) sites)")
            }
            let site = self.model.sites[siteIndex]
            let rank = Int(t.rank)
            guard rank >= 1, rank <= Self.maxRank else { throw GraftError(.limitExceeded, "add_generator: site '\(site.name)': rank \(rank) is outside 1...\(Self.maxRank)") }
            guard t.scale.isFinite else { throw GraftError(.invalidArgument, "add_generator: site '\(site.name)': scale is not finite") }
            func factor(_ output: UnsafePointer<CChar>?, _ fixed: UnsafePointer<Float>?, _ role: String, _ shape: [Int]) throws -> AdapterGenerator.Factor {
                switch (output, fixed) {
                case (let o?, nil):
                    let name = String(cString: o)
                    guard let k = outputs.firstIndex(of: name) else {
                        throw GraftError(.invalidModel, "generator '\(file)' has no output '\(name)' (\(role) of site '\(site.name)'); its outputs are \(outputs.map { "'\($0)'" }.joined(separator: ", "))")
                    }
                    if let other = usedBy[k] {
                        throw GraftError(.invalidModel, "generator output '\(name)' is used twice: by \(other) and by \(role) of site '\(site.name)'")
                    }
                    usedBy[k] = "\(role) of site '\(site.name)'"
                    try Self.checkStaticShape(generatorModel, output: name, want: shape, role: role, site: site, file: file)
                    return .output(k)
                case (nil, let f?):
                    let t = HostTensor(zeros: .float32, shape: shape)
                    t.raw.copyMemory(from: f, byteCount: t.byteCount)
                    return .fixed(t)
                default:
                    throw GraftError(.invalidArgument, "add_generator: site '\(site.name)': give exactly one of \(role.lowercased())_output and \(role.lowercased())_fixed")
                }
            }
            let a = try factor(t.a_output, t.a_fixed, "A", [rank, site.inFeatures])
            let b = try factor(t.b_output, t.b_fixed, "B", [site.outFeatures, rank])
            if case .fixed = a, case .fixed = b {
                throw GraftError(.invalidArgument, "add_generator: site '\(site.name)': both factors are fixed, so nothing is generated; declare it as an ordinary low-rank term")
            }
            terms.append(AdapterGenerator.Term(site: siteIndex, siteName: site.name, inFeatures: site.inFeatures, outFeatures: site.outFeatures,
                                               rank: rank, scale: t.scale, a: a, b: b))
        }
        let unused = outputs.indices.filter { usedBy[$0] == nil }.map { "'\(outputs[$0])'" }
        guard unused.isEmpty else {
            throw GraftError(.invalidModel, "generator '\(file)': output\(unused.count == 1 ? "" : "s") \(unused.joined(separator: ", ")) \(unused.count == 1 ? "is" : "are") not tied to any site")
        }
        return AdapterGenerator(model: generatorModel, path: file, auxInput: auxInput, terms: terms)
    }

    /// Where the generator's symbolic shapes pin an output's dims, they must be the factor's
    /// (leading 1s allowed), so a mismatched generator is refused at load, not at the first run.
    private static func checkStaticShape(_ model: CoreModel, output: String, want: [Int], role: String, site: Site, file: String) throws {
        guard let dims = model.symbolicShapes?[output] ?? model.graph.outputs.first(where: { $0.name == output })?.dims else { return }
        var d = dims
        while d.count > want.count, d.first == .fixed(1) { d.removeFirst() }
        let fixed = d.compactMap { if case .fixed(let n) = $0 { return n } else { return nil } }
        let mismatch = d.count != want.count || (fixed.count == d.count && fixed != want)
        if mismatch {
            throw GraftError(.shapeMismatch, "generator '\(file)': output '\(output)' has shape \(dims) but site '\(site.name)' (in_features \(site.inFeatures), out_features \(site.outFeatures)) needs \(role) \(want)")
        }
    }

    /// `relative` inside the folder of the adapter at `adapterPath` (the path itself when it is a
    /// directory): absolute paths, `..` components and symlinks resolving outside are refused.
    static func confined(_ relative: String, in adapterPath: String) throws -> String {
        guard !relative.isEmpty, !relative.hasPrefix("/") else {
            throw GraftError(.invalidArgument, "generator model path '\(relative)' must be relative to the adapter's folder")
        }
        guard !relative.split(separator: "/").contains("..") else {
            throw GraftError(.invalidArgument, "generator model path '\(relative)' leaves the adapter's folder ('..' is not allowed)")
        }
        var folder = adapterPath
        if !PluginRegistry.isDirectory(folder) {
            folder = folder.lastIndex(of: "/").map { String(folder[..<$0]) } ?? "."
        }
        guard let root = PluginRegistry.realPath(folder) else { throw GraftError(.io, "cannot resolve the adapter folder '\(folder)'") }
        let joined = folder + "/" + relative
        guard let resolved = PluginRegistry.realPath(joined) else { throw GraftError(.io, "generator model '\(joined)' does not exist") }
        guard resolved.hasPrefix(root.hasSuffix("/") ? root : root + "/") else {
            throw GraftError(.invalidArgument, "generator model path '\(relative)' resolves to '\(resolved)', outside the adapter's folder '\(root)' (symlinks out of the folder are refused)")
        }
        return resolved
    }
}

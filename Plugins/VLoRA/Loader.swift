// Loads a GRAFT_VLORA directory: checks the config and the fixed factors, then declares the
// generator to the host (graft_host_api.add_generator, plugin ABI 1.2), which loads the ONNX
// generator itself and checks its outputs against the sites.
import CGraftPlugin
import GraftPluginSupport
#if canImport(Glibc)
import Glibc
#endif

/// claims: a directory whose adapter_config.json says peft_type "GRAFT_VLORA". Reads only that file.
func claimsVLoRA(_ path: String) -> Bool { isAdapterDirectory(path, peftType: vloraPeftType) }

func loadVLoRA(host: Host, directory: String, builder: OpaquePointer) throws(PluginFailure) {
    let config = try parseVLoRAConfig(try readConfigJSON(directory))
    // Sites and their features.
    var sites: [(index: Int, info: graft_site_info)] = []
    for t in config.targets {
        let index = try host.findSite(builder, t.module)
        sites.append((index, try host.siteInfo(builder, index)))
    }
    if let dup = Dictionary(grouping: sites.indices, by: { sites[$0].index }).values.first(where: { $0.count > 1 }) {
        throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "adapter_config.json: modules \"\(config.targets[dup[0]].module)\" and \"\(config.targets[dup[1]].module)\" name the same site")
    }

    // Fixed factors from adapter_model.safetensors (only when some target has one).
    var file: OpaquePointer?
    defer { if let file { host.closeSafetensors(file) } }
    var tensors: [String: graft_st_tensor] = [:]
    if config.needsWeights {
        let f = try host.openSafetensors(try weightsPath(in: directory))
        file = f
        for i in 0..<(try host.tensorCount(f)) {
            let t = try host.tensor(f, at: i)
            tensors[String(cString: t.name)] = t
        }
    }
    func fixed(_ source: FactorSource, want: [Int64], role: String, module: String) throws(PluginFailure) -> UnsafePointer<Float>? {
        guard case .fixed(let key) = source else { return nil }
        guard let t = tensors[key] else {
            throw PluginFailure(GRAFT_PLUGIN_INVALID_DATA, "\(weightsFileName) has no tensor '\(key)' (the fixed \(role) of \(module))")
        }
        let shape = try checkTensor(t, key)
        guard shape == want else {
            throw PluginFailure(GRAFT_PLUGIN_SHAPE_MISMATCH, "\(weightsFileName): tensor \(key) has shape \(describe(shape)): expected \(describe(want)) for the fixed \(role) of \(module)")
        }
        return t.data
    }

    // C strings for the output names, freed after add_generator (the host copies everything).
    var owned: [UnsafeMutablePointer<CChar>] = []
    defer { owned.forEach { free($0) } }
    func cName(_ source: FactorSource) -> UnsafePointer<CChar>? {
        guard case .output(let name) = source, let p = strdup(name) else { return nil }
        owned.append(p)
        return UnsafePointer(p)
    }
    var terms: [graft_generated_term] = []
    for (t, site) in zip(config.targets, sites) {
        let inF = site.info.in_features, outF = site.info.out_features, r = Int64(t.r)
        var term = graft_generated_term()
        term.struct_size = UInt32(MemoryLayout<graft_generated_term>.size)
        term.site = UInt32(site.index)
        term.rank = UInt32(t.r)
        term.scale = t.scale
        term.a_output = cName(t.a)
        term.a_fixed = try fixed(t.a, want: [r, inF], role: "lora_A", module: t.module)
        term.b_output = cName(t.b)
        term.b_fixed = try fixed(t.b, want: [outF, r], role: "lora_B", module: t.module)
        terms.append(term)
    }
    // (withCString / withUnsafeBufferPointer rethrow untyped errors: plain pointers instead.)
    let list = UnsafeMutablePointer<graft_generated_term>.allocate(capacity: terms.count)
    defer { list.deallocate() }
    list.initialize(from: terms, count: terms.count)
    var g = graft_generator()
    g.struct_size = UInt32(MemoryLayout<graft_generator>.size)
    g.model_path = cName(.output(config.generator))
    g.aux_input = cName(.output(config.auxInput))
    g.terms = UnsafePointer(list)
    g.term_count = UInt32(terms.count)
    try host.addGenerator(builder, &g)
    host.setName(builder, lastComponent(directory))
}

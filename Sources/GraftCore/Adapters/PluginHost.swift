import CGraftPlugin
import COpenBLAS
#if canImport(Glibc)
import Glibc
#endif

/// The function table Graft lends plugins (`graft_host_api`), and the adapter builder behind
/// it. Every entry converts failures into a status plus a per-thread message; nothing a plugin
/// passes can trap the host.
package enum PluginHost {
    package static let abiVersion = UInt32(GRAFT_PLUGIN_ABI_MAJOR) << 16 | UInt32(GRAFT_PLUGIN_ABI_MINOR)

    /// The table itself, allocated once and never freed (plugins may keep the pointer).
    nonisolated(unsafe) package static let api: UnsafeMutablePointer<graft_host_api> = {
        let p = UnsafeMutablePointer<graft_host_api>.allocate(capacity: 1)
        var t = graft_host_api()
        t.abi_version = abiVersion
        t.struct_size = UInt32(MemoryLayout<graft_host_api>.size)
        t.log = { level, message in
            guard let message else { return }
            let tag = ["debug", "info", "warning", "error"][Int(max(0, min(3, level)))]
            let line = "graft plugin \(tag): \(String(cString: message))\n"
            if level >= GRAFT_LOG_WARNING || getenv("GRAFT_DEBUG") != nil {
                _ = line.withCString { write(2, $0, strlen($0)) }
            }
        }
        t.set_error = { message in cgraft_plugin_set_error(message) }
        t.alloc = { bytes in
            var p: UnsafeMutableRawPointer?
            return posix_memalign(&p, 64, max(bytes, 1)) == 0 ? p : nil
        }
        t.free = { p in Glibc.free(p) }
        t.sgemm = { ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc in
            guard let a, let b, let c, m > 0, n > 0, m <= Int64(Int32.max), n <= Int64(Int32.max), k <= Int64(Int32.max),
                  lda <= Int64(Int32.max), ldb <= Int64(Int32.max), ldc <= Int64(Int32.max) else { return }
            cblas_sgemm(CblasRowMajor, ta != 0 ? CblasTrans : CblasNoTrans, tb != 0 ? CblasTrans : CblasNoTrans,
                        Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
        }
        t.safetensors_open = { path, out in
            guard let path, let out else { return fail(.invalidArgument, "safetensors_open: NULL argument") }
            do {
                let file = try SafetensorsFile(path: String(cString: path))
                out.pointee = OpaquePointer(Unmanaged.passRetained(OpenSafetensors(file)).toOpaque())
                return 0
            } catch let e as GraftError {
                return fail(e.code, e.message)
            } catch {
                return fail(.internalError, "\(error)")
            }
        }
        t.safetensors_close = { file in
            guard let file else { return }
            Unmanaged<OpenSafetensors>.fromOpaque(UnsafeRawPointer(file)).release()
        }
        t.safetensors_count = { file in
            guard let file else { return 0 }
            return OpenSafetensors.from(file).file.entries.count
        }
        t.safetensors_get = { file, index, out in
            guard let file, let out else { return fail(.invalidArgument, "safetensors_get: NULL argument") }
            let f = OpenSafetensors.from(file)
            guard index < f.file.entries.count else { return fail(.invalidArgument, "safetensors_get: index \(index) out of range (\(f.file.entries.count) tensors)") }
            return f.describe(index, into: out)
        }
        t.safetensors_find = { file, name, out in
            guard let file, let name, let out else { return fail(.invalidArgument, "safetensors_find: NULL argument") }
            let f = OpenSafetensors.from(file)
            let key = String(cString: name)
            guard let i = f.file.entries.firstIndex(where: { $0.name == key }) else {
                return fail(.invalidArgument, "\(f.file.path): no tensor named '\(key)'")
            }
            return f.describe(i, into: out)
        }
        t.site_count = { builder in builder.map { AdapterBuilder.from($0).model.sites.count } ?? 0 }
        t.site_info = { builder, index, out in
            guard let builder, let out else { return fail(.invalidArgument, "site_info: NULL argument") }
            let b = AdapterBuilder.from(builder)
            guard index < b.model.sites.count else { return fail(.invalidArgument, "site_info: index \(index) out of range (\(b.model.sites.count) sites)") }
            guard out.pointee.struct_size >= UInt32(MemoryLayout<graft_site_info>.size) else {
                return fail(.invalidArgument, "site_info: struct_size \(out.pointee.struct_size) is smaller than graft_site_info (\(MemoryLayout<graft_site_info>.size))")
            }
            let site = b.model.sites[index]
            out.pointee.index = UInt32(index)
            out.pointee.name = b.model.siteNames.name(index)
            out.pointee.node_name = b.model.siteNames.node(index)
            out.pointee.in_features = Int64(site.inFeatures)
            out.pointee.out_features = Int64(site.outFeatures)
            return 0
        }
        t.find_site = { builder, module, index in
            guard let builder, let module, let index else { return fail(.invalidArgument, "find_site: NULL argument") }
            do {
                index.pointee = try AdapterBuilder.from(builder).model.sites.find(module: String(cString: module)).index
                return 0
            } catch let e as GraftError {
                return fail(e.code, e.message)
            } catch {
                return fail(.internalError, "\(error)")
            }
        }
        t.add_lowrank = { builder, term in
            guard let builder, let term else { return fail(.invalidArgument, "add_lowrank: NULL argument") }
            return AdapterBuilder.from(builder).addLowRank(term)
        }
        t.add_channel_scale = { builder, site, which, values, count in
            guard let builder, let values else { return fail(.invalidArgument, "add_channel_scale: NULL argument") }
            return AdapterBuilder.from(builder).addChannelScale(site: Int(site), which: which, values: values, count: Int(count))
        }
        t.add_router = { builder, router, id in
            guard let builder, let router, let id else { return fail(.invalidArgument, "add_router: NULL argument") }
            return AdapterBuilder.from(builder).addRouter(router, id: id)
        }
        t.add_block_mixture = { builder, mixture, id in
            guard let builder, let mixture, let id else { return fail(.invalidArgument, "add_block_mixture: NULL argument") }
            return AdapterBuilder.from(builder).addBlockMixture(mixture, id: id)
        }
        t.add_block_delta = { builder, delta in
            guard let builder, let delta else { return fail(.invalidArgument, "add_block_delta: NULL argument") }
            return AdapterBuilder.from(builder).addBlockDelta(delta)
        }
        t.add_generator = { builder, generator in
            guard let builder, let generator else { return fail(.invalidArgument, "add_generator: NULL argument") }
            return AdapterBuilder.from(builder).addGenerator(generator)
        }
        t.set_name = { builder, name in
            guard let builder, let name else { return fail(.invalidArgument, "set_name: NULL argument") }
            AdapterBuilder.from(builder).name = String(cString: name)
            return 0
        }
        p.initialize(to: t)
        return p
    }()

    /// Records `message` as the plugin-facing error and returns the status.
    static func fail(_ code: GraftError.Code, _ message: String) -> Int32 {
        cgraft_plugin_set_error(message)
        return code.rawValue
    }
}

/// A safetensors file opened for a plugin, with the float32 copies and C strings it has handed
/// out (valid until the plugin closes it).
final class OpenSafetensors {
    let file: SafetensorsFile
    private var handedOut: [Int: (tensor: HostTensor, shape: UnsafeMutablePointer<Int64>, name: UnsafeMutablePointer<CChar>, dtype: UnsafeMutablePointer<CChar>)] = [:]

    init(_ file: SafetensorsFile) { self.file = file }

    static func from(_ p: OpaquePointer) -> OpenSafetensors {
        Unmanaged<OpenSafetensors>.fromOpaque(UnsafeRawPointer(p)).takeUnretainedValue()
    }

    func describe(_ index: Int, into out: UnsafeMutablePointer<graft_st_tensor>) -> Int32 {
        guard out.pointee.struct_size >= UInt32(MemoryLayout<graft_st_tensor>.size) else {
            return PluginHost.fail(.invalidArgument, "safetensors: graft_st_tensor.struct_size \(out.pointee.struct_size) is smaller than \(MemoryLayout<graft_st_tensor>.size)")
        }
        let entry = file.entries[index]
        if handedOut[index] == nil {
            do {
                let t = try file.floats(entry)
                let shape = UnsafeMutablePointer<Int64>.allocate(capacity: max(entry.shape.count, 1))
                for (i, d) in entry.shape.enumerated() { shape[i] = Int64(d) }
                handedOut[index] = (t, shape, strdup(entry.name), strdup(entry.dtype))
            } catch let e as GraftError {
                return PluginHost.fail(e.code, e.message)
            } catch {
                return PluginHost.fail(.internalError, "\(error)")
            }
        }
        let h = handedOut[index]!
        out.pointee.rank = UInt32(entry.shape.count)
        out.pointee.name = UnsafePointer(h.name)
        out.pointee.shape = UnsafePointer(h.shape)
        out.pointee.data = UnsafePointer(h.tensor.pointer(Float.self))
        out.pointee.count = Int64(h.tensor.count)
        out.pointee.file_dtype = UnsafePointer(h.dtype)
        return 0
    }

    deinit {
        for h in handedOut.values {
            h.shape.deallocate()
            free(h.name)
            free(h.dtype)
        }
    }
}

/// Collects one adapter's terms while a plugin's `load` runs.
final class AdapterBuilder {
    let model: CoreModel
    var name: String
    var lowRank: [Int: [CoreAdapter.LowRank]] = [:]
    var routers: [CoreAdapter.Router] = []
    var inputScales: [Int: HostTensor] = [:]
    var outputScales: [Int: HostTensor] = [:]
    /// Terms (low-rank terms, routers, channel scales) and float32 bytes added so far, held
    /// to the model's `Limits.adapterTerms` / `adapterBytes`; ranks to `adapterRank`.
    private var terms = 0
    private var bytes = 0
    /// Block mixtures (BlockMixtureBuilder.swift).
    var blocks: [CoreAdapter.BlockMixture] = []
    /// The adapter's path (the generator's model path is confined to its folder) and generator.
    var path = ""
    var generator: AdapterGenerator?

    init(model: CoreModel, name: String) {
        self.model = model
        self.name = name
    }

    static func from(_ p: OpaquePointer) -> AdapterBuilder {
        Unmanaged<AdapterBuilder>.fromOpaque(UnsafeRawPointer(p)).takeUnretainedValue()
    }

    var opaque: OpaquePointer { OpaquePointer(Unmanaged.passUnretained(self).toOpaque()) }

    /// Counts one more term of `floats` float32 values against the model's adapter caps,
    /// before its copy is allocated; nil when within them, else the failure status.
    func reserve(floats: Int, _ what: String) -> Int32? {
        let limits = model.limits
        do {
            try limits.check(.adapterTerms, terms + 1, "adapter '\(name)' with \(what)", verb: "has", unit: "terms")
            try limits.check(.adapterBytes, bytes + floats * 4, "adapter '\(name)' with \(what)", verb: "holds", unit: "bytes of weights")
        } catch let e as GraftError {
            return PluginHost.fail(e.code, e.message)
        } catch {
            return PluginHost.fail(.internalError, "\(error)")
        }
        terms += 1
        bytes += floats * 4
        return nil
    }

    /// Size of graft_lowrank_term in plugin ABI 1.0 (before router, expert, modalities).
    static let lowRankV10Size = MemoryLayout<graft_lowrank_term>.offset(of: \graft_lowrank_term.router)!
    static let maxExperts = 1024

    func addLowRank(_ term: UnsafePointer<graft_lowrank_term>) -> Int32 {
        let t = term.pointee
        guard Int(t.struct_size) >= Self.lowRankV10Size else {
            return PluginHost.fail(.invalidArgument, "add_lowrank: struct_size \(t.struct_size) is smaller than graft_lowrank_term of plugin ABI 1.0 (\(Self.lowRankV10Size))")
        }
        // Fields added in 1.1 count only when the plugin's struct has them.
        let v11 = Int(t.struct_size) >= MemoryLayout<graft_lowrank_term>.size
        let routerID = v11 ? Int(t.router) : 0
        let expert = v11 ? Int(t.expert) : 0
        let modalities = v11 ? t.modalities : 0
        var routerIndex: Int?
        if routerID != 0 {
            guard routerID <= routers.count, routers[routerID - 1].site == Int(t.site) else {
                return PluginHost.fail(.invalidArgument, "add_lowrank: router \(routerID) is not a router of site \(t.site)")
            }
            guard expert < routers[routerID - 1].experts else {
                return PluginHost.fail(.invalidArgument, "add_lowrank: expert \(expert) is out of range for a router of \(routers[routerID - 1].experts) experts")
            }
            routerIndex = routerID - 1
        }
        let site = Int(t.site)
        guard site < model.sites.count else { return PluginHost.fail(.invalidArgument, "add_lowrank: site \(site) out of range (\(model.sites.count) sites)") }
        let rank = Int(t.rank)
        let maxRank = model.limits.adapterRank
        guard rank >= 1 else { return PluginHost.fail(.invalidArgument, "add_lowrank: rank \(rank) must be at least 1") }
        guard rank <= maxRank else {
            return PluginHost.fail(.limitExceeded, "add_lowrank: rank \(rank) of site '\(model.sites[site].name)' is more than the limit of \(maxRank) (\(Limits.Kind.adapterRank.name); raise it in the model options)")
        }
        guard let a = t.a, let b = t.b else { return PluginHost.fail(.invalidArgument, "add_lowrank: A or B is NULL") }
        guard t.scale.isFinite else { return PluginHost.fail(.invalidArgument, "add_lowrank: scale is not finite") }
        guard (GRAFT_ACTIVATION_IDENTITY...GRAFT_ACTIVATION_SILU).contains(t.activation) else {
            return PluginHost.fail(.unsupported, "add_lowrank: unknown activation \(t.activation)")
        }
        let s = model.sites[site]
        if let failed = reserve(floats: rank * (s.inFeatures + s.outFeatures), "a rank-\(rank) term at site '\(s.name)'") { return failed }
        let at = HostTensor(zeros: .float32, shape: [rank, s.inFeatures])
        let bt = HostTensor(zeros: .float32, shape: [s.outFeatures, rank])
        at.raw.copyMemory(from: a, byteCount: at.byteCount)
        bt.raw.copyMemory(from: b, byteCount: bt.byteCount)
        lowRank[site, default: []].append(CoreAdapter.LowRank(site: site, rank: rank, a: at, b: bt, scale: t.scale,
                                                              activation: t.activation, gate: t.gate, gateContext: t.gate_ctx,
                                                              router: routerIndex, expert: expert, modalities: modalities))
        return 0
    }

    /// Size of graft_router in plugin ABI 1.1 (before expert_modalities).
    static let routerV11Size = MemoryLayout<graft_router>.offset(of: \graft_router.expert_modalities)!

    func addRouter(_ router: UnsafePointer<graft_router>, id: UnsafeMutablePointer<UInt32>) -> Int32 {
        let r = router.pointee
        guard Int(r.struct_size) >= Self.routerV11Size else {
            return PluginHost.fail(.invalidArgument, "add_router: struct_size \(r.struct_size) is smaller than graft_router of plugin ABI 1.1 (\(Self.routerV11Size))")
        }
        let site = Int(r.site)
        guard site < model.sites.count else { return PluginHost.fail(.invalidArgument, "add_router: site \(site) out of range (\(model.sites.count) sites)") }
        let experts = Int(r.experts)
        guard experts >= 1, experts <= Self.maxExperts else { return PluginHost.fail(.limitExceeded, "add_router: \(experts) experts is outside 1...\(Self.maxExperts)") }
        guard (GRAFT_GATE_SOFTMAX...GRAFT_GATE_SIGMOID).contains(r.gate) else { return PluginHost.fail(.unsupported, "add_router: unknown gate \(r.gate)") }
        if r.gate == GRAFT_GATE_TOPK {
            guard r.top_k >= 1, Int(r.top_k) <= experts else { return PluginHost.fail(.invalidArgument, "add_router: top_k \(r.top_k) must be between 1 and \(experts)") }
        }
        if r.gate == GRAFT_GATE_THRESHOLD {
            guard r.threshold.isFinite, r.threshold >= 0, r.threshold <= 1 else { return PluginHost.fail(.invalidArgument, "add_router: threshold \(r.threshold) must be in [0, 1]") }
        }
        guard let w = r.weight else { return PluginHost.fail(.invalidArgument, "add_router: weight is NULL") }
        let inF = model.sites[site].inFeatures
        if let failed = reserve(floats: experts * (inF + 1), "a router of \(experts) experts at site '\(model.sites[site].name)'") { return failed }
        let weight = HostTensor(zeros: .float32, shape: [experts, inF])
        weight.raw.copyMemory(from: w, byteCount: weight.byteCount)
        var bias: HostTensor?
        if let b = r.bias {
            let t = HostTensor(zeros: .float32, shape: [experts])
            t.raw.copyMemory(from: b, byteCount: t.byteCount)
            bias = t
        }
        var made = CoreAdapter.Router(site: site, experts: experts, gate: r.gate, weight: weight, bias: bias,
                                      topK: Int(r.top_k), renormalize: r.renormalize != 0, threshold: r.threshold,
                                      siteName: model.sites[site].name)
        if Int(r.struct_size) >= MemoryLayout<graft_router>.size, let groups = r.expert_modalities {
            made.expertModalities = Array(UnsafeBufferPointer(start: groups, count: experts))
        }
        routers.append(made)
        id.pointee = UInt32(routers.count)
        return 0
    }

    func addChannelScale(site: Int, which: Int32, values: UnsafePointer<Float>, count: Int) -> Int32 {
        guard site < model.sites.count else { return PluginHost.fail(.invalidArgument, "add_channel_scale: site \(site) out of range (\(model.sites.count) sites)") }
        guard which == 0 || which == 1 else { return PluginHost.fail(.invalidArgument, "add_channel_scale: which must be 0 (input) or 1 (output), got \(which)") }
        let s = model.sites[site]
        let want = which == 0 ? s.inFeatures : s.outFeatures
        guard count == want else {
            return PluginHost.fail(.shapeMismatch, "add_channel_scale: site '\(s.name)' has \(want) \(which == 0 ? "input" : "output") features, got \(count) values")
        }
        if let failed = reserve(floats: count, "a channel scale at site '\(s.name)'") { return failed }
        let t = HostTensor(zeros: .float32, shape: [count])
        t.raw.copyMemory(from: values, byteCount: count * 4)
        if which == 0 { inputScales[site] = t } else { outputScales[site] = t }
        return 0
    }
}

/// C strings of site names, alive as long as their model (plugins get these pointers).
package final class SiteNameTable: @unchecked Sendable {
    private let names: [UnsafeMutablePointer<CChar>]
    private let nodes: [UnsafeMutablePointer<CChar>]

    package init(_ sites: [Site]) {
        names = sites.map { strdup($0.name) }
        nodes = sites.map { strdup($0.nodeName) }
    }

    package func name(_ i: Int) -> UnsafePointer<CChar> { UnsafePointer(names[i]) }
    package func node(_ i: Int) -> UnsafePointer<CChar> { UnsafePointer(nodes[i]) }

    deinit {
        names.forEach { free($0) }
        nodes.forEach { free($0) }
    }
}

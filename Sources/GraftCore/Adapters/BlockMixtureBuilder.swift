import CGraftPlugin

/// graft_host_api.add_block_mixture / add_block_delta (plugin ABI 1.2): checks what a plugin
/// passes against the model's recognised blocks and copies the deltas' weights.
extension AdapterBuilder {
    func addBlockMixture(_ mixture: UnsafePointer<graft_block_mixture>, id: UnsafeMutablePointer<UInt32>) -> Int32 {
        let m = mixture.pointee
        guard Int(m.struct_size) >= MemoryLayout<graft_block_mixture>.size else {
            return PluginHost.fail(.invalidArgument, "add_block_mixture: struct_size \(m.struct_size) is smaller than graft_block_mixture (\(MemoryLayout<graft_block_mixture>.size))")
        }
        guard m.kind == GRAFT_BLOCK_GATED_MLP else {
            return PluginHost.fail(.unsupported, "add_block_mixture: unknown block kind \(m.kind) (this host knows GRAFT_BLOCK_GATED_MLP)")
        }
        let sites = [Int(m.gate_site), Int(m.up_site), Int(m.down_site)]
        for s in sites where s >= model.sites.count {
            return PluginHost.fail(.invalidArgument, "add_block_mixture: site \(s) out of range (\(model.sites.count) sites)")
        }
        let block: MLPBlock
        do { block = try model.blocks.find(gate: sites[0], up: sites[1], down: sites[2], sites: model.sites) } catch let e as GraftError {
            return PluginHost.fail(e.code, e.message)
        } catch {
            return PluginHost.fail(.internalError, "\(error)")
        }
        guard [GRAFT_ACTIVATION_IDENTITY, GRAFT_ACTIVATION_RELU, GRAFT_ACTIVATION_GELU, GRAFT_ACTIVATION_SILU].contains(m.activation) else {
            return PluginHost.fail(.unsupported, "add_block_mixture: unknown activation \(m.activation)")
        }
        let routerID = Int(m.router)
        guard routerID >= 1, routerID <= routers.count, routers[routerID - 1].site == sites[0] else {
            return PluginHost.fail(.invalidArgument, "add_block_mixture: router \(routerID) is not a router of the block's gate site '\(model.sites[sites[0]].name)' (add it there with add_router first)")
        }
        guard !blocks.contains(where: { $0.block == block.index }) else {
            return PluginHost.fail(.invalidArgument, "add_block_mixture: the block at '\(model.sites[sites[2]].name)' already has a mixture in this adapter")
        }
        let experts = routers[routerID - 1].experts
        blocks.append(CoreAdapter.BlockMixture(block: block.index, router: routerID - 1, activation: m.activation,
                                               deltas: Array(repeating: [nil, nil, nil], count: experts)))
        id.pointee = UInt32(blocks.count)
        return 0
    }

    func addBlockDelta(_ delta: UnsafePointer<graft_block_delta>) -> Int32 {
        let d = delta.pointee
        guard Int(d.struct_size) >= MemoryLayout<graft_block_delta>.size else {
            return PluginHost.fail(.invalidArgument, "add_block_delta: struct_size \(d.struct_size) is smaller than graft_block_delta (\(MemoryLayout<graft_block_delta>.size))")
        }
        let id = Int(d.block)
        guard id >= 1, id <= blocks.count else { return PluginHost.fail(.invalidArgument, "add_block_delta: block \(id) is not a block mixture of this adapter") }
        let mixture = blocks[id - 1]
        let expert = Int(d.expert)
        guard expert < mixture.deltas.count else {
            return PluginHost.fail(.invalidArgument, "add_block_delta: expert \(expert) is out of range for a mixture of \(mixture.deltas.count) experts")
        }
        let p = Int(d.projection)
        guard (0...2).contains(p) else { return PluginHost.fail(.invalidArgument, "add_block_delta: projection \(d.projection) is not GRAFT_BLOCK_PROJ_GATE, _UP or _DOWN") }
        guard mixture.deltas[expert][p] == nil else {
            return PluginHost.fail(.invalidArgument, "add_block_delta: expert \(expert) already has a delta on projection \(p)")
        }
        let rank = Int(d.rank)
        let maxRank = model.limits.adapterRank
        guard rank >= 1, rank <= maxRank else {
            return PluginHost.fail(.limitExceeded, "add_block_delta: rank \(rank) is outside 1...\(maxRank) (\(Limits.Kind.adapterRank.name); raise it in the model options)")
        }
        guard let a = d.a, let b = d.b else { return PluginHost.fail(.invalidArgument, "add_block_delta: A or B is NULL") }
        guard d.scale.isFinite else { return PluginHost.fail(.invalidArgument, "add_block_delta: scale is not finite") }
        guard (GRAFT_ACTIVATION_IDENTITY...GRAFT_ACTIVATION_SILU).contains(d.activation) else {
            return PluginHost.fail(.unsupported, "add_block_delta: unknown activation \(d.activation)")
        }
        let block = model.blocks[mixture.block]
        let site = [block.gate, block.up, block.down][p]
        let s = model.sites[site]
        if let failed = reserve(floats: rank * (s.inFeatures + s.outFeatures), "a rank-\(rank) block delta at site '\(s.name)'") { return failed }
        let at = HostTensor(zeros: .float32, shape: [rank, s.inFeatures])
        let bt = HostTensor(zeros: .float32, shape: [s.outFeatures, rank])
        at.raw.copyMemory(from: a, byteCount: at.byteCount)
        bt.raw.copyMemory(from: b, byteCount: bt.byteCount)
        blocks[id - 1].deltas[expert][p] = CoreAdapter.LowRank(site: site, rank: rank, a: at, b: bt, scale: d.scale,
                                                               activation: d.activation, gate: nil, gateContext: nil)
        return 0
    }
}

// The MoE-LoRA plugin (Plugins/MoELoRA) against the fake host of FakeHost.swift: entry, claims, and
// the refusal of hosts without add_router (plugin ABI 1.0, or a NULL slot). Loading and numbers
// go through the real host in GraftCoreTests/MoELoRAPluginTests.swift (the fake host has no routers).
import CGraftPlugin
import Foundation
import Testing

let moePlugin = Result { try LoadedPlugin("GraftPluginMoELoRA") }

/// Plugin tables (and the host tables their ctx points at) live for the whole process, as in the
/// real host, which never unloads a plugin: tests that make extra ones keep them here, so that
/// LeakSanitizer (scripts/sanitizers.sh asan) sees them reachable rather than leaked.
nonisolated(unsafe) var processLifetimeTables: [UnsafeRawPointer] = []

@Suite("MoE-LoRA plugin with a fake host", .serialized)
struct MoELoRAFakeHostTests {
    @Test func entryAndClaims() throws {
        let moe = try moePlugin.get()
        #expect(moe.table.pointee.abi_version == UInt32(GRAFT_PLUGIN_ABI_MAJOR) << 16 | UInt32(GRAFT_PLUGIN_ABI_MINOR))
        #expect(String(cString: moe.table.pointee.name) == "moe-lora")
        #expect(moe.claims(Paths.adapters + "/bert/moe_topk2") == 1)
        #expect(moe.claims(Paths.adapters + "/bert/moe_softmax_r1/") == 1)
        #expect(moe.claims(Paths.adapters + "/bert/lora_qv_r8") == 0)
        #expect(moe.claims(Paths.adapters + "/bert/moe_topk2/adapter_config.json") == 0)
        #expect(moe.claims("/nonexistent") == 0)
        // And the LoRA plugin leaves MoE directories alone.
        #expect(try loraPlugin.get().claims(Paths.adapters + "/bert/moe_topk2") == 0)
    }

    @Test func entryRefusesAnotherMajorOrATinyTable() throws {
        let moe = try moePlugin.get()
        var other = makeHostAPI(abiVersion: 2 << 16)
        hostLog = []
        #expect(moe.entry(&other) == nil)
        #expect(hostLog.last?.contains("host has 2.0") == true)
        var small = makeHostAPI()
        small.struct_size = 16
        #expect(moe.entry(&small) == nil)
    }

    /// A 1.0 host (table ends before add_router) gets the plugin, and `load` says routers need 1.1.
    @Test func loadRefusesHostsWithoutRouters() throws {
        let moe = try moePlugin.get()
        // The plugin keeps the host pointer in its table's ctx: these tables live for the whole run.
        let v10 = UnsafeMutablePointer<graft_host_api>.allocate(capacity: 1)
        v10.initialize(to: makeHostAPI(abiVersion: UInt32(GRAFT_PLUGIN_ABI_MAJOR) << 16))
        v10.pointee.struct_size = UInt32(MemoryLayout<graft_host_api>.offset(of: \graft_host_api.add_router)!)
        let nullSlot = UnsafeMutablePointer<graft_host_api>.allocate(capacity: 1)
        nullSlot.initialize(to: makeHostAPI())   // the fake host has no add_router: NULL
        for (host, fragments) in [(v10, ["plugin ABI 1.1", "speaks 1.0"]), (nullSlot, ["plugin ABI 1.1", "add_router NULL"])] {
            let table = try #require(moe.entry(host))
            processLifetimeTables += [UnsafeRawPointer(table), UnsafeRawPointer(host)]
            let builder = FakeBuilder(sites: bertSites)
            hostError = ""
            let status = table.pointee.load!(table.pointee.ctx, Paths.adapters + "/bert/moe_topk2", builder.pointer)
            #expect(status == GRAFT_PLUGIN_UNSUPPORTED)
            #expect(fragments.allSatisfy { hostError.contains($0) }, "\(hostError)")
            #expect(builder.terms.isEmpty)
        }
    }
}

@Suite("MixLoRA checkpoints in the MoE-LoRA plugin with a fake host", .serialized)
struct MixLoRAFakeHostTests {
    static let mixlora = Paths.adapters + "/../mixlora/llama"

    @Test func claimsMixLoRADirectories() throws {
        let moe = try moePlugin.get()
        #expect(moe.claims(Self.mixlora + "/mixlora_e4_top2") == 1)
        #expect(moe.claims(Self.mixlora + "/mixlora_e3_top1_gelu/") == 1)
        #expect(try loraPlugin.get().claims(Self.mixlora + "/mixlora_e4_top2") == 0)
    }

    /// A 1.1 host (routers, no block mixtures) gets the plugin; loading MixLoRA says blocks need 1.2.
    @Test func loadRefusesHostsWithoutBlockMixtures() throws {
        let moe = try moePlugin.get()
        let v11 = UnsafeMutablePointer<graft_host_api>.allocate(capacity: 1)   // lives for the run: the table keeps it
        v11.initialize(to: makeHostAPI(abiVersion: UInt32(GRAFT_PLUGIN_ABI_MAJOR) << 16 | 1))
        v11.pointee.struct_size = UInt32(MemoryLayout<graft_host_api>.offset(of: \graft_host_api.add_block_mixture)!)
        let table = try #require(moe.entry(v11))
        processLifetimeTables += [UnsafeRawPointer(table), UnsafeRawPointer(v11)]
        let builder = FakeBuilder(sites: bertSites)
        hostError = ""
        let status = table.pointee.load!(table.pointee.ctx, Self.mixlora + "/mixlora_e4_top2", builder.pointer)
        #expect(status == GRAFT_PLUGIN_UNSUPPORTED)
        #expect(["plugin ABI 1.2", "speaks 1.1"].allSatisfy { hostError.contains($0) }, "\(hostError)")
        #expect(builder.terms.isEmpty)
    }
}

// The ModalityGate plugin (Plugins/ModalityGate) against the fake host of FakeHost.swift: entry,
// claims, hard gates (terms only, no router) and the refusal of hosts older than what a config
// needs (routers: ABI 1.1 with add_router; modality groups: ABI 1.2). Numbers go through the real
// host in GraftCoreTests/ModalityGatePluginTests.swift.
import CGraftPlugin
import Foundation
import Testing

let modalityGatePlugin = Result { try LoadedPlugin("GraftPluginModalityGate") }

@Suite("ModalityGate plugin with a fake host", .serialized)
struct ModalityGateFakeHostTests {
    static let root = Paths.root + "/Tests/Fixtures/modality_gate"

    @Test func entryAndClaims() throws {
        let mg = try modalityGatePlugin.get()
        #expect(String(cString: mg.table.pointee.name) == "modality-gate")
        #expect(mg.claims(Self.root + "/mg_moma_top1") == 1)
        #expect(mg.claims(Self.root + "/mg_hard_image") == 1)
        #expect(mg.claims(Self.root + "/lora_m0") == 0)
        #expect(mg.claims(Paths.adapters + "/bert/moe_topk2") == 0)
        #expect(try moePlugin.get().claims(Self.root + "/mg_moma_top1") == 0)
        #expect(try loraPlugin.get().claims(Self.root + "/mg_hard_image") == 0)
    }

    /// Hard gates need no router: one term per expert per module, A and B from the file.
    @Test func hardGatesAddTermsOnly() throws {
        let mg = try modalityGatePlugin.get()
        let (status, builder, error) = mg.load(Self.root + "/mg_hard_three", sites: bertSites)
        #expect(status == GRAFT_PLUGIN_OK, "\(error)")
        #expect(builder.terms.count == 4 * 3 && builder.terms.allSatisfy { $0.rank == 4 && $0.scale == 2 })
    }

    /// Routed configs on a 1.1 host (add_router but no expert_modalities) are refused, naming 1.2.
    @Test func routedGroupsNeedABI12() throws {
        let mg = try modalityGatePlugin.get()
        let v11 = UnsafeMutablePointer<graft_host_api>.allocate(capacity: 1)   // lives for the run (ctx)
        v11.initialize(to: makeHostAPI(abiVersion: UInt32(GRAFT_PLUGIN_ABI_MAJOR) << 16 | 1))
        v11.pointee.add_router = { _, _, id in id?.pointee = 1; return GRAFT_PLUGIN_OK }
        let table = try #require(mg.entry(v11))
        processLifetimeTables += [UnsafeRawPointer(table), UnsafeRawPointer(v11)]   // as the real host: never freed
        let builder = FakeBuilder(sites: bertSites)
        hostError = ""
        let status = table.pointee.load!(table.pointee.ctx, Self.root + "/mg_moiie_top2", builder.pointer)
        #expect(status == GRAFT_PLUGIN_UNSUPPORTED)
        #expect(hostError.contains("plugin ABI 1.2") && hostError.contains("speaks 1.1"), "\(hostError)")
        #expect(builder.terms.isEmpty)
    }
}

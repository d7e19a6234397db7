// The VLoRA plugin (Plugins/VLoRA) against the fake host of FakeHost.swift: entry and claims,
// the generator declaration it makes (sites, ranks, scales, output names, the fixed factor's
// values) through a recording add_generator, and the refusal of hosts without add_generator
// (plugin ABI 1.1, or a NULL slot). Numbers go through the real host in
// GraftCoreTests/VLoRATests.swift.
import CGraftPlugin
import Foundation
import Testing

let vloraPlugin = Result { try LoadedPlugin("GraftPluginVLoRA") }

/// One declared term, as the recording add_generator saw it.
struct DeclaredTerm {
    let site: Int
    let rank: Int
    let scale: Float
    let aOutput: String?
    let bOutput: String?
    let aFixed: [Float]?
    let bFixed: [Float]?
}

nonisolated(unsafe) var declared: (model: String, aux: String, terms: [DeclaredTerm])?

@Suite("VLoRA plugin with a fake host", .serialized)
struct VLoRAFakeHostTests {
    static let fixture = Paths.root + "/Tests/Fixtures/vlora/llama_qv_r4"

    @Test func entryAndClaims() throws {
        let v = try vloraPlugin.get()
        #expect(String(cString: v.table.pointee.name) == "vlora")
        #expect(v.claims(Self.fixture) == 1)
        #expect(v.claims(Self.fixture + "/") == 1)
        #expect(v.claims(Paths.adapters + "/llama/lora_qvo_r8") == 0)
        #expect(v.claims(Self.fixture + "/generator.onnx") == 0)
        #expect(try loraPlugin.get().claims(Self.fixture) == 0)
    }

    /// The declaration matches adapter_config.json and adapter_model.safetensors.
    @Test func declaresTheGenerator() throws {
        let v = try vloraPlugin.get()
        let host = UnsafeMutablePointer<graft_host_api>.allocate(capacity: 1)
        host.initialize(to: makeHostAPI())
        host.pointee.add_generator = { _, g in
            guard let g else { return GRAFT_PLUGIN_INVALID_ARGUMENT }
            let terms = (0..<Int(g.pointee.term_count)).map { i -> DeclaredTerm in
                let t = g.pointee.terms[i]
                let inF = Int(llamaSites[Int(t.site)].inFeatures), outF = Int(llamaSites[Int(t.site)].outFeatures)
                return DeclaredTerm(site: Int(t.site), rank: Int(t.rank), scale: t.scale,
                                    aOutput: t.a_output.map { String(cString: $0) }, bOutput: t.b_output.map { String(cString: $0) },
                                    aFixed: t.a_fixed.map { Array(UnsafeBufferPointer(start: $0, count: Int(t.rank) * inF)) },
                                    bFixed: t.b_fixed.map { Array(UnsafeBufferPointer(start: $0, count: outF * Int(t.rank))) })
            }
            declared = (String(cString: g.pointee.model_path), String(cString: g.pointee.aux_input), terms)
            return GRAFT_PLUGIN_OK
        }
        let table = try #require(v.entry(host))
        let builder = FakeBuilder(sites: llamaSites)
        hostError = ""
        declared = nil
        let status = table.pointee.load!(table.pointee.ctx, Self.fixture, builder.pointer)
        #expect(status == GRAFT_PLUGIN_OK, "\(hostError)")
        let d = try #require(declared)
        #expect(d.model == "generator.onnx" && d.aux == "image_features")
        #expect(d.terms.map(\.site) == [0, 2, 4, 6])
        #expect(d.terms.map(\.rank) == [4, 4, 4, 4] && d.terms.map(\.scale) == [0.5, 0.25, 0.5, 0.25])
        for t in d.terms {
            let module = llamaSites[t.site].name
            #expect(t.aOutput == "\(module).lora_A" && t.aFixed == nil)
            if module == "model.layers.1.self_attn.v_proj" {
                let want = try #require(TestSafetensors(path: Self.fixture + "/adapter_model.safetensors")?.values("\(module).lora_B"))
                #expect(t.bOutput == nil && t.bFixed == want)
            } else {
                #expect(t.bOutput == "\(module).lora_B" && t.bFixed == nil)
            }
        }
        #expect(builder.terms.isEmpty)
    }

    /// A 1.1 host (table ends before add_generator) or a NULL slot: `load` says generated weights
    /// need 1.2, and nothing is declared.
    @Test func loadRefusesHostsWithoutGenerators() throws {
        let v = try vloraPlugin.get()
        let v11 = UnsafeMutablePointer<graft_host_api>.allocate(capacity: 1)
        v11.initialize(to: makeHostAPI(abiVersion: UInt32(GRAFT_PLUGIN_ABI_MAJOR) << 16 | 1))
        v11.pointee.struct_size = UInt32(MemoryLayout<graft_host_api>.offset(of: \graft_host_api.add_generator)!)
        let nullSlot = UnsafeMutablePointer<graft_host_api>.allocate(capacity: 1)
        nullSlot.initialize(to: makeHostAPI())   // the fake host has no add_generator: NULL
        for (host, fragments) in [(v11, ["plugin ABI 1.2", "speaks 1.1"]), (nullSlot, ["plugin ABI 1.2"])] {
            let table = try #require(v.entry(host))
            let builder = FakeBuilder(sites: llamaSites)
            hostError = ""
            let status = table.pointee.load!(table.pointee.ctx, Self.fixture, builder.pointer)
            #expect(status == GRAFT_PLUGIN_UNSUPPORTED)
            #expect(fragments.allSatisfy { hostError.contains($0) }, "\(hostError)")
        }
    }
}

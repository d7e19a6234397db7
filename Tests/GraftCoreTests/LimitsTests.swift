import Foundation
import Testing
@testable import GraftCore

/// The caps of `Limits` (docs/ROBUSTNESS.md, "Limits"): each one set just below what a fixture
/// needs fails with `limitExceeded` and a message naming the cap (GRAFT_LIMIT_*), set exactly at
/// what it needs loads, and the defaults load and run the fixtures.
@Suite struct LimitsTests {
    static let bert = "\(fixturesRoot)/bert_dynamo/model.onnx"

    static func inputs(_ model: CoreModel) throws -> [String: HostTensor] {
        var inputs: [String: HostTensor] = [:]
        for d in model.graph.inputs { inputs[d.name] = try Npy.read(path: "\(fixturesRoot)/bert_dynamo/basic/inputs/\(d.name).npy") }
        return inputs
    }

    static func limits(_ change: (inout Limits) -> Void) -> Limits {
        var l = Limits()
        change(&l)
        return l
    }

    @Test func defaultsLoadAndRunTheFixture() throws {
        #expect(Limits() == Limits.defaults)
        let model = try CoreModel(path: Self.bert)
        #expect(model.limits == Limits())
        let out = try CoreSession(model: model).run(try Self.inputs(model))
        #expect(!out.isEmpty)
    }

    /// The weights of bert_dynamo (float32 in external data): one byte under their total is
    /// refused while the file is read, the exact total loads.
    @Test func weightBytesCapTheInitializers() throws {
        // Unfused: the cap applies to what is read and folded; the attention fusion later drops
        // the Reshapes' shape constants it no longer needs.
        let total = try CoreModel(path: Self.bert, fuse: false).graph.initializers.values.reduce(0) { $0 + $1.byteCount }
        #expect(total > 100_000)
        let e = expectError(.limitExceeded, containing: ["GRAFT_LIMIT_WEIGHT_BYTES", "\(total - 1)", "initializers"]) {
            _ = try CoreModel(path: Self.bert, limits: Self.limits { $0.weightBytes = total - 1 })
        }
        #expect(e != nil && e!.code == .limitExceeded, "\(String(describing: e))")
        let exact = try CoreModel(path: Self.bert, limits: Self.limits { $0.weightBytes = total })
        #expect(exact.limits.weightBytes == total)
    }

    /// A small tensor cap refuses the model's intermediate tensors (at load, when symbolic
    /// shape probes or folding compute them, or when the session plans).
    @Test func tensorBytesCapOneAllocation() throws {
        let e = expectError(.limitExceeded, containing: ["GRAFT_LIMIT_TENSOR_BYTES", "more than the limit of 4096"]) {
            let model = try CoreModel(path: Self.bert, limits: Self.limits { $0.tensorBytes = 4096 })
            _ = try CoreSession(model: model).run(try Self.inputs(model))
        }
        #expect(e != nil && e!.code == .limitExceeded, "\(String(describing: e))")
    }

    /// The cap reaches kernel factories: Range folded at load is refused before allocating.
    @Test func tensorBytesCapReachesConstantFolding() throws {
        let node = Node(name: "r", opType: "Range", inputs: ["s", "l", "d"], outputs: ["y"], attributes: [:])
        let args: [HostTensor?] = [HostTensor([Int64(0)], shape: []), HostTensor([Int64(1000)], shape: []), HostTensor([Int64(1)], shape: [])]
        let small = Self.limits { $0.tensorBytes = 7999 }
        let e = expectError(.limitExceeded, containing: ["GRAFT_LIMIT_TENSOR_BYTES", "7999"]) {
            _ = try KernelRegistry.compile(node, inputTypes: args.map { $0.map { TensorType($0.dtype, $0.shape) } }, constants: args,
                                           opset: 17, threads: 1, limits: small)
        }
        #expect(e != nil && e!.code == .limitExceeded, "\(String(describing: e))")
        let fits = try KernelRegistry.compile(node, inputTypes: args.map { $0.map { TensorType($0.dtype, $0.shape) } }, constants: args,
                                              opset: 17, threads: 1, limits: Self.limits { $0.tensorBytes = 8000 })
        #expect(fits.folded?.first?.count == 1000)
    }

    @Test func capsBelowOneAreRefused() throws {
        for kind in Limits.Kind.allCases {
            var l = Limits()
            l[kind] = 0
            let e = expectError(.invalidArgument, containing: [kind.name, "at least 1"]) { _ = try CoreModel(path: Self.bert, limits: l) }
            #expect(e != nil && e!.code == .invalidArgument, "\(kind): \(String(describing: e))")
        }
    }
}

/// Adapter caps, through the real plugins (nested in AdapterFixtureTests to run serialized with
/// the other plugin suites: see MoELoRAPluginTests).
extension AdapterFixtureTests {
    @Suite(.serialized) struct AdapterLimitsTests {
        static let lora = "\(fixturesRoot)/adapters/bert/lora_qv_r8"
        static let ia3 = "\(fixturesRoot)/adapters/bert/ia3"

        static func model(_ change: (inout Limits) -> Void = { _ in }) throws -> CoreModel {
            try CoreModel(path: LimitsTests.bert, limits: LimitsTests.limits(change))
        }

        /// Terms and float32 bytes of a loaded LoRA adapter (no routers or scales).
        static func size(_ a: CoreAdapter) -> (terms: Int, bytes: Int) {
            let terms = a.lowRank.values.flatMap { $0 }
            return (terms.count, terms.reduce(0) { $0 + $1.a.byteCount + $1.b.byteCount })
        }

        @Test func defaultsLoadTheAdapters() throws {
            let model = try Self.model()
            let a = try PluginRegistry.loadAdapter(model: model, path: Self.lora)
            let b = try PluginRegistry.loadAdapter(model: model, path: Self.ia3)
            let session = try CoreSession(model: model)
            try session.setAdapters([(a, 1), (b, 0.5)])
            #expect(!(try session.run(try LimitsTests.inputs(model))).isEmpty)
        }

        @Test func adapterRankCapsEachTerm() throws {
            let e = expectError(.limitExceeded, containing: ["GRAFT_LIMIT_ADAPTER_RANK", "rank 8", "limit of 7"]) {
                _ = try PluginRegistry.loadAdapter(model: try Self.model { $0.adapterRank = 7 }, path: Self.lora)
            }
            #expect(e != nil && e!.code == .limitExceeded, "\(String(describing: e))")
            _ = try PluginRegistry.loadAdapter(model: try Self.model { $0.adapterRank = 8 }, path: Self.lora)
        }

        @Test func adapterTermsAndBytesCapOneAdapter() throws {
            let (terms, bytes) = Self.size(try PluginRegistry.loadAdapter(model: try Self.model(), path: Self.lora))
            #expect(terms >= 2 && bytes > 0)
            let t = expectError(.limitExceeded, containing: ["GRAFT_LIMIT_ADAPTER_TERMS", "has \(terms) terms", "limit of \(terms - 1)"]) {
                _ = try PluginRegistry.loadAdapter(model: try Self.model { $0.adapterTerms = terms - 1 }, path: Self.lora)
            }
            #expect(t != nil && t!.code == .limitExceeded, "\(String(describing: t))")
            _ = try PluginRegistry.loadAdapter(model: try Self.model { $0.adapterTerms = terms }, path: Self.lora)

            let b = expectError(.limitExceeded, containing: ["GRAFT_LIMIT_ADAPTER_BYTES", "holds \(bytes) bytes", "limit of \(bytes - 1)"]) {
                _ = try PluginRegistry.loadAdapter(model: try Self.model { $0.adapterBytes = bytes - 1 }, path: Self.lora)
            }
            #expect(b != nil && b!.code == .limitExceeded, "\(String(describing: b))")
            _ = try PluginRegistry.loadAdapter(model: try Self.model { $0.adapterBytes = bytes }, path: Self.lora)
        }

        @Test func boundAdaptersCapsSetAdaptersAndMixedBatches() throws {
            let model = try Self.model { $0.boundAdapters = 1 }
            let a = try PluginRegistry.loadAdapter(model: model, path: Self.lora)
            let b = try PluginRegistry.loadAdapter(model: model, path: Self.ia3)
            let session = try CoreSession(model: model)
            let e = expectError(.limitExceeded, containing: ["GRAFT_LIMIT_BOUND_ADAPTERS", "2 adapters at once", "limit of 1"]) {
                try session.setAdapters([(a, 1), (b, 1)])
            }
            #expect(e != nil && e!.code == .limitExceeded, "\(String(describing: e))")
            try session.setAdapters([(a, 1)])
            try session.setAdapters([])

            let inputs = try LimitsTests.inputs(model)
            let batch = try #require(inputs.values.first).shape[0]
            #expect(batch >= 2)
            let two = [a, b] + [CoreAdapter?](repeating: nil, count: batch - 2)
            let r = expectError(.limitExceeded, containing: ["GRAFT_LIMIT_BOUND_ADAPTERS", "2 distinct adapters"]) {
                _ = try session.run(inputs, rowAdapters: two)
            }
            #expect(r != nil && r!.code == .limitExceeded, "\(String(describing: r))")
            // The same adapter on every row counts once.
            _ = try session.run(inputs, rowAdapters: [CoreAdapter?](repeating: a, count: batch))
        }
    }
}

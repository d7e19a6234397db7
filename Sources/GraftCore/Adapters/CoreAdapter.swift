import CGraftPlugin

/// An adapter built by a plugin for one model: immutable, reference-counted, shareable by any
/// number of sessions on any threads. Binding it to a session is pointer work.
package final class CoreAdapter: @unchecked Sendable {
    /// One low-rank term `s · B σ(A x)` (gated per token when `gate` is set).
    package struct LowRank: @unchecked Sendable {
        package let site: Int
        package let rank: Int
        package let a: HostTensor            // [rank, in]
        package let b: HostTensor            // [out, rank]
        package let scale: Float
        package let activation: Int32        // GRAFT_ACTIVATION_*
        package let gate: graft_gate_fn?
        package let gateContext: UnsafeMutableRawPointer?
        /// Index into the adapter's `routers` (nil: not routed) and the expert it gates by.
        package var router: Int? = nil
        package var expert: Int = 0
        /// Bit m set: acts only on tokens of modality m; 0: every token.
        package var modalities: UInt32 = 0
    }

    /// A router `z = W x + b` at a site, gated into per-token expert weights.
    package struct Router: Sendable {
        package let site: Int
        package let experts: Int
        package let gate: Int32              // GRAFT_GATE_*
        package let weight: HostTensor       // [experts, in]
        package let bias: HostTensor?        // [experts]
        package let topK: Int
        package let renormalize: Bool
        package let threshold: Float
        /// The site's module name (callers address routers by it).
        package var siteName: String = ""
        /// Per expert, the modalities it serves (bit m: modality m; 0: every token, a shared
        /// expert); nil: every expert serves every token. Since plugin ABI 1.2.
        package var expertModalities: [UInt32]? = nil
    }

    /// A mixture of experts over a whole gated MLP block (graft_block_mixture): the router at
    /// the block's gate site weighs experts that each own the block with low-rank deltas on its
    /// projections, `act` inside (BlockMixtureExecution.swift).
    package struct BlockMixture: Sendable {
        package let block: Int               // index into the model's `blocks`
        package let router: Int              // index into the adapter's `routers`
        package let activation: Int32        // GRAFT_ACTIVATION_*: act(gate) in every expert
        /// deltas[e][p]: expert e's term on projection p (GRAFT_BLOCK_PROJ_*), nil when none.
        /// A term's `site` is that projection's site.
        package var deltas: [[LowRank?]]
    }

    package let name: String
    package let source: String
    package let plugin: String
    /// The model the adapter was built against (sites are per model).
    package let model: ObjectIdentifier
    /// Terms per site index.
    package let lowRank: [Int: [LowRank]]
    /// Routers the low-rank terms refer to (by index).
    package let routers: [Router]
    /// Per-channel scales per site index: on the site's input [in] and output [out].
    package let inputScales: [Int: HostTensor]
    package let outputScales: [Int: HostTensor]
    /// Block mixtures, at most one per block.
    package let blocks: [BlockMixture]
    /// Terms generated per request from auxiliary inputs (VLoRA), or nil.
    package let generator: AdapterGenerator?

    package init(name: String, source: String, plugin: String, model: ObjectIdentifier,
                 lowRank: [Int: [LowRank]], routers: [Router] = [], inputScales: [Int: HostTensor], outputScales: [Int: HostTensor],
                 blocks: [BlockMixture] = [], generator: AdapterGenerator? = nil) {
        self.name = name
        self.source = source
        self.plugin = plugin
        self.model = model
        self.lowRank = lowRank
        self.routers = routers
        self.inputScales = inputScales
        self.outputScales = outputScales
        self.blocks = blocks
        self.generator = generator
    }

    /// Sites the adapter touches, sorted.
    package var sites: [Int] {
        let blockSites = blocks.flatMap { $0.deltas.flatMap { $0.compactMap { $0?.site } } } + blocks.map { routers[$0.router].site }
        return Array(Set(lowRank.keys).union(inputScales.keys).union(outputScales.keys).union(blockSites)).sorted()
    }

    /// Whether the terms are plain linear maps (no gate, no activation): what merging needs.
    package var isMergeable: Bool {
        blocks.isEmpty && lowRank.values.allSatisfy { $0.allSatisfy { $0.gate == nil && $0.router == nil && $0.modalities == 0 && $0.activation == GRAFT_ACTIVATION_IDENTITY } }
    }
}

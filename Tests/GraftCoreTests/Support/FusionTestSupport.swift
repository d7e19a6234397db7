@testable import GraftCore

// Shared by the fusion tests: load one test graph with and without the fusion pass, feed both
// the same random inputs, and count what the pass wrote.

/// Deterministic uniform floats (SplitMix64) for test inputs.
struct TestRandom {
    private var generator: SplitMix64
    init(seed: UInt64) { generator = SplitMix64(seed: seed) }
    mutating func next() -> UInt64 { generator.next() }
    /// Uniform in [lo, hi).
    mutating func float(_ lo: Float, _ hi: Float) -> Float { lo + (hi - lo) * generator.unit() }
    mutating func floats(_ n: Int, _ lo: Float = -3, _ hi: Float = 3) -> [Float] { (0..<n).map { _ in float(lo, hi) } }
    mutating func tensor(_ shape: [Int], _ lo: Float = -3, _ hi: Float = 3) -> HostTensor {
        HostTensor(floats(Shape.product(shape), lo, hi), shape: shape)
    }
}

/// A test graph loaded twice, fused and unfused.
struct FusionPair {
    let fused: CoreModel
    let plain: CoreModel

    init(_ model: OnnxModel) throws {
        let bytes = model.encode()
        fused = try bytes.withUnsafeBytes { try CoreModel(bytes: $0, fuse: true) }
        plain = try bytes.withUnsafeBytes { try CoreModel(bytes: $0, fuse: false) }
    }

    /// Nodes of the fused graph with this `graft` op type.
    func count(_ op: String) -> Int { fused.graph.nodes.filter { $0.domain == Fusion.domain && $0.opType == op }.count }
    /// Nodes the pass removed (unfused node count minus fused).
    var removed: Int { plain.graph.nodes.count - fused.graph.nodes.count }

    /// Steps of each model's plan for these inputs (fused, plain).
    func steps(_ inputs: [String: HostTensor]) throws -> (fused: Int, plain: Int) {
        func n(_ m: CoreModel) throws -> Int {
            let types = m.graph.inputs.map { TensorType(inputs[$0.name]!.dtype, inputs[$0.name]!.shape) }
            return try Plan.build(graph: m.graph, inputTypes: types, threads: 1, sites: m.sites, blocks: m.blocks).stepCount
        }
        return (try n(fused), try n(plain))
    }

    /// Largest |fused − plain| over every graph output, running both with `threads`.
    func maxDiff(_ inputs: [String: HostTensor], threads: Int = 1) throws -> Float {
        let a = try CoreSession(model: fused, threads: threads).run(inputs)
        let b = try CoreSession(model: plain, threads: threads).run(inputs)
        var d: Float = 0
        for out in plain.graph.outputs {
            guard let x = a[out.name], let y = b[out.name], x.shape == y.shape else { return .infinity }
            d = max(d, maxAbsDiff(x, y))
        }
        return d
    }
}

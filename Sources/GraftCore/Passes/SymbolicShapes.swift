/// Shape inference with symbolic dimensions (`batch`, `sequence`), reusing the kernels' own
/// shape rules instead of a second copy of them: the graph is compiled for two probe
/// assignments of the symbols (distinct primes), and each dimension of each value is read back
/// as a constant (same in both probes), a symbol (equal to that symbol's probe values), or a
/// simple expression of symbols (`a*b`, `a+c`, `a-c`). What fits none of these is unknown.
package enum SymbolicShapes {
    /// Probe values for the k-th symbol: distinct primes whose differences between the two
    /// probes are distinct too, so that products and offsets of different symbols don't collide.
    static let firstProbe = [3, 5, 7, 11, 13, 17, 19, 23]
    static let secondProbe = [29, 37, 43, 53, 61, 71, 79, 89]

    /// Dims of every value of `graph`, or nil when the graph cannot be planned for the probe
    /// sizes (more than eight symbols, or shape rules that constrain the symbols).
    package static func infer(_ graph: Graph) -> [String: [Dim]]? { inferTypes(graph)?.dims }

    /// `infer`, plus each value's element type (the same in both probes; the fusion pass checks
    /// operands are float32 with it).
    package static func inferTypes(_ graph: Graph) -> (dims: [String: [Dim]], dtypes: [String: DType])? {
        var symbols: [String] = []
        func probeTypes(_ probe: [Int]) -> [TensorType]? {
            var types: [TensorType] = []
            for input in graph.inputs {
                guard let dims = input.dims else { return nil }
                var shape: [Int] = []
                for (i, d) in dims.enumerated() {
                    switch d {
                    case .fixed(let n): shape.append(n)
                    case .symbol, .unknown:
                        // An unnamed dim is its own symbol, named after its input and axis.
                        let name: String
                        if case .symbol(let s) = d { name = s } else { name = "\(input.name).\(i)" }
                        if !symbols.contains(name) { symbols.append(name) }
                        let k = symbols.firstIndex(of: name)!
                        guard k < probe.count else { return nil }
                        shape.append(probe[k])
                    }
                }
                types.append(TensorType(input.dtype, shape))
            }
            return types
        }
        guard let first = probeTypes(firstProbe), let second = probeTypes(secondProbe),
              let a = try? Plan.compile(graph: graph, inputTypes: first, threads: 1),
              let b = try? Plan.compile(graph: graph, inputTypes: second, threads: 1)
        else { return nil }

        var result: [String: [Dim]] = [:]
        var dtypes: [String: DType] = [:]
        for (name, ta) in a.types {
            guard let tb = b.types[name], ta.shape.count == tb.shape.count else { continue }
            result[name] = zip(ta.shape, tb.shape).map { x, y in dim(x, y, symbols) }
            if ta.dtype == tb.dtype { dtypes[name] = ta.dtype }
        }
        return (result, dtypes)
    }

    private static func dim(_ x: Int, _ y: Int, _ symbols: [String]) -> Dim {
        if x == y { return .fixed(x) }
        for (k, s) in symbols.enumerated() where x == firstProbe[k] && y == secondProbe[k] {
            return .symbol(s)
        }
        for i in symbols.indices {
            for j in symbols.indices where j > i {
                if x == firstProbe[i] * firstProbe[j] && y == secondProbe[i] * secondProbe[j] {
                    return .symbol("\(symbols[i])*\(symbols[j])")
                }
            }
        }
        for (k, s) in symbols.enumerated() {
            let (p, q) = (firstProbe[k], secondProbe[k])
            if x - p == y - q { return .symbol(x > p ? "\(s)+\(x - p)" : "\(s)-\(p - x)") }
            if x % p == 0 && y % q == 0 && x / p == y / q { return .symbol("\(x / p)*\(s)") }
        }
        return .unknown
    }
}

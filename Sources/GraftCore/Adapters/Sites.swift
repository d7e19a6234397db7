/// A linear layer of the backbone that adapters attach to: a MatMul or Gemm whose weight is a
/// constant, named after the module it came from in the source framework.
package struct Site: Sendable, Equatable {
    package enum WeightLayout: Sendable, Equatable {
        /// ONNX MatMul / Gemm with transB = 0: W is [in, out], y = x W.
        case inOut
        /// Gemm with transB = 1 (PyTorch's own layout): W is [out, in], y = x Wᵀ.
        case outIn
    }

    package let index: Int
    /// Source module name, e.g. `encoder.layer.0.attention.self.query`.
    package let name: String
    package let nodeName: String
    /// The node's output value: where adapter terms are added.
    package let output: String
    /// The node's activation input x.
    package let input: String
    /// The initializer holding W.
    package let weight: String
    package let layout: WeightLayout
    package let inFeatures: Int
    package let outFeatures: Int
}

/// Finds the sites of a graph and resolves their module names, in order of reliability:
/// 1. a user site map (node or output name → module);
/// 2. an initializer name that reads as a parameter path (`...query.weight`);
/// 3. the dynamo exporter's `pkg.torch.onnx.name_scopes` node metadata;
/// 4. the TorchScript exporter's node-name scope (`/encoder/layer.0/attention/self/query/MatMul`).
package enum SiteDiscovery {
    package static func discover(_ g: Graph, siteMap: [String: String] = [:]) throws -> [Site] {
        var sites: [Site] = []
        var used: [String: Int] = [:]
        for node in g.nodes where node.isDefaultDomain {
            guard node.opType == "MatMul" || node.opType == "Gemm", node.inputs.count >= 2,
                  let w = g.initializers[node.inputs[1]], w.rank == 2, w.dtype == .float32,
                  let output = node.outputs.first, !output.isEmpty
            else { continue }
            var layout = Site.WeightLayout.inOut
            if node.opType == "Gemm" {
                guard node.int("transA", default: 0) == 0 else { continue }
                if node.int("transB", default: 0) != 0 { layout = .outIn }
            }
            let (inF, outF) = layout == .inOut ? (w.shape[0], w.shape[1]) : (w.shape[1], w.shape[0])
            var name = siteMap[node.name] ?? siteMap[output] ?? moduleName(node: node, weight: node.inputs[1])
            // Two sites from one module (a Linear applied twice) get distinct names.
            if let n = used[name] {
                used[name] = n + 1
                name += "#\(n + 1)"
            } else {
                used[name] = 1
            }
            sites.append(Site(index: sites.count, name: name, nodeName: node.name, output: output, input: node.inputs[0],
                              weight: node.inputs[1], layout: layout, inFeatures: inF, outFeatures: outF))
        }
        let matched = Set(sites.flatMap { [$0.nodeName, $0.output] })
        let unmatched = siteMap.keys.filter { !matched.contains($0) }.sorted()
        guard unmatched.isEmpty else {
            throw GraftError(.invalidArgument, "the site map names \(unmatched.prefix(5).map { "'\($0)'" }.joined(separator: ", ")), which \(unmatched.count == 1 ? "is" : "are") not a linear layer of the model (a MatMul or Gemm node, by node or output name, with a constant weight)")
        }
        return sites
    }

    /// Reads a site map file: a JSON object from node (or output) names to module names,
    /// e.g. `{"/encoder/MatMul_3": "encoder.layer.0.attention.self.query"}`.
    package static func readSiteMap(path: String) throws -> [String: String] {
        let file = try MappedFile(path: path)
        let json: JSONValue
        do { json = try JSONValue.parse(file.bytes) } catch let e as GraftError {
            throw GraftError(.invalidArgument, "site map '\(path)': \(e.message)")
        }
        guard case .object(let members) = json else {
            throw GraftError(.invalidArgument, "site map '\(path)' must be a JSON object from node names to module names")
        }
        var map: [String: String] = [:]
        for (k, v) in members {
            guard let name = v.string, !name.isEmpty else {
                throw GraftError(.invalidArgument, "site map '\(path)': the value for '\(k)' must be a non-empty module name string")
            }
            map[k] = name
        }
        return map
    }

    static func moduleName(node: Node, weight: String) -> String {
        if weight.hasSuffix(".weight"), !weight.contains("::"), !weight.contains("/") {
            return String(weight.dropLast(".weight".count))
        }
        if let scopes = node.metadata["pkg.torch.onnx.name_scopes"], let m = moduleFromNameScopes(scopes), !m.isEmpty {
            return m
        }
        if node.name.hasPrefix("/") {
            let parts = node.name.split(separator: "/").dropLast()
            if !parts.isEmpty { return parts.joined(separator: ".") }
        }
        return node.name.isEmpty ? weight : node.name
    }

    /// The dynamo exporter writes a Python list literal of nested scopes, outermost first,
    /// ending with the op's local name: `['', 'model', 'model.encoder', ..., 'linear']`.
    /// The module is the deepest entry that extends the chain before it.
    static func moduleFromNameScopes(_ text: String) -> String? {
        var entries: [String] = []
        var current: String?
        var quote: Character?
        for c in text {
            if let q = quote {
                if c == q { entries.append(current ?? ""); current = nil; quote = nil } else { current!.append(c) }
            } else if c == "'" || c == "\"" {
                quote = c
                current = ""
            }
        }
        guard !entries.isEmpty else { return nil }
        var module = ""
        for e in entries where !e.isEmpty && (module.isEmpty || e.hasPrefix(module + ".")) {
            module = e
        }
        return module
    }
}

extension Array where Element == Site {
    /// The site whose name equals `module` or ends with "." + `module`; an error naming the
    /// closest sites when none or several match.
    package func find(module: String) throws -> Site {
        let matches = filter { $0.name == module || $0.name.hasSuffix("." + module) }
        if matches.count == 1 { return matches[0] }
        if let exact = matches.first(where: { $0.name == module }) { return exact }
        if matches.isEmpty {
            let closest = sorted { editDistance($0.name, module) < editDistance($1.name, module) }.prefix(3).map { "'\($0.name)'" }
            throw GraftError(.invalidArgument, "no linear layer of the model is named '\(module)'; closest sites: \(closest.joined(separator: ", "))")
        }
        throw GraftError(.invalidArgument, "'\(module)' matches several sites (\(matches.prefix(4).map { "'\($0.name)'" }.joined(separator: ", "))); use a longer name")
    }
}

/// Levenshtein distance on UTF-8 bytes (site names are ASCII in practice).
func editDistance(_ a: String, _ b: String) -> Int {
    let x = Array(a.utf8), y = Array(b.utf8)
    if x.isEmpty { return y.count }
    var prev = Array(0...y.count)
    var cur = prev
    for i in 1...x.count {
        cur[0] = i
        if !y.isEmpty {
            for j in 1...y.count {
                cur[j] = Swift.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x[i - 1] == y[j - 1] ? 0 : 1))
            }
        }
        swap(&prev, &cur)
    }
    return prev[y.count]
}

import Testing
@testable import GraftCore

/// Row tables (`ONNXImporter.rowTables`): an initializer read only as a Gather's data is used in
/// place from the mapped file even when its bytes are unaligned (torch.onnx.export leaves word
/// embeddings at any offset), and gathers the same rows as a copy would. One also read by
/// anything else is copied to aligned storage as before. The debug build's alignment assert in
/// `HostTensor.pointer` fails these tests if any step reads the in-place table through a typed
/// pointer.
@Suite struct RowTableTests {
    static let vocab = 64, width = 24

    /// `[vocab, width]` floats, every value distinct.
    static let table: [Float] = (0..<(vocab * width)).map { Float($0) * 0.25 - 100 }

    /// ids [n] → Gather(table, ids) → rows [n, width]; with `alsoMatMul`, the table is also the
    /// left operand of MatMul(table, w): [vocab, width] · [width, 1] → scores [vocab, 1].
    static func model(tableName: String, alsoMatMul: Bool) -> OnnxModel {
        var m = OnnxModel()
        m.inputs = [OnnxValue(name: "ids", elemType: 7, dims: ["n"])]
        m.outputs = [OnnxValue(name: "rows", elemType: 1, dims: nil)]
        m.nodes = [OnnxNode(op: "Gather", inputs: [tableName, "ids"], outputs: ["rows"])]
        m.initializers = [.floats(tableName, table, [Int64(vocab), Int64(width)])]
        if alsoMatMul {
            m.initializers.append(.floats("w", (0..<width).map { Float($0 % 5) - 2 }, [Int64(width), 1]))
            m.nodes.append(OnnxNode(op: "MatMul", inputs: [tableName, "w"], outputs: ["scores"]))
            m.outputs.append(OnnxValue(name: "scores", elemType: 1, dims: nil))
        }
        return m
    }

    /// The model with a table name chosen so that the table's raw bytes start at an offset that
    /// is not a multiple of 4 in the encoded file (the mapping itself is page-aligned).
    static func unalignedEncoding(alsoMatMul: Bool) -> (bytes: [UInt8], name: String) {
        let first = table.prefix(8).flatMap { v in withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } }
        for pad in 0..<4 {
            let name = "embeddings" + String(repeating: "_", count: pad)
            let bytes = model(tableName: name, alsoMatMul: alsoMatMul).encode()
            guard let at = (0...(bytes.count - first.count)).first(where: { Array(bytes[$0..<$0 + first.count]) == first }) else { continue }
            if at % 4 != 0 { return (bytes, name) }
        }
        fatalError("no table name puts the raw data at an unaligned offset")
    }

    @Test(arguments: [false, true])
    func gatherOnlyTableIsUsedInPlace(alsoMatMul: Bool) throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let (bytes, name) = Self.unalignedEncoding(alsoMatMul: alsoMatMul)
        let core = try loadModel(bytes, in: dir)
        let stored = try #require(core.graph.initializers[name])
        let misaligned = Int(bitPattern: stored.raw) % 4 != 0
        // In place (unaligned) when only the Gather reads it; copied (aligned) when the MatMul
        // reads it too.
        #expect(misaligned == !alsoMatMul, "table at \(stored.raw), read by a MatMul too: \(alsoMatMul)")
        let ids: [Int64] = [0, 63, 5, -1, 5, 17]
        for threads in [1, 2] {
            let out = try CoreSession(model: core, threads: threads).run(["ids": HostTensor(ids, shape: [ids.count])])
            let rows = try #require(out["rows"])
            #expect(rows.shape == [ids.count, Self.width])
            let want = ids.flatMap { id -> [Float] in
                let r = Int(id < 0 ? id + Int64(Self.vocab) : id)
                return Array(Self.table[r * Self.width..<(r + 1) * Self.width])
            }
            #expect(rows.floats() == want)
            if alsoMatMul {
                let scores = try #require(out["scores"]).floats()
                let w = (0..<Self.width).map { Float($0 % 5) - 2 }
                let expected = (0..<Self.vocab).map { r in (0..<Self.width).reduce(Float(0)) { $0 + Self.table[r * Self.width + $1] * w[$1] } }
                #expect(zip(scores, expected).allSatisfy { abs($0 - $1) <= 1e-3 * max(1, abs($1)) })
            }
        }
    }
}

import Testing
@testable import GraftCore

/// Import and graph validation on models built in the test: each malformed graph must be
/// refused with a message naming the node or tensor at fault.
@Suite struct ImportValidationTests {
    /// y = (x + b) * x, with b an initializer.
    static func tinyModel() -> OnnxModel {
        OnnxModel(
            nodes: [
                OnnxNode(op: "Add", inputs: ["x", "b"], outputs: ["s"], name: "add0"),
                OnnxNode(op: "Mul", inputs: ["s", "x"], outputs: ["y"], name: "mul0"),
            ],
            inputs: [OnnxValue(name: "x", dims: ["batch", 3])],
            outputs: [OnnxValue(name: "y", dims: ["batch", 3])],
            initializers: [.floats("b", [1, 2, 3], [3])])
    }

    func check(_ model: OnnxModel, _ code: GraftError.Code, _ fragments: [String]) {
        let dir = TempDir()
        defer { dir.cleanup() }
        let problem = expectError(code, containing: fragments) { _ = try loadModel(model.encode(), in: dir) }
        #expect(problem?.code == code, "\(problem?.message ?? "loaded without error")")
    }

    @Test func tinyModelImports() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let m = try loadModel(Self.tinyModel().encode(), in: dir)
        #expect(m.graph.inputs.map(\.name) == ["x"])
        #expect(m.graph.inputs[0].dims == [.symbol("batch"), .fixed(3)])
        #expect(m.graph.outputs.map(\.name) == ["y"])
        #expect(m.graph.nodes.map(\.opType) == ["Add", "Mul"])
        #expect(m.graph.initializers["b"]?.floats() == [1, 2, 3])
    }

    @Test func nodesOutOfOrderAreSorted() throws {
        var model = Self.tinyModel()
        model.nodes.reverse()
        let dir = TempDir()
        defer { dir.cleanup() }
        let m = try loadModel(model.encode(), in: dir)
        #expect(m.graph.nodes.map(\.name) == ["add0", "mul0"])
    }

    @Test func danglingInputIsNamed() {
        var model = Self.tinyModel()
        model.nodes[1].inputs = ["s", "nowhere"]
        check(model, .invalidModel, ["mul0", "nowhere"])
    }

    @Test func missingInitializerIsNamed() {
        var model = Self.tinyModel()
        model.initializers = []
        check(model, .invalidModel, ["add0", "'b'"])
    }

    @Test func cycleIsRefused() {
        var model = Self.tinyModel()
        model.nodes = [
            OnnxNode(op: "Add", inputs: ["x", "t"], outputs: ["s"], name: "a"),
            OnnxNode(op: "Mul", inputs: ["s", "x"], outputs: ["t"], name: "b"),
            OnnxNode(op: "Mul", inputs: ["t", "x"], outputs: ["y"], name: "c"),
        ]
        check(model, .invalidModel, ["cycle"])
    }

    @Test func duplicateOutputIsRefused() {
        var model = Self.tinyModel()
        model.nodes.append(OnnxNode(op: "Add", inputs: ["x", "x"], outputs: ["s"], name: "again"))
        check(model, .invalidModel, ["again", "'s'", "already defined"])
    }

    @Test func unsupportedOperatorNamesTypeDomainAndNode() {
        var model = Self.tinyModel()
        model.nodes[1] = OnnxNode(op: "FancyOp", inputs: ["s", "x"], outputs: ["y"], name: "fancy_node", domain: "com.example")
        check(model, .unsupported, ["FancyOp", "com.example", "fancy_node"])
    }

    @Test func outputNotProducedIsRefused() {
        var model = Self.tinyModel()
        model.outputs = [OnnxValue(name: "zzz", dims: [3])]
        check(model, .invalidModel, ["zzz"])
    }

    @Test func rawDataShorterThanDims() {
        var model = Self.tinyModel()
        model.initializers = [OnnxTensor(name: "b", dims: [3], raw: [0, 0, 0, 0])]
        check(model, .invalidModel, ["'b'", "4 bytes", "12"])
    }

    @Test func hugeClaimInTinyFileIsRefusedBeforeAllocating() {
        var model = Self.tinyModel()
        model.initializers = [OnnxTensor(name: "b", dims: [1 << 31], raw: [0, 0, 0, 0])]
        check(model, .invalidModel, ["'b'", "bytes"])
    }

    @Test func overflowingDimsAreRefused() {
        var model = Self.tinyModel()
        model.initializers = [OnnxTensor(name: "b", dims: [1 << 40, 1 << 40], raw: [])]
        check(model, .limitExceeded, ["'b'"])
    }

    @Test func negativeDimIsRefused() {
        var model = Self.tinyModel()
        model.initializers = [OnnxTensor(name: "b", dims: [-3], raw: [])]
        check(model, .invalidModel, ["'b'", "-3"])
    }

    @Test func unknownDataTypeIsRefused() {
        var model = Self.tinyModel()
        model.initializers = [OnnxTensor(name: "b", dataType: 8, dims: [3], raw: [])]
        check(model, .unsupported, ["'b'", "string"])
        model.initializers = [OnnxTensor(name: "b", dataType: 99, dims: [3], raw: [])]
        check(model, .unsupported, ["'b'", "99"])
    }

    @Test func float16InputIsRefusedClearly() {
        var model = Self.tinyModel()
        model.inputs = [OnnxValue(name: "x", elemType: 10, dims: [3])]
        check(model, .unsupported, ["'x'", "float16"])
    }

    @Test func float16InitializerIsWidened() throws {
        var model = Self.tinyModel()
        // 1.0, -2.0, 0.5 in binary16
        model.initializers = [OnnxTensor(name: "b", dataType: 10, dims: [3], raw: [0x00, 0x3C, 0x00, 0xC0, 0x00, 0x38])]
        let dir = TempDir()
        defer { dir.cleanup() }
        let m = try loadModel(model.encode(), in: dir)
        #expect(m.graph.initializers["b"]?.floats() == [1, -2, 0.5])
    }

    @Test func typedFieldsAreRead() throws {
        var model = Self.tinyModel()
        model.initializers = [OnnxTensor(name: "b", dims: [3], floats: [4, 5, 6])]
        let dir = TempDir()
        defer { dir.cleanup() }
        let m = try loadModel(model.encode(), in: dir)
        #expect(m.graph.initializers["b"]?.floats() == [4, 5, 6])
    }

    @Test func opsetOutOfRangeIsRefused() {
        var model = Self.tinyModel()
        model.opset = 7
        check(model, .unsupported, ["opset 7"])
    }

    @Test func notAnOnnxFile() {
        let dir = TempDir()
        defer { dir.cleanup() }
        for bytes: [UInt8] in [[], Array("hello, this is not a model".utf8), [0xFF, 0xFF, 0xFF, 0xFF, 0x0F]] {
            let e = expectError(.invalidModel, containing: []) { _ = try loadModel(bytes, in: dir) }
            #expect(e?.code == .invalidModel, "\(e?.message ?? "loaded")")
        }
    }

    @Test func missingFileIsAnIOError() {
        let e = expectError(.io, containing: ["/nonexistent/model.onnx"]) { _ = try CoreModel(path: "/nonexistent/model.onnx") }
        #expect(e?.code == .io)
    }

    /// Every prefix of a valid file either loads (the cut fell on a field boundary and left a
    /// still-valid graph) or is refused with a GraftError; none crashes.
    @Test func everyTruncationIsHandled() {
        let bytes = Self.tinyModel().encode()
        let dir = TempDir()
        defer { dir.cleanup() }
        var refused = 0
        for n in 0..<bytes.count {
            do {
                _ = try loadModel(Array(bytes[0..<n]), in: dir)
            } catch is GraftError {
                refused += 1
            } catch {
                Issue.record("prefix \(n): unexpected error \(error)")
            }
        }
        #expect(refused > bytes.count / 2)
    }

    @Test func symbolicShapesAreInferred() throws {
        var model = Self.tinyModel()
        // y2 = Concat(y, y, axis 0): [2*batch, 3]; z = Unsqueeze(y, 0) with sequence dim from a second input.
        model.inputs.append(OnnxValue(name: "t", dims: ["batch", "seq"]))
        model.nodes += [
            OnnxNode(op: "Concat", inputs: ["y", "y"], outputs: ["y2"], name: "cat", attrs: [.int("axis", 0)]),
            OnnxNode(op: "MatMul", inputs: ["y", "w"], outputs: ["z"], name: "mm"),
            OnnxNode(op: "Concat", inputs: ["t", "t"], outputs: ["t2"], name: "cat2", attrs: [.int("axis", 1)]),
        ]
        model.initializers.append(.floats("w", [1, 0, 0, 1, 0, 0], [3, 2]))
        model.outputs += [OnnxValue(name: "y2"), OnnxValue(name: "z"), OnnxValue(name: "t2")]
        let dir = TempDir()
        defer { dir.cleanup() }
        let m = try loadModel(model.encode(), in: dir)
        let shapes = try #require(m.symbolicShapes)
        #expect(shapes["y"] == [.symbol("batch"), .fixed(3)])
        #expect(shapes["y2"] == [.symbol("2*batch"), .fixed(3)])
        #expect(shapes["z"] == [.symbol("batch"), .fixed(2)])
        #expect(shapes["t2"] == [.symbol("batch"), .symbol("2*seq")])
    }

    @Test func declaredRankThatDisagreesIsRefused() {
        var model = Self.tinyModel()
        model.outputs = [OnnxValue(name: "y", dims: ["batch", 3, 1])]
        check(model, .invalidModel, ["'y'", "rank 3", "rank 2", "mul0"])
    }

    @Test func declaredFixedDimThatDisagreesIsRefused() {
        var model = Self.tinyModel()
        model.outputs = [OnnxValue(name: "y", dims: ["batch", 4])]
        check(model, .invalidModel, ["'y'", "declared with shape"])
    }
}

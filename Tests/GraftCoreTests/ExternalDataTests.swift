#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import GraftCore

/// External-data references are confined to the model's folder.
@Suite struct ExternalDataTests {
    func model(location: String, offset: Int = 0, length: Int = 12) -> OnnxModel {
        var m = ImportValidationTests.tinyModel()
        m.initializers = [OnnxTensor(name: "b", dims: [3], external: [("location", location), ("offset", String(offset)), ("length", String(length))])]
        return m
    }

    func weights() -> [UInt8] {
        [Float(1), 2, 3].flatMap { v in withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } }
    }

    @Test func externalDataBesideTheModelLoads() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        _ = dir.write("model.onnx.data", [9, 9, 9, 9] + weights())
        let m = try loadModel(model(location: "model.onnx.data", offset: 4).encode(), in: dir)
        #expect(m.graph.initializers["b"]?.floats() == [1, 2, 3])
    }

    @Test func parentDirectoryIsRefused() {
        let dir = TempDir()
        defer { dir.cleanup() }
        let e = expectError(.invalidModel, containing: ["..", "'b'"]) { _ = try loadModel(model(location: "../secret.data").encode(), in: dir) }
        #expect(e?.code == .invalidModel, "\(e?.message ?? "loaded")")
    }

    @Test func absolutePathIsRefused() {
        let dir = TempDir()
        defer { dir.cleanup() }
        let e = expectError(.invalidModel, containing: ["absolute", "/etc/passwd"]) { _ = try loadModel(model(location: "/etc/passwd").encode(), in: dir) }
        #expect(e?.code == .invalidModel, "\(e?.message ?? "loaded")")
    }

    @Test func symlinkOutOfTheFolderIsRefused() {
        let dir = TempDir()
        let outside = TempDir()
        defer { dir.cleanup(); outside.cleanup() }
        let target = outside.write("w.data", weights())
        symlink(target, dir.path + "/link.data")
        let e = expectError(.invalidModel, containing: ["outside the model's folder"]) { _ = try loadModel(model(location: "link.data").encode(), in: dir) }
        #expect(e?.code == .invalidModel, "\(e?.message ?? "loaded")")
    }

    @Test func rangePastTheEndIsRefused() {
        let dir = TempDir()
        defer { dir.cleanup() }
        _ = dir.write("model.onnx.data", weights())
        let e = expectError(.invalidModel, containing: ["outside", "model.onnx.data"]) { _ = try loadModel(model(location: "model.onnx.data", offset: 8).encode(), in: dir) }
        #expect(e?.code == .invalidModel, "\(e?.message ?? "loaded")")
    }

    @Test func lengthThatDisagreesWithDimsIsRefused() {
        let dir = TempDir()
        defer { dir.cleanup() }
        _ = dir.write("model.onnx.data", weights())
        let e = expectError(.invalidModel, containing: ["length 8"]) { _ = try loadModel(model(location: "model.onnx.data", length: 8).encode(), in: dir) }
        #expect(e?.code == .invalidModel, "\(e?.message ?? "loaded")")
    }

    @Test func missingFileIsReported() {
        let dir = TempDir()
        defer { dir.cleanup() }
        let e = expectError(.io, containing: ["nothere.data"]) { _ = try loadModel(model(location: "nothere.data").encode(), in: dir) }
        #expect(e?.code == .io, "\(e?.message ?? "loaded")")
    }

    @Test func modelFromMemoryCannotUseExternalData() {
        let bytes = model(location: "model.onnx.data").encode()
        let e = expectError(.invalidModel, containing: ["memory"]) {
            _ = try bytes.withUnsafeBytes { try CoreModel(bytes: $0) }
        }
        #expect(e?.code == .invalidModel, "\(e?.message ?? "loaded")")
    }
}

import Foundation
import Testing
@testable import GraftCore

/// Inputs found by the fuzz targets (Tests/Fuzz, docs/ROBUSTNESS.md), kept as regression tests:
/// each must fail with a GraftError (never a trap, an out-of-memory kill or a sanitizer
/// report), plus hand-made variants of the same bugs.
@Suite struct HostileFileTests {
    static let regressions: String = {
        var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(2)
        return parts.joined(separator: "/") + "/Fuzz/regressions"
    }()

    /// Loads `bytes` from memory (as graft_model_load_from_memory does) and, if that works,
    /// plans and runs it on `inputs`; returns the GraftError thrown, or nil.
    static func loadAndRun(_ bytes: [UInt8], inputs: [String: HostTensor] = [:]) -> GraftError? {
        do {
            let model = try bytes.withUnsafeBytes { try CoreModel(bytes: $0) }
            _ = try CoreSession(model: model).run(inputs)
            return nil
        } catch let e as GraftError {
            return e
        } catch {
            return GraftError(.internalError, "not a GraftError: \(error)")
        }
    }

    static func fuzzInput(_ target: String, _ name: String) throws -> [UInt8] {
        let data = try #require(FileManager.default.contents(atPath: "\(regressions)/\(target)/\(name)"), "\(regressions)/\(target)/\(name)")
        return Array(data)
    }

    /// model_load fuzz finding 1: a 547-byte model whose constant Range(0, 2.5e9) was folded at
    /// load — a 20 GB allocation before any check (libFuzzer: out-of-memory). Now refused with
    /// limitExceeded before allocating (Shape.maxTensorBytes).
    @Test func fuzzRangeFoldedAtLoadIsRefused() throws {
        let e = Self.loadAndRun(try Self.fuzzInput("model_load", "oom-range-fold.onnx"))
        #expect(e?.code == .limitExceeded, "\(e?.message ?? "loaded without error")")
    }

    /// The same bug made by hand: Range(0, 2^32) of int64 (32 GiB) in a file of a few hundred
    /// bytes, constant at load.
    @Test func hugeConstantRangeIsRefusedBeforeAllocating() {
        let model = OnnxModel(
            nodes: [OnnxNode(op: "Range", inputs: ["s", "l", "d"], outputs: ["y"], name: "range0")],
            outputs: [OnnxValue(name: "y", elemType: 7, dims: ["n"])],
            initializers: [.int64s("s", [0], []), .int64s("l", [1 << 32], []), .int64s("d", [1], [])])
        let e = Self.loadAndRun(model.encode())
        #expect(e?.code == .limitExceeded && e?.message.contains("range0") == true, "\(e?.message ?? "loaded without error")")
    }

    /// ConstantOfShape to [2^20, 2^20] float32 (4 TiB) computed from a run-time input: refused
    /// when planning, before the arena or the output is allocated.
    @Test func hugeComputedTensorIsRefusedAtPlanTime() throws {
        let model = OnnxModel(
            nodes: [
                OnnxNode(op: "Shape", inputs: ["x"], outputs: ["s"], name: "shape0"),
                OnnxNode(op: "Mul", inputs: ["s", "big"], outputs: ["dims"], name: "mul0"),
                OnnxNode(op: "ConstantOfShape", inputs: ["dims"], outputs: ["y"], name: "fill0"),
            ],
            inputs: [OnnxValue(name: "x", dims: ["a", "b"])],
            outputs: [OnnxValue(name: "y", dims: ["p", "q"])],
            initializers: [.int64s("big", [1 << 20, 1 << 20], [2])])
        let e = Self.loadAndRun(model.encode(), inputs: ["x": HostTensor([Float(0)], shape: [1, 1])])
        #expect(e?.code == .limitExceeded, "\(e?.message ?? "ran without error")")
    }

    /// model_load fuzz finding 2: Pad by 4,294,967,313 elements on a 1-D input (a 547-byte
    /// model). The Pad factory built per-axis index maps sized by the output dims (8 bytes per
    /// output index: 34 GB) before any size check — out of memory while inferring symbolic
    /// shapes at load. Now the output size is checked before the maps are built.
    @Test func fuzzPadWithHugePadsIsRefused() throws {
        let e = Self.loadAndRun(try Self.fuzzInput("model_load", "oom-pad-maps.onnx"),
                                inputs: ["x": HostTensor([Float(1), 2], shape: [2])])
        #expect(e?.code == .limitExceeded, "\(e?.message ?? "ran without error")")
    }

    /// The same by hand: Pad a [2] float32 input by 2^33 (32 GiB).
    @Test func hugePadIsRefusedBeforeBuildingMaps() {
        let model = OnnxModel(
            nodes: [OnnxNode(op: "Pad", inputs: ["x", "pads"], outputs: ["y"], name: "pad0")],
            inputs: [OnnxValue(name: "x", dims: ["n"])],
            outputs: [OnnxValue(name: "y", dims: ["m"])],
            initializers: [.int64s("pads", [1 << 33, 0], [2])])
        let e = Self.loadAndRun(model.encode(), inputs: ["x": HostTensor([Float(1), 2], shape: [2])])
        #expect(e?.code == .limitExceeded && e?.message.contains("pad0") == true, "\(e?.message ?? "ran without error")")
    }
}

import Foundation
import Testing
@testable import GraftCore

// Expected values are computed here in Double with plain loops.


private func nmF(_ v: [Float], _ s: [Int]) -> HostTensor { HostTensor(v, shape: s) }

/// Largest |a - b| / max(1, |b|) (infinity on a count mismatch or NaN).
private func nmError(_ a: [Float], _ b: [Float]) -> Float {
    guard a.count == b.count else { return .infinity }
    var worst: Float = 0
    for (x, y) in zip(a, b) {
        let e = abs(x - y) / max(1, abs(y))
        if !(e <= worst) { worst = e.isNaN ? .infinity : e }
    }
    return worst
}

/// |a - b| <= tol * max(1, |b|) elementwise.
private func nmClose(_ a: [Float], _ b: [Float], _ tol: Float = 1e-6) -> Bool { nmError(a, b) <= tol }


/// Reference layer norm of `rows` rows of `n`: (y, mean, invStd).
private func nmLayerNorm(_ x: [Float], rows: Int, n: Int, scale: [Float], bias: [Float]?, eps: Double, rms: Bool = false)
    -> ([Float], [Float], [Float]) {
    var y = [Float](repeating: 0, count: x.count), means: [Float] = [], invs: [Float] = []
    for r in 0..<rows {
        let row = (0..<n).map { Double(x[r * n + $0]) }
        let mean = rms ? 0 : row.reduce(0, +) / Double(n)
        let v = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(n)
        let inv = 1 / (v + eps).squareRoot()
        for j in 0..<n {
            let s = Double(scale.count == 1 ? scale[0] : scale[j])
            let b = bias.map { Double($0.count == 1 ? $0[0] : $0[j]) } ?? 0
            y[r * n + j] = Float((row[j] - mean) * inv * s + b)
        }
        means.append(Float(mean))
        invs.append(Float(inv))
    }
    return (y, means, invs)
}

@Suite struct NormalizationKernelTests {
    static let x: [Float] = (0..<24).map { Float(($0 * 5) % 13) * 0.7 - 3 }

    @Test func layerNormLastAxis() throws {
        let scale: [Float] = [1, 0.5, -2, 3]
        let bias: [Float] = [0.1, 0, -0.3, 2]
        let r = try runNode("LayerNormalization", [nmF(Self.x, [2, 3, 4]), nmF(scale, [4]), nmF(bias, [4])])
        let (want, _, _) = nmLayerNorm(Self.x, rows: 6, n: 4, scale: scale, bias: bias, eps: 1e-5)
        #expect(r.count == 1 && r[0].shape == [2, 3, 4])
        #expect(nmClose(r[0].floats(), want, 1e-5)) // 1e-5 relative (values up to ~6)
    }

    @Test func layerNormAxis1WithStatistics() throws {
        let scale = (0..<12).map { Float($0) * 0.1 + 0.5 }
        let bias = (0..<12).map { Float($0) * -0.05 }
        let r = try runNode("LayerNormalization", [nmF(Self.x, [2, 3, 4]), nmF(scale, [3, 4]), nmF(bias, [3, 4])],
                          ["axis": .int(1), "epsilon": .float(1e-3)], outputNames: ["y", "mean", "inv"])
        let (want, mean, inv) = nmLayerNorm(Self.x, rows: 2, n: 12, scale: scale, bias: bias, eps: 1e-3)
        #expect(r.count == 3)
        #expect(nmClose(r[0].floats(), want, 1e-5))
        #expect(r[1].shape == [2, 1, 1] && nmClose(r[1].floats(), mean, 1e-6))
        #expect(r[2].shape == [2, 1, 1] && nmClose(r[2].floats(), inv, 1e-6))
        // Negative axis spelling of the same thing.
        let neg = try runNode("LayerNormalization", [nmF(Self.x, [2, 3, 4]), nmF(scale, [3, 4]), nmF(bias, [3, 4])],
                            ["axis": .int(-2), "epsilon": .float(1e-3)])
        #expect(neg[0].floats() == r[0].floats())
    }

    @Test func layerNormNoBiasAndSkippedMeanOutput() throws {
        let scale: [Float] = [2, 2, 2, 2]
        let r = try runNode("LayerNormalization", [nmF(Self.x, [6, 4]), nmF(scale, [4])], outputNames: ["y", "", "inv"])
        let (want, _, inv) = nmLayerNorm(Self.x, rows: 6, n: 4, scale: scale, bias: nil, eps: 1e-5)
        #expect(nmClose(r[0].floats(), want, 1e-5))
        #expect(r[2].shape == [6, 1] && nmClose(r[2].floats(), inv, 1e-5))
        // A single-value scale broadcasts.
        let s1 = try runNode("LayerNormalization", [nmF(Self.x, [6, 4]), nmF([2], [1])])
        #expect(nmClose(s1[0].floats(), want, 1e-5))
    }

    @Test func layerNormLargeRowsParallel() throws {
        let rows = 40, n = 768
        let v = (0..<(rows * n)).map { Float(($0 * 31) % 97) * 0.02 - 1 + Float($0 / n) }
        let scale = (0..<n).map { Float($0 % 7) * 0.25 + 0.5 }
        let bias = (0..<n).map { Float($0 % 5) * 0.1 }
        let r = try runNode("LayerNormalization", [nmF(v, [rows, n]), nmF(scale, [n]), nmF(bias, [n])], threads: 2)
        let (want, _, _) = nmLayerNorm(v, rows: rows, n: n, scale: scale, bias: bias, eps: 1e-5)
        #expect(nmError(r[0].floats(), want) <= 2e-6) // 2e-6 relative, rows offset by up to 40
    }

    @Test func layerNormEmptyAndErrors() throws {
        let e = try runNode("LayerNormalization", [nmF([], [0, 4]), nmF([1, 1, 1, 1], [4])])
        #expect(e[0].shape == [0, 4])
        let x = nmF(Self.x, [6, 4])
        #expect(errorCode { _ = try runNode("LayerNormalization", [x, nmF([1, 1, 1], [3])]) } == .unsupported)
        #expect(errorCode { _ = try runNode("LayerNormalization", [x, nmF([1, 1, 1, 1], [4])], ["axis": .int(2)]) } == .invalidModel)
        #expect(errorCode { _ = try runNode("LayerNormalization", [HostTensor([1, 2] as [Int64], shape: [2]), nmF([1, 1], [2])]) } == .unsupported)
        #expect(errorCode { _ = try runNode("LayerNormalization", [x]) } == .invalidModel)
    }

    @Test func rmsNormBothSpellings() throws {
        let scale: [Float] = [1, -0.5, 2, 0.25]
        let (want, _, inv) = nmLayerNorm(Self.x, rows: 6, n: 4, scale: scale, bias: nil, eps: 1e-6, rms: true)
        let s = try runNode("SimplifiedLayerNormalization", [nmF(Self.x, [2, 3, 4]), nmF(scale, [4])],
                          ["epsilon": .float(1e-6)], outputNames: ["y", "inv"])
        #expect(nmClose(s[0].floats(), want, 1e-5))
        #expect(s[1].shape == [2, 3, 1] && nmClose(s[1].floats(), inv, 1e-5))
        let r = try runNode("RMSNormalization", [nmF(Self.x, [2, 3, 4]), nmF(scale, [4])], ["epsilon": .float(1e-6)], opset: 23)
        #expect(r.count == 1 && nmClose(r[0].floats(), want, 1e-5))
        // Over the last two dims.
        let scale12 = (0..<12).map { Float($0) * 0.1 }
        let (want12, _, _) = nmLayerNorm(Self.x, rows: 2, n: 12, scale: scale12, bias: nil, eps: 1e-5, rms: true)
        let r12 = try runNode("RMSNormalization", [nmF(Self.x, [2, 3, 4]), nmF(scale12, [3, 4])], ["axis": .int(-2)], opset: 23)
        #expect(nmClose(r12[0].floats(), want12, 1e-5))
        #expect(errorCode { _ = try runNode("RMSNormalization", [nmF(Self.x, [2, 3, 4]), nmF(scale, [4])], outputNames: ["y", "extra"], opset: 23) } == .invalidModel)
    }
}

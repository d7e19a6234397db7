#if canImport(Glibc)
import Glibc
#endif
@testable import GraftCore

/// A fresh temporary folder for one test, removed by `cleanup()`.
struct TempDir {
    let path: String

    init() {
        var template = Array("/tmp/graft-test-XXXXXX".utf8CString)
        path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
    }

    func write(_ name: String, _ bytes: [UInt8]) -> String {
        let p = path + "/" + name
        let f = fopen(p, "wb")!
        _ = fwrite(bytes, 1, bytes.count, f)
        fclose(f)
        return p
    }

    func cleanup() {
        _ = system("rm -rf '\(path)'")
    }
}

/// Loads a model from encoded bytes through the same path users take (a file on disk).
func loadModel(_ bytes: [UInt8], in dir: TempDir, name: String = "model.onnx") throws -> CoreModel {
    try CoreModel(path: dir.write(name, bytes))
}

/// Root of the repository's test fixtures.
let fixturesRoot: String = {
    // #filePath is .../Tests/GraftCoreTests/Support/TestFiles.swift
    var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(3)
    return parts.joined(separator: "/") + "/Fixtures"
}()

func expectError(_ code: GraftError.Code, containing fragments: [String], _ body: () throws -> Void) -> GraftError? {
    do {
        try body()
        return nil
    } catch let e as GraftError {
        guard e.code == code, fragments.allSatisfy({ e.message.contains($0) }) else {
            return GraftError(.internalError, "expected \(code) containing \(fragments), got \(e.code): \(e.message)")
        }
        return e
    } catch {
        return GraftError(.internalError, "unexpected error type: \(error)")
    }
}

@testable import GraftCore

// Shared by the kernel test files: running one node, catching error codes, index arithmetic.

/// Runs one node on host tensors; nil inputs are omitted optional inputs (""). Outputs are
/// named out0, out1, ... (`outputs` of them) unless `outputNames` is given.
func runNode(_ op: String, _ inputs: [HostTensor?], _ attrs: [String: Attribute] = [:], outputs: Int = 1,
             outputNames: [String]? = nil, opset: Int = 17, threads: Int = 1) throws -> [HostTensor] {
    let node = Node(name: "n", opType: op, inputs: inputs.enumerated().map { $0.element == nil ? "" : "in\($0.offset)" },
                    outputs: outputNames ?? (0..<outputs).map { "out\($0)" }, attributes: attrs)
    return try KernelRegistry.evaluate(node, inputs: inputs, opset: opset, threads: threads)
}

/// The first output of `runNode`.
func runNodeOutput(_ op: String, _ inputs: [HostTensor?], _ attrs: [String: Attribute] = [:],
                   opset: Int = 17, threads: Int = 1) throws -> HostTensor {
    try runNode(op, inputs, attrs, opset: opset, threads: threads)[0]
}

/// The code of the GraftError `body` throws, or nil when it throws nothing (or another error).
func errorCode(_ body: () throws -> Void) -> GraftError.Code? {
    do { try body() } catch let e as GraftError { return e.code } catch { return nil }
    return nil
}

/// Whether `body` throws a GraftError (with `code`, when given).
func throwsGraft(_ code: GraftError.Code? = nil, _ body: () throws -> Void) -> Bool {
    guard let c = errorCode(body) else { return false }
    return code == nil || c == code
}

/// Row-major coordinates of flat index `i`.
func coords(_ i: Int, _ shape: [Int]) -> [Int] {
    var c = [Int](repeating: 0, count: shape.count)
    var r = i
    for d in stride(from: shape.count - 1, through: 0, by: -1) {
        c[d] = r % shape[d]
        r /= shape[d]
    }
    return c
}

/// Flat row-major index of coordinates `c`.
func flat(_ c: [Int], _ shape: [Int]) -> Int {
    var i = 0
    for d in 0..<shape.count { i = i * shape[d] + c[d] }
    return i
}

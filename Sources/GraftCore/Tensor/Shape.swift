/// Shape arithmetic shared by the importer, the planner and the kernels.
package enum Shape {
    /// Largest element count Graft accepts for one tensor (2^40): anything larger is a hostile
    /// or corrupt file, and it keeps `count * byteSize` far from Int overflow.
    package static let maxElements = 1 << 40

    /// Product of dims, refusing negative dims and counts past `maxElements`.
    package static func count(_ shape: [Int], what: @autoclosure () -> String = "tensor") throws -> Int {
        var n = 1
        for d in shape {
            guard d >= 0 else { throw GraftError(.invalidModel, "\(what()) has a negative dimension in shape \(shape)") }
            let (p, o) = n.multipliedReportingOverflow(by: d)
            guard !o, p <= maxElements else {
                throw GraftError(.limitExceeded, "\(what()) with shape \(shape) has more than 2^40 elements")
            }
            n = p
        }
        return n
    }

    /// Product of dims for shapes already validated.
    @inline(__always)
    package static func product(_ shape: [Int]) -> Int { shape.reduce(1, *) }

    /// Row-major strides in elements.
    package static func strides(_ shape: [Int]) -> [Int] {
        var s = [Int](repeating: 1, count: shape.count)
        var acc = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            s[i] = acc
            acc *= shape[i]
        }
        return s
    }

    /// Numpy/ONNX multidirectional broadcasting of two shapes.
    package static func broadcast(_ a: [Int], _ b: [Int]) throws -> [Int] {
        let r = max(a.count, b.count)
        var out = [Int](repeating: 1, count: r)
        for i in 0..<r {
            let da = i < r - a.count ? 1 : a[i - (r - a.count)]
            let db = i < r - b.count ? 1 : b[i - (r - b.count)]
            if da == db || db == 1 { out[i] = da } else if da == 1 { out[i] = db } else {
                throw GraftError(.shapeMismatch, "shapes \(a) and \(b) cannot be broadcast together")
            }
        }
        return out
    }

    /// Broadcast of any number of shapes.
    package static func broadcast(_ shapes: [[Int]]) throws -> [Int] {
        var out: [Int] = []
        for s in shapes { out = try broadcast(out, s) }
        return out
    }

    /// Strides (in elements) for reading a tensor of shape `shape` as if broadcast to `target`:
    /// broadcast dims get stride 0. `target.count >= shape.count`.
    package static func broadcastStrides(_ shape: [Int], to target: [Int]) -> [Int] {
        let own = strides(shape)
        let pad = target.count - shape.count
        var out = [Int](repeating: 0, count: target.count)
        for i in 0..<shape.count where shape[i] != 1 || target[pad + i] == 1 {
            out[pad + i] = shape[i] == 1 ? 0 : own[i]
        }
        return out
    }

    /// Normalises a possibly negative axis against `rank` (ONNX: axis in [-rank, rank-1]).
    package static func axis(_ axis: Int, rank: Int, op: @autoclosure () -> String) throws -> Int {
        let a = axis < 0 ? axis + rank : axis
        guard a >= 0, a < max(rank, 1) else {
            throw GraftError(.invalidModel, "\(op()): axis \(axis) is out of range for rank \(rank)")
        }
        return a
    }
}

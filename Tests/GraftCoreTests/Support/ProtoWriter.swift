/// Minimal protobuf encoder for building ONNX files inside tests, so that import, validation
/// and hostile-file cases need no Python. Field numbers are ONNX's (onnx.proto3).
struct ProtoWriter {
    var bytes: [UInt8] = []

    mutating func varint(_ v: UInt64) {
        var v = v
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }
    mutating func tag(_ field: Int, _ wire: Int) { varint(UInt64(field << 3 | wire)) }
    mutating func int(_ field: Int, _ v: Int64) {
        tag(field, 0)
        varint(UInt64(bitPattern: v))
    }
    mutating func float(_ field: Int, _ v: Float) {
        tag(field, 5)
        withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes += $0 }
    }
    mutating func data(_ field: Int, _ d: [UInt8]) {
        tag(field, 2)
        varint(UInt64(d.count))
        bytes += d
    }
    mutating func string(_ field: Int, _ s: String) { data(field, Array(s.utf8)) }
    mutating func message(_ field: Int, _ build: (inout ProtoWriter) -> Void) {
        var w = ProtoWriter()
        build(&w)
        data(field, w.bytes)
    }
}

/// Declarative ONNX pieces for tests.
struct OnnxValue {
    var name: String
    var elemType: Int32 = 1
    /// nil: no shape recorded; Int dims fixed, String dims symbolic.
    var dims: [Any]? = nil
}

struct OnnxTensor {
    var name: String
    var dataType: Int32 = 1
    var dims: [Int64]
    var raw: [UInt8]? = nil
    var floats: [Float]? = nil
    var int64s: [Int64]? = nil
    var external: [(String, String)]? = nil

    static func floats(_ name: String, _ values: [Float], _ dims: [Int64]) -> OnnxTensor {
        OnnxTensor(name: name, dims: dims, raw: values.flatMap { v in withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } })
    }
    static func int64s(_ name: String, _ values: [Int64], _ dims: [Int64]) -> OnnxTensor {
        OnnxTensor(name: name, dataType: 7, dims: dims, raw: values.flatMap { v in withUnsafeBytes(of: v.littleEndian) { Array($0) } })
    }
}

enum OnnxAttr {
    case int(String, Int64)
    case float(String, Float)
    case ints(String, [Int64])
    case string(String, String)
    case tensor(String, OnnxTensor)
}

struct OnnxNode {
    var op: String
    var inputs: [String]
    var outputs: [String]
    var name: String = ""
    var domain: String = ""
    var attrs: [OnnxAttr] = []
}

struct OnnxModel {
    var irVersion: Int64 = 8
    var opset: Int64 = 17
    var nodes: [OnnxNode] = []
    var inputs: [OnnxValue] = []
    var outputs: [OnnxValue] = []
    var initializers: [OnnxTensor] = []

    func encode() -> [UInt8] {
        var w = ProtoWriter()
        w.int(1, irVersion)
        w.string(2, "graft-tests")
        w.message(7) { g in
            for n in nodes { g.message(1) { Self.node(&$0, n) } }
            g.string(2, "test")
            for t in initializers { g.message(5) { Self.tensor(&$0, t) } }
            for v in inputs { g.message(11) { Self.value(&$0, v) } }
            for v in outputs { g.message(12) { Self.value(&$0, v) } }
        }
        w.message(8) { o in
            o.string(1, "")
            o.int(2, opset)
        }
        return w.bytes
    }

    static func tensor(_ w: inout ProtoWriter, _ t: OnnxTensor) {
        for d in t.dims { w.int(1, d) }
        w.int(2, Int64(t.dataType))
        if let f = t.floats { for v in f { w.float(4, v) } }
        if let i = t.int64s { for v in i { w.int(7, v) } }
        w.string(8, t.name)
        if let r = t.raw { w.data(9, r) }
        if let ext = t.external {
            for (k, v) in ext { w.message(13) { e in e.string(1, k); e.string(2, v) } }
            w.int(14, 1)
        }
    }

    static func value(_ w: inout ProtoWriter, _ v: OnnxValue) {
        w.string(1, v.name)
        w.message(2) { type in
            type.message(1) { tt in
                tt.int(1, Int64(v.elemType))
                if let dims = v.dims {
                    tt.message(2) { shape in
                        for d in dims {
                            shape.message(1) { dim in
                                if let n = d as? Int { dim.int(1, Int64(n)) } else if let s = d as? String { dim.string(2, s) }
                            }
                        }
                    }
                }
            }
        }
    }

    static func node(_ w: inout ProtoWriter, _ n: OnnxNode) {
        for i in n.inputs { w.string(1, i) }
        for o in n.outputs { w.string(2, o) }
        w.string(3, n.name)
        w.string(4, n.op)
        for a in n.attrs {
            w.message(5) { aw in
                switch a {
                case .int(let k, let v): aw.string(1, k); aw.int(3, v); aw.int(20, 2)
                case .float(let k, let v): aw.string(1, k); aw.float(2, v); aw.int(20, 1)
                case .ints(let k, let v): aw.string(1, k); for x in v { aw.int(8, x) }; aw.int(20, 7)
                case .string(let k, let v): aw.string(1, k); aw.string(4, v); aw.int(20, 3)
                case .tensor(let k, let t): aw.string(1, k); aw.message(5) { Self.tensor(&$0, t) }; aw.int(20, 4)
                }
            }
        }
        if !n.domain.isEmpty { w.string(7, n.domain) }
    }
}

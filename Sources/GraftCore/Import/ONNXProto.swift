/// The parts of ONNX's protobuf messages (onnx/onnx.proto, IR 3–11) that Graft reads, decoded
/// straight from the wire format by `ProtoWire`. Field numbers are ONNX's. Unknown fields are
/// skipped, as protobuf does; sub-graphs (If/Loop bodies), training info, functions' bodies and
/// sparse tensors are skipped but counted or flagged where the importer must refuse them.
/// Byte payloads (`raw_data`) point into the input and live as long as it does.
///
/// Differences from the protobuf runtime, on purpose: a field with the wrong wire type and a
/// singular message given twice (which protobuf would merge) are refused as corrupt.
struct ProtoModel {
    var irVersion: Int64 = 0
    var producerName = ""
    var producerVersion = ""
    var opsets: [(domain: String, version: Int64)] = []
    var metadata: [(key: String, value: String)] = []
    var functionCount = 0
    var graph: ProtoGraph?

    init(_ bytes: UnsafeRawBufferPointer) throws {
        var r = ProtoWire(bytes, message: "ModelProto")
        while let (field, wire) = try r.nextField() {
            switch field {
            case 1: irVersion = try r.int64(wire, field: field)
            case 2: producerName = try r.string(wire, field: field)
            case 3: producerVersion = try r.string(wire, field: field)
            case 7:
                guard graph == nil else { throw GraftError(.invalidModel, "not a valid ONNX model: ModelProto has two graphs") }
                var g = try r.message(wire, field: field, "GraphProto")
                graph = try ProtoGraph(&g)
            case 8:
                var o = try r.message(wire, field: field, "OperatorSetIdProto")
                var domain = ""
                var version: Int64 = 0
                while let (f, w) = try o.nextField() {
                    switch f {
                    case 1: domain = try o.string(w, field: f)
                    case 2: version = try o.int64(w, field: f)
                    default: try o.skip(w)
                    }
                }
                opsets.append((domain, version))
            case 14: metadata.append(try Self.entry(&r, wire, field: field))
            case 25:
                try r.skip(wire)
                functionCount += 1
            default: try r.skip(wire)
            }
        }
    }

    /// A StringStringEntryProto (key 1, value 2).
    static func entry(_ r: inout ProtoWire, _ wire: ProtoWire.WireType, field: Int) throws -> (key: String, value: String) {
        var e = try r.message(wire, field: field, "StringStringEntryProto")
        var key = "", value = ""
        while let (f, w) = try e.nextField() {
            switch f {
            case 1: key = try e.string(w, field: f)
            case 2: value = try e.string(w, field: f)
            default: try e.skip(w)
            }
        }
        return (key, value)
    }
}

struct ProtoGraph {
    var name = ""
    var nodes: [ProtoNode] = []
    var initializers: [ProtoTensor] = []
    var sparseInitializerCount = 0
    var inputs: [ProtoValueInfo] = []
    var outputs: [ProtoValueInfo] = []
    var valueInfo: [ProtoValueInfo] = []

    init(_ r: inout ProtoWire) throws {
        while let (field, wire) = try r.nextField() {
            switch field {
            case 1:
                var n = try r.message(wire, field: field, "NodeProto")
                nodes.append(try ProtoNode(&n))
            case 2: name = try r.string(wire, field: field)
            case 5:
                var t = try r.message(wire, field: field, "TensorProto")
                initializers.append(try ProtoTensor(&t))
            case 15:
                try r.skip(wire)
                sparseInitializerCount += 1
            case 11, 12, 13:
                var v = try r.message(wire, field: field, "ValueInfoProto")
                let info = try ProtoValueInfo(&v)
                if field == 11 { inputs.append(info) } else if field == 12 { outputs.append(info) } else { valueInfo.append(info) }
            default: try r.skip(wire)
            }
        }
    }
}

struct ProtoNode {
    var name = ""
    var opType = ""
    var domain = ""
    var inputs: [String] = []
    var outputs: [String] = []
    var attributes: [ProtoAttribute] = []
    /// metadata_props (IR 10): the dynamo exporter puts `pkg.torch.onnx.name_scopes` here.
    var metadata: [(key: String, value: String)] = []

    init(_ r: inout ProtoWire) throws {
        while let (field, wire) = try r.nextField() {
            switch field {
            case 1: inputs.append(try r.string(wire, field: field))
            case 2: outputs.append(try r.string(wire, field: field))
            case 3: name = try r.string(wire, field: field)
            case 4: opType = try r.string(wire, field: field)
            case 5:
                var a = try r.message(wire, field: field, "AttributeProto")
                attributes.append(try ProtoAttribute(&a))
            case 7: domain = try r.string(wire, field: field)
            case 9: metadata.append(try ProtoModel.entry(&r, wire, field: field))
            default: try r.skip(wire)
            }
        }
    }
}

/// AttributeProto; `type` is AttributeProto.AttributeType (1 FLOAT, 2 INT, 3 STRING, 4 TENSOR,
/// 5 GRAPH, 6 FLOATS, 7 INTS, 8 STRINGS, ...; 0 when unset).
struct ProtoAttribute {
    var name = ""
    var type: Int32 = 0
    var refAttrName = ""
    var f: Float = 0
    var i: Int64 = 0
    var s = ""
    var t: ProtoTensor?
    var floats: [Float] = []
    var ints: [Int64] = []
    var strings: [String] = []

    init(_ r: inout ProtoWire) throws {
        while let (field, wire) = try r.nextField() {
            switch field {
            case 1: name = try r.string(wire, field: field)
            case 2: f = try r.float(wire, field: field)
            case 3: i = try r.int64(wire, field: field)
            case 4: s = try r.string(wire, field: field)
            case 5:
                guard t == nil else { throw GraftError(.invalidModel, "not a valid ONNX model: attribute '\(name)' has two tensors") }
                var m = try r.message(wire, field: field, "TensorProto")
                t = try ProtoTensor(&m)
            case 7: try r.appendFloats(wire, field: field, to: &floats)
            case 8: try r.appendVarints(wire, field: field, to: &ints)
            case 9: strings.append(try r.string(wire, field: field))
            case 20: type = try r.int32(wire, field: field)
            case 21: refAttrName = try r.string(wire, field: field)
            default: try r.skip(wire)   // g, graphs, tensors, sparse tensors, type protos, doc
            }
        }
    }
}

/// ValueInfoProto with its TypeProto.tensor_type flattened: `elemType` 0 when the value is not
/// a tensor (or has no type); `dims` nil when no shape is recorded.
struct ProtoValueInfo {
    enum Dim { case value(Int64), param(String), unknown }

    var name = ""
    var elemType: Int32 = 0
    var dims: [Dim]?

    init(_ r: inout ProtoWire) throws {
        var sawType = false
        while let (field, wire) = try r.nextField() {
            switch field {
            case 1: name = try r.string(wire, field: field)
            case 2:
                guard !sawType else { throw GraftError(.invalidModel, "not a valid ONNX model: value '\(name)' has two types") }
                sawType = true
                var type = try r.message(wire, field: field, "TypeProto")
                try readType(&type)
            default: try r.skip(wire)
            }
        }
    }

    /// TypeProto: only tensor_type (1) matters; sequence/map/optional/sparse types leave
    /// elemType 0.
    private mutating func readType(_ r: inout ProtoWire) throws {
        while let (field, wire) = try r.nextField() {
            guard field == 1 else { try r.skip(wire); continue }
            var tensor = try r.message(wire, field: field, "TypeProto.Tensor")
            while let (f, w) = try tensor.nextField() {
                switch f {
                case 1: elemType = try tensor.int32(w, field: f)
                case 2:
                    var shape = try tensor.message(w, field: f, "TensorShapeProto")
                    var ds: [Dim] = []
                    while let (sf, sw) = try shape.nextField() {
                        guard sf == 1 else { try shape.skip(sw); continue }
                        var d = try shape.message(sw, field: sf, "TensorShapeProto.Dimension")
                        var dim = Dim.unknown
                        while let (df, dw) = try d.nextField() {
                            switch df {
                            case 1: dim = .value(try d.int64(dw, field: df))
                            case 2: dim = .param(try d.string(dw, field: df))
                            default: try d.skip(dw)
                            }
                        }
                        ds.append(dim)
                    }
                    dims = ds
                default: try tensor.skip(w)
                }
            }
        }
    }
}

/// TensorProto. `rawData` points into the parsed bytes; typed fields are decoded.
struct ProtoTensor {
    var name = ""
    var dataType: Int32 = 0
    var dims: [Int64] = []
    var rawData: UnsafeRawBufferPointer?
    /// Byte offset of rawData in the parsed input (used to release pages once copied).
    var rawDataOffset = 0
    var floatData: [Float] = []
    var int32Data: [Int32] = []
    var int64Data: [Int64] = []
    var doubleData: [Double] = []
    var stringCount = 0
    var external: [(key: String, value: String)] = []
    /// data_location: 1 (EXTERNAL) when the bytes live in another file.
    var isExternal = false

    init(_ r: inout ProtoWire) throws {
        while let (field, wire) = try r.nextField() {
            switch field {
            case 1: try r.appendVarints(wire, field: field, to: &dims)
            case 2: dataType = try r.int32(wire, field: field)
            case 4: try r.appendFloats(wire, field: field, to: &floatData)
            case 5: try r.appendInt32s(wire, field: field, to: &int32Data)
            case 6:
                try r.skip(wire)
                stringCount += 1
            case 7: try r.appendVarints(wire, field: field, to: &int64Data)
            case 8: name = try r.string(wire, field: field)
            case 9:
                let raw = try r.bytes(wire, field: field)
                rawData = raw
                rawDataOffset = r.offset(of: raw)
            case 10: try r.appendDoubles(wire, field: field, to: &doubleData)
            case 13: external.append(try ProtoModel.entry(&r, wire, field: field))
            case 14: isExternal = try r.int32(wire, field: field) == 1
            default: try r.skip(wire)
            }
        }
    }
}

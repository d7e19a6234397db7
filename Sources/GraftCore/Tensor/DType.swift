/// Element types, numbered as ONNX's TensorProto.DataType so that the number in a file maps
/// straight onto a case.
package enum DType: Int32, Sendable, CaseIterable, CustomStringConvertible {
    case float32 = 1
    case uint8 = 2
    case int8 = 3
    case int32 = 6
    case int64 = 7
    case bool = 9
    case float16 = 10
    case float64 = 11
    case bfloat16 = 16

    /// Bytes per element.
    package var byteSize: Int {
        switch self {
        case .uint8, .int8, .bool: return 1
        case .float16, .bfloat16: return 2
        case .float32, .int32: return 4
        case .int64, .float64: return 8
        }
    }

    /// Whether the runtime computes with this type. float16/bfloat16/float64 appear only in
    /// files and are converted (initializers) or refused (graph inputs and node outputs).
    package var isComputeType: Bool {
        switch self {
        case .float32, .int64, .int32, .bool, .uint8, .int8: return true
        case .float16, .bfloat16, .float64: return false
        }
    }

    package var description: String {
        switch self {
        case .float32: return "float32"
        case .uint8: return "uint8"
        case .int8: return "int8"
        case .int32: return "int32"
        case .int64: return "int64"
        case .bool: return "bool"
        case .float16: return "float16"
        case .float64: return "float64"
        case .bfloat16: return "bfloat16"
        }
    }

    /// ONNX's name for a data-type number that Graft has no case for, for error messages.
    package static func onnxName(_ code: Int32) -> String {
        if let t = DType(rawValue: code) { return t.description }
        switch code {
        case 0: return "undefined"
        case 4: return "uint16"
        case 5: return "int16"
        case 8: return "string"
        case 12: return "uint32"
        case 13: return "uint64"
        case 14: return "complex64"
        case 15: return "complex128"
        case 17...23: return "float8/4-bit type \(code)"
        default: return "unknown data type \(code)"
        }
    }
}

/// The one error type Graft throws. `code` is stable (it becomes the C ABI's status);
/// `message` is for people and names the file, node or input at fault.
public struct GraftError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Code: Int32, Sendable {
        /// A caller-supplied argument is wrong (unknown input name, wrong dtype or rank).
        case invalidArgument = 1
        /// The model file is malformed: truncated, corrupt, or an inconsistent graph.
        case invalidModel = 2
        /// The file is well formed but uses something Graft does not implement.
        case unsupported = 3
        /// A file could not be opened, mapped or read.
        case io = 4
        /// Tensor shapes do not agree (at plan time or at run time).
        case shapeMismatch = 5
        /// A size or count exceeds a limit or overflows.
        case limitExceeded = 6
        /// Data read at run time is out of range (an index outside its axis, for example).
        case invalidData = 7
        /// A bug in Graft: an invariant that should hold did not.
        case internalError = 8
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

/// The contract between the planner and every operator kernel.
///
/// A kernel is compiled once per shape signature: its factory sees the node, the concrete
/// types of its inputs and the values of those inputs known at plan time, and returns the
/// output types plus a `run` closure with everything shape-dependent precomputed. `run` then
/// only reads and writes the buffers the executor hands it: it must not allocate.

/// Concrete element type and shape of a value in one plan.
package struct TensorType: Equatable, Sendable, CustomStringConvertible {
    package var dtype: DType
    package var shape: [Int]

    package init(_ dtype: DType, _ shape: [Int]) {
        self.dtype = dtype
        self.shape = shape
    }

    package var count: Int { Shape.product(shape) }
    package var byteCount: Int { count * dtype.byteSize }
    package var description: String { "\(dtype)\(shape)" }
}

/// What a kernel factory sees at plan time.
package struct KernelContext: Sendable {
    package let node: Node
    /// Types of the node's inputs, in order; nil where an optional input is omitted ("").
    package let inputTypes: [TensorType?]
    /// Values of inputs known at plan time (initializers, folded constants), else nil.
    package let constants: [HostTensor?]
    /// Default-domain opset version of the model (ops changed form across versions).
    package let opset: Int
    /// Threads the session allows a kernel to use.
    package let threads: Int
    /// The model's caps: a factory checks sizes against `limits.tensorBytes` before it
    /// allocates anything sized by them (`checkAllocation`).
    package let limits: Limits

    package init(node: Node, inputTypes: [TensorType?], constants: [HostTensor?], opset: Int, threads: Int,
                 limits: Limits = .defaults) {
        self.node = node
        self.inputTypes = inputTypes
        self.constants = constants
        self.opset = opset
        self.threads = threads
        self.limits = limits
    }

    /// Throws `limitExceeded` when one allocation of `bytes` is over the model's tensor cap.
    package func checkAllocation(_ bytes: Int, _ what: @autoclosure () -> String) throws {
        try limits.check(.tensorBytes, bytes, what())
    }

    /// Number of inputs present, counting omitted ones in the middle.
    package var inputCount: Int { inputTypes.count }

    /// Type of input `i`, or a clear error when it is missing.
    package func input(_ i: Int) throws -> TensorType {
        guard i < inputTypes.count, let t = inputTypes[i] else {
            throw GraftError(.invalidModel, "\(node.label): required input \(i) is missing")
        }
        return t
    }

    /// Whether input `i` is present (not omitted and within the list).
    package func has(_ i: Int) -> Bool { i < inputTypes.count && inputTypes[i] != nil }

    /// Plan-time value of input `i`, or an error saying the op needs it constant.
    package func constant(_ i: Int, _ what: String) throws -> HostTensor {
        guard i < constants.count, let c = constants[i] else {
            throw GraftError(.unsupported, "\(node.label): \(what) (input \(i)) must be known when the model is planned; it depends on run-time data")
        }
        return c
    }

    /// Plan-time integer values of input `i` (shape, axes, starts...), or nil if omitted.
    package func constantInts(_ i: Int, _ what: String) throws -> [Int]? {
        guard has(i) else { return nil }
        return try constant(i, what).integers()
    }

    /// Error helper: `node label: message`.
    package func fail(_ code: GraftError.Code, _ message: String) -> GraftError {
        GraftError(code, "\(node.label): \(message)")
    }

    /// Requires input `i` to have one of the listed dtypes.
    @discardableResult
    package func require(_ i: Int, _ allowed: [DType]) throws -> TensorType {
        let t = try input(i)
        guard allowed.contains(t.dtype) else {
            throw fail(.unsupported, "input \(i) has type \(t.dtype); this op supports \(allowed.map(\.description).joined(separator: ", "))")
        }
        return t
    }
}

/// Buffers of one kernel invocation. Pointers are valid for the duration of `run` only.
package struct KernelIO {
    /// Slot table of the whole plan: one pointer per value.
    package let slots: UnsafeMutablePointer<UnsafeMutableRawPointer>
    /// Slot index per input (-1: omitted) and per output.
    package let inputSlots: UnsafePointer<Int32>
    package let outputSlots: UnsafePointer<Int32>

    package init(slots: UnsafeMutablePointer<UnsafeMutableRawPointer>, inputSlots: UnsafePointer<Int32>, outputSlots: UnsafePointer<Int32>) {
        self.slots = slots
        self.inputSlots = inputSlots
        self.outputSlots = outputSlots
    }

    @inline(__always) package func raw(input i: Int) -> UnsafeRawPointer { UnsafeRawPointer(slots[Int(inputSlots[i])]) }
    @inline(__always) package func raw(output i: Int) -> UnsafeMutableRawPointer { slots[Int(outputSlots[i])] }
    @inline(__always) package func input<T>(_ i: Int, _: T.Type) -> UnsafePointer<T> {
        UnsafePointer(slots[Int(inputSlots[i])].assumingMemoryBound(to: T.self))
    }
    @inline(__always) package func output<T>(_ i: Int, _: T.Type) -> UnsafeMutablePointer<T> {
        slots[Int(outputSlots[i])].assumingMemoryBound(to: T.self)
    }
}

/// A kernel ready to run for one shape signature.
package struct CompiledKernel: Sendable {
    package var outputTypes: [TensorType]
    /// Outputs known already at plan time (Shape, Size, and ops on constants that the kernel
    /// chooses to evaluate itself). When set, `run` is never called.
    package var folded: [HostTensor]?
    package var run: @Sendable (KernelIO) throws -> Void

    package init(outputs: [TensorType], run: @escaping @Sendable (KernelIO) throws -> Void) {
        outputTypes = outputs
        folded = nil
        self.run = run
    }

    package init(folded: [HostTensor]) {
        outputTypes = folded.map { TensorType($0.dtype, $0.shape) }
        self.folded = folded
        run = { _ in }
    }
}

package typealias KernelFactory = @Sendable (KernelContext) throws -> CompiledKernel

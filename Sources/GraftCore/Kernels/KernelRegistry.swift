/// Every operator Graft implements, by (domain, op type). An op not listed here is refused at
/// load with its type, domain and node name.
package enum KernelRegistry {
    /// Kernel families; each file under Kernels/ lists its ops in an `entries` table.
    package static let factories: [String: KernelFactory] = {
        var table: [String: KernelFactory] = [:]
        let families: [[(String, KernelFactory)]] = [
            ElementwiseKernels.entries,
            ReductionKernels.entries,
            NormalizationKernels.entries,
            ShapeKernels.entries,
            IndexingKernels.entries,
            LinearKernels.entries,
            FusedKernels.entries,
        ]
        for family in families {
            for (key, factory) in family {
                precondition(table[key] == nil, "kernel \(key) registered twice")
                table[key] = factory
            }
        }
        return table
    }()

    /// Table key: the op type for the default ONNX domain, "domain:op" otherwise.
    package static func key(domain: String, opType: String) -> String {
        Node.isDefaultDomain(domain) ? opType : "\(domain):\(opType)"
    }

    package static func factory(for node: Node) -> KernelFactory? {
        factories[key(domain: node.domain, opType: node.opType)]
    }

    /// Compiles `node` for the given input types and constants, or refuses it clearly.
    package static func compile(_ node: Node, inputTypes: [TensorType?], constants: [HostTensor?],
                                opset: Int, threads: Int, limits: Limits = .defaults) throws -> CompiledKernel {
        guard let factory = factory(for: node) else {
            throw GraftError(.unsupported, "operator \(node.opType) (domain '\(node.domain.isEmpty ? "ai.onnx" : node.domain)') of \(node.label) is not supported")
        }
        let ctx = KernelContext(node: node, inputTypes: inputTypes, constants: constants, opset: opset, threads: threads, limits: limits)
        let kernel = try factory(ctx)
        guard kernel.outputTypes.count >= node.outputs.filter({ !$0.isEmpty }).count else {
            throw GraftError(.internalError, "\(node.label): kernel produced \(kernel.outputTypes.count) outputs for \(node.outputs.count) declared")
        }
        for t in kernel.outputTypes { try ctx.checkAllocation(t.byteCount, "\(node.label): output \(t)") }
        return kernel
    }

    /// Evaluates `node` on host tensors (all inputs known): used for constant folding and by
    /// tests. Outputs are freshly allocated.
    package static func evaluate(_ node: Node, inputs: [HostTensor?], opset: Int, threads: Int = 1) throws -> [HostTensor] {
        let kernel = try compile(node, inputTypes: inputs.map { $0.map { TensorType($0.dtype, $0.shape) } },
                                 constants: inputs, opset: opset, threads: threads)
        return try execute(kernel, inputs: inputs)
    }

    /// Runs a compiled kernel on host tensors whose types are the ones it was compiled for.
    package static func execute(_ kernel: CompiledKernel, inputs: [HostTensor?]) throws -> [HostTensor] {
        if let folded = kernel.folded { return folded }
        let outputs = kernel.outputTypes.map { HostTensor(zeros: $0.dtype, shape: $0.shape) }
        // Slot table: inputs first, then outputs.
        let slotCount = inputs.count + outputs.count
        let slots = UnsafeMutablePointer<UnsafeMutableRawPointer>.allocate(capacity: max(slotCount, 1))
        defer { slots.deallocate() }
        var inputSlots = [Int32](repeating: -1, count: inputs.count)
        for (i, t) in inputs.enumerated() {
            slots[i] = t?.raw ?? UnsafeMutableRawPointer(bitPattern: 64)!
            if t != nil { inputSlots[i] = Int32(i) }
        }
        for (j, t) in outputs.enumerated() { slots[inputs.count + j] = t.raw }
        let outputSlots = (0..<outputs.count).map { Int32(inputs.count + $0) }
        try inputSlots.withUnsafeBufferPointer { ins in
            try outputSlots.withUnsafeBufferPointer { outs in
                try withExtendedLifetime(inputs) {
                    try kernel.run(KernelIO(slots: slots, inputSlots: ins.baseAddress ?? UnsafePointer(bitPattern: 8)!,
                                            outputSlots: outs.baseAddress ?? UnsafePointer(bitPattern: 8)!))
                }
            }
        }
        return outputs
    }
}

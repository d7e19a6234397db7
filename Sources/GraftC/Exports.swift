import CGraft
import GraftCore
#if canImport(Glibc)
import Glibc
#endif

// The implementation of include/graft.h. Every function here is `@c @implementation`: the
// compiler checks each signature against the header's declaration and refuses functions the
// header does not declare. Every body converts failures into a status (see `guarded`);
// caller input is validated before it reaches code that could trap.

// MARK: - Versions

nonisolated(unsafe) private let versionString: UnsafeMutablePointer<CChar> = strdup("\(GRAFT_VERSION_MAJOR).\(GRAFT_VERSION_MINOR).\(GRAFT_VERSION_PATCH)")

@c @implementation
public func graft_version() -> UnsafePointer<CChar>! {
    UnsafePointer(versionString)
}

@c @implementation
public func graft_abi_version() -> UInt32 {
    UInt32(GRAFT_ABI_VERSION)
}

// MARK: - Status and errors

nonisolated(unsafe) private let statusStrings: [UnsafeMutablePointer<CChar>] = ([
    "ok", "invalid argument", "invalid model", "unsupported", "i/o error", "shape mismatch",
    "limit exceeded", "invalid data", "internal error", "unknown status",
] as [String]).map { strdup($0) }

@c @implementation
public func graft_status_string(_ status: graft_status) -> UnsafePointer<CChar>! {
    let i = status >= 0 && Int(status) < statusStrings.count - 1 ? Int(status) : statusStrings.count - 1
    return UnsafePointer(statusStrings[i])
}

@c @implementation
public func graft_last_error() -> UnsafePointer<CChar>! {
    cgraft_last_error()
}

@c @implementation
public func graft_dtype_size(_ dtype: graft_dtype) -> Int {
    DType(rawValue: dtype)?.byteSize ?? 0
}

// MARK: - Model options

@c @implementation
public func graft_model_options_create(_ out: UnsafeMutablePointer<OpaquePointer?>!) -> graft_status {
    guarded {
        let out = try require(out, "out")
        out.pointee = retainedHandle(ModelOptionsBox())
    }
}

@c @implementation
public func graft_model_options_free(_ options: OpaquePointer!) {
    release(options)
}

@c @implementation
public func graft_model_options_set_external_data(_ options: OpaquePointer!, _ allow: Int32) -> graft_status {
    guarded {
        let box = object(try require(options, "options"), as: ModelOptionsBox.self)
        guard allow == 0 || allow == 1 else { throw invalid("external data must be 0 (refuse) or 1 (allow), got \(allow)") }
        box.externalData = allow == 1
    }
}

@c @implementation
public func graft_model_options_set_site_map(_ options: OpaquePointer!, _ path: UnsafePointer<CChar>!) -> graft_status {
    guarded {
        let box = object(try require(options, "options"), as: ModelOptionsBox.self)
        box.siteMap = try path.map { try SiteDiscovery.readSiteMap(path: String(cString: $0)) } ?? [:]
    }
}

@c @implementation
public func graft_model_options_set_limit(_ options: OpaquePointer!, _ limit: graft_limit, _ value: UInt64) -> graft_status {
    guarded {
        let box = object(try require(options, "options"), as: ModelOptionsBox.self)
        guard let kind = Limits.Kind(rawValue: limit) else {
            throw invalid("unknown limit \(limit) (GRAFT_LIMIT_TENSOR_BYTES ... GRAFT_LIMIT_BOUND_ADAPTERS are 1...\(Limits.Kind.allCases.count))")
        }
        box.limits[kind] = value == 0 ? Limits()[kind] : Int(min(value, UInt64(Int.max)))
    }
}

// MARK: - Models

private func loadModel(_ out: UnsafeMutablePointer<OpaquePointer?>?, _ load: () throws -> CoreModel) -> graft_status {
    guarded {
        let out = try require(out, "out")
        out.pointee = nil
        out.pointee = retainedHandle(ModelBox(core: try load()))
    }
}

@c @implementation
public func graft_model_load(_ path: UnsafePointer<CChar>!, _ options: OpaquePointer!,
                             _ out: UnsafeMutablePointer<OpaquePointer?>!) -> graft_status {
    loadModel(out) {
        let path = String(cString: try require(path, "path"))
        guard !path.isEmpty else { throw invalid("path is empty") }
        let box = options.map { object($0, as: ModelOptionsBox.self) }
        return try CoreModel(path: path, externalData: box?.externalData ?? true, siteMap: box?.siteMap ?? [:],
                             limits: box?.limits ?? Limits())
    }
}

@c @implementation
public func graft_model_load_from_memory(_ data: UnsafeRawPointer!, _ size: Int, _ options: OpaquePointer!,
                                         _ out: UnsafeMutablePointer<OpaquePointer?>!) -> graft_status {
    loadModel(out) {
        let data = try require(data, "data")
        guard size > 0 else { throw invalid("size must be greater than 0") }
        let box = options.map { object($0, as: ModelOptionsBox.self) }
        return try CoreModel(bytes: UnsafeRawBufferPointer(start: data, count: size), siteMap: box?.siteMap ?? [:],
                             limits: box?.limits ?? Limits())
    }
}

@c @implementation
public func graft_model_free(_ model: OpaquePointer!) {
    release(model)
}

private func counted(_ model: OpaquePointer?, _ count: UnsafeMutablePointer<Int>?,
                     _ values: (ModelBox) -> [ModelBox.Value]) -> graft_status {
    guarded {
        let box = object(try require(model, "model"), as: ModelBox.self)
        try require(count, "count").pointee = values(box).count
    }
}

@c @implementation
public func graft_model_input_count(_ model: OpaquePointer!, _ count: UnsafeMutablePointer<Int>!) -> graft_status {
    counted(model, count) { $0.inputs }
}

@c @implementation
public func graft_model_output_count(_ model: OpaquePointer!, _ count: UnsafeMutablePointer<Int>!) -> graft_status {
    counted(model, count) { $0.outputs }
}

private func value(_ box: ModelBox, _ index: Int, output: Bool) throws -> ModelBox.Value {
    let values = output ? box.outputs : box.inputs
    let what = output ? "output" : "input"
    guard index >= 0, index < values.count else {
        throw invalid("\(what) index \(index) is out of range (the model has \(values.count) \(what)s)")
    }
    return values[index]
}

private func info(_ model: OpaquePointer?, _ index: Int, _ info: UnsafeMutablePointer<graft_value_info>?,
                  output: Bool) -> graft_status {
    guarded {
        let box = object(try require(model, "model"), as: ModelBox.self)
        let info = try require(info, "info")
        let want = MemoryLayout<graft_value_info>.size
        guard Int(info.pointee.struct_size) >= want else {
            throw invalid("info->struct_size is \(info.pointee.struct_size); set it to sizeof(graft_value_info) (\(want) in this version)")
        }
        let v = try value(box, index, output: output)
        info.pointee.dtype = v.dtype
        info.pointee.name = UnsafePointer(v.name)
        info.pointee.rank = v.dims.map { Int64($0.count) } ?? -1
    }
}

@c @implementation
public func graft_model_input_info(_ model: OpaquePointer!, _ index: Int,
                                   _ info: UnsafeMutablePointer<graft_value_info>!) -> graft_status {
    GraftC.info(model, index, info, output: false)
}

@c @implementation
public func graft_model_output_info(_ model: OpaquePointer!, _ index: Int,
                                    _ info: UnsafeMutablePointer<graft_value_info>!) -> graft_status {
    GraftC.info(model, index, info, output: true)
}

private func dim(_ model: OpaquePointer?, _ index: Int, _ axis: Int, _ size: UnsafeMutablePointer<Int64>?,
                 _ symbol: UnsafeMutablePointer<UnsafePointer<CChar>?>?, output: Bool) -> graft_status {
    guarded {
        let box = object(try require(model, "model"), as: ModelBox.self)
        let size = try require(size, "size")
        let v = try value(box, index, output: output)
        let what = output ? "output" : "input"
        guard let dims = v.dims else {
            throw invalid("\(what) \(index) ('\(String(cString: v.name))') has no declared shape (rank -1)")
        }
        guard axis >= 0, axis < dims.count else {
            throw invalid("axis \(axis) is out of range for \(what) \(index) ('\(String(cString: v.name))') of rank \(dims.count)")
        }
        size.pointee = dims[axis].size
        symbol?.pointee = dims[axis].symbol.map { UnsafePointer($0) }
    }
}

@c @implementation
public func graft_model_input_dim(_ model: OpaquePointer!, _ index: Int, _ axis: Int,
                                  _ size: UnsafeMutablePointer<Int64>!,
                                  _ symbol: UnsafeMutablePointer<UnsafePointer<CChar>?>!) -> graft_status {
    dim(model, index, axis, size, symbol, output: false)
}

@c @implementation
public func graft_model_output_dim(_ model: OpaquePointer!, _ index: Int, _ axis: Int,
                                   _ size: UnsafeMutablePointer<Int64>!,
                                   _ symbol: UnsafeMutablePointer<UnsafePointer<CChar>?>!) -> graft_status {
    dim(model, index, axis, size, symbol, output: true)
}

// MARK: - Session options

@c @implementation
public func graft_session_options_create(_ out: UnsafeMutablePointer<OpaquePointer?>!) -> graft_status {
    guarded {
        try require(out, "out").pointee = retainedHandle(SessionOptionsBox())
    }
}

@c @implementation
public func graft_session_options_free(_ options: OpaquePointer!) {
    release(options)
}

@c @implementation
public func graft_session_options_set_threads(_ options: OpaquePointer!, _ threads: Int32) -> graft_status {
    guarded {
        let box = object(try require(options, "options"), as: SessionOptionsBox.self)
        try CoreSession.checkThreads(Int(threads))
        box.threads = threads
    }
}

// MARK: - Run options

@c @implementation
public func graft_run_options_create(_ out: UnsafeMutablePointer<OpaquePointer?>!) -> graft_status {
    guarded {
        try require(out, "out").pointee = retainedHandle(RunOptionsBox())
    }
}

@c @implementation
public func graft_run_options_free(_ options: OpaquePointer!) {
    release(options)
}

// MARK: - Sessions

@c @implementation
public func graft_session_create(_ model: OpaquePointer!, _ options: OpaquePointer!,
                                 _ out: UnsafeMutablePointer<OpaquePointer?>!) -> graft_status {
    guarded {
        let out = try require(out, "out")
        out.pointee = nil
        let box = object(try require(model, "model"), as: ModelBox.self)
        let threads = options.map { Int(object($0, as: SessionOptionsBox.self).threads) } ?? 1
        out.pointee = retainedHandle(SessionBox(model: box, core: try CoreSession(model: box.core, threads: threads)))
    }
}

@c @implementation
public func graft_session_free(_ session: OpaquePointer!) {
    release(session)
}

@c @implementation
public func graft_session_output_shape(_ session: OpaquePointer!, _ inputs: UnsafePointer<graft_tensor>!,
                                       _ nInputs: Int, _ outputIndex: Int,
                                       _ dtype: UnsafeMutablePointer<graft_dtype>!,
                                       _ rank: UnsafeMutablePointer<Int>!, _ dims: UnsafeMutablePointer<Int64>!,
                                       _ dimsCapacity: Int) -> graft_status {
    guarded {
        let box = object(try require(session, "session"), as: SessionBox.self)
        let rank = try require(rank, "rank")
        let graph = box.model.core.graph
        guard outputIndex >= 0, outputIndex < graph.outputs.count else {
            throw invalid("output index \(outputIndex) is out of range (the model has \(graph.outputs.count) outputs)")
        }
        let type = try box.exclusive {
            let args = try TensorArgs.read(inputs, count: nInputs, array: "inputs", declared: graph.inputs, checkData: false)
            let bound = try box.core.bind(TensorArgs.named(args, declared: graph.inputs))
            return try box.core.plan(for: bound).outputTypes[outputIndex]
        }
        dtype?.pointee = type.dtype.rawValue
        rank.pointee = type.shape.count
        if let dims {
            guard dimsCapacity >= type.shape.count else {
                throw GraftError(.limitExceeded, "output \(outputIndex) ('\(graph.outputs[outputIndex].name)') has rank \(type.shape.count) but dims_capacity is \(dimsCapacity)")
            }
            for (i, d) in type.shape.enumerated() { dims[i] = Int64(d) }
        }
    }
}

@c @implementation
public func graft_session_run(_ session: OpaquePointer!, _ inputs: UnsafePointer<graft_tensor>!, _ nInputs: Int,
                              _ outputs: UnsafeMutablePointer<graft_tensor>!, _ nOutputs: Int,
                              _ runOptions: OpaquePointer!) -> graft_status {
    guarded {
        let box = object(try require(session, "session"), as: SessionBox.self)
        let graph = box.model.core.graph
        try box.exclusive {
            let ins = try TensorArgs.read(inputs, count: nInputs, array: "inputs", declared: graph.inputs, checkData: true)
            let outs = try TensorArgs.read(outputs.map { UnsafePointer($0) }, count: nOutputs, array: "outputs",
                                           declared: graph.outputs, checkData: true)
            try checkOverlaps(inputs: ins, outputs: outs)
            let bound = try box.core.bind(TensorArgs.named(ins, declared: graph.inputs))
            let plan = try box.core.plan(for: bound)
            var given = [HostTensor?](repeating: nil, count: plan.outputTypes.count)
            for a in outs {
                let want = plan.outputTypes[a.index]
                guard a.dtype == want.dtype else {
                    throw invalid("\(a.label): dtype is \(a.dtype) but the output is \(want.dtype)")
                }
                guard a.shape == want.shape else {
                    throw GraftError(.shapeMismatch, "\(a.label): shape is \(a.shape) but for these inputs the output has shape \(want.shape) (ask graft_session_output_shape)")
                }
                given[a.index] = TensorArgs.host(a)
            }
            let results = zip(given, plan.outputTypes).map { $0 ?? HostTensor(zeros: $1.dtype, shape: $1.shape) }
            let options = runOptions.map { object($0, as: RunOptionsBox.self) }
            try box.core.execute(plan, inputs: bound, outputs: results, rowAdapters: options?.rowAdapters, modalities: options?.modalities,
                                 aux: options?.aux, merge: options?.merge ?? .auto, routing: options?.routing)
        }
    }
}

/// Output buffers must not overlap each other or any input (kernels write outputs while
/// reading inputs).
private func checkOverlaps(inputs: [TensorArg], outputs: [TensorArg]) throws {
    for (i, o) in outputs.enumerated() {
        guard let r = o.range else { continue }
        for other in inputs + outputs[..<i] {
            if let s = other.range, r.overlaps(s) {
                throw invalid("\(o.label): its buffer overlaps the buffer of \(other.label)")
            }
        }
    }
}

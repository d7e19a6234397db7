import CGraft
import GraftCore

// The auxiliary-input part of include/graft.h (VLoRA): auxiliary tensors and the merge mode of
// run options, request adapters generated from auxiliary tensors, and an adapter's aux input.

/// Reads `count` named caller tensors and copies them (run options outlive the caller's
/// buffers). Names are required; checks are TensorArgs'.
private func auxTensors(_ base: UnsafePointer<graft_tensor>?, _ count: Int) throws -> [String: HostTensor] {
    guard count > 0 else { return [:] }
    guard let base else { throw invalid("aux is NULL but n_aux is \(count)") }
    guard count <= 1024 else { throw GraftError(.limitExceeded, "n_aux is \(count); at most 1024 auxiliary tensors") }
    let raw = UnsafeRawPointer(base)
    let stride = Int(raw.loadUnaligned(as: UInt32.self))
    guard stride >= TensorArgs.minStructSize, stride <= TensorArgs.maxStructSize, stride % 8 == 0 else {
        throw invalid("aux[0].struct_size is \(stride); set it to sizeof(graft_tensor) (\(TensorArgs.minStructSize) in this version)")
    }
    let declared: [ValueDecl] = try (0..<count).map { i in
        let name = (raw + i * stride).load(fromByteOffset: MemoryLayout<graft_tensor>.offset(of: \graft_tensor.name)!, as: UnsafePointer<CChar>?.self)
        guard let name else { throw invalid("aux[\(i)]: name is NULL; auxiliary tensors are passed by name (e.g. \"image_features\")") }
        return ValueDecl(name: String(cString: name), dtype: .float32, dims: nil)
    }
    let args = try TensorArgs.read(base, count: count, array: "aux", declared: declared, checkData: true)
    var out: [String: HostTensor] = [:]
    for a in args { out[declared[a.index].name] = TensorArgs.host(a).copy() }
    return out
}

@c @implementation
public func graft_run_options_set_aux(_ options: OpaquePointer!, _ aux: UnsafePointer<graft_tensor>!, _ count: Int) -> graft_status {
    guarded {
        let box = object(try require(options, "options"), as: RunOptionsBox.self)
        box.aux = count == 0 ? nil : try auxTensors(aux, count)
    }
}

@c @implementation
public func graft_run_options_set_merge(_ options: OpaquePointer!, _ mode: Int32) -> graft_status {
    guarded {
        let box = object(try require(options, "options"), as: RunOptionsBox.self)
        guard let policy = MergePolicy(rawValue: mode) else {
            throw invalid("merge mode \(mode) is not GRAFT_MERGE_AUTO (0), GRAFT_MERGE_UNMERGED (1) or GRAFT_MERGE_MERGED (2)")
        }
        box.merge = policy
    }
}

@c @implementation
public func graft_adapter_generate(_ adapter: OpaquePointer!, _ aux: UnsafePointer<graft_tensor>!, _ count: Int, _ threads: Int32,
                                   _ out: UnsafeMutablePointer<OpaquePointer?>!) -> graft_status {
    guarded {
        let out = try require(out, "out")
        out.pointee = nil
        let box = object(try require(adapter, "adapter"), as: AdapterBox.self)
        try CoreSession.checkThreads(Int(threads))
        let generated = try box.core.generate(aux: try auxTensors(aux, count), threads: Int(threads))
        out.pointee = retainedHandle(AdapterBox(core: generated))
    }
}

@c @implementation
public func graft_adapter_aux_input(_ adapter: OpaquePointer!) -> UnsafePointer<CChar>! {
    guard let adapter, let name = object(adapter, as: AdapterBox.self).auxInput else { return nil }
    return UnsafePointer(name)
}

@c @implementation
public func graft_adapter_compose(_ list: UnsafePointer<OpaquePointer?>!, _ scales: UnsafePointer<Float>!, _ count: Int,
                                  _ out: UnsafeMutablePointer<OpaquePointer?>!) -> graft_status {
    guarded {
        let out = try require(out, "out")
        out.pointee = nil
        guard count > 0 else { throw invalid("count is 0: compose at least one adapter") }
        let list = try require(list, "adapters")
        let parts = try (0..<count).map { i -> (CoreAdapter, Float) in
            guard let h = list[i] else { throw invalid("adapters[\(i)] is NULL") }
            return (object(h, as: AdapterBox.self).core, scales?[i] ?? 1)
        }
        out.pointee = retainedHandle(AdapterBox(core: try CoreAdapter.compose(parts)))
    }
}

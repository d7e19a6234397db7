import CGraft
import GraftCore
#if canImport(Glibc)
import Glibc
#endif

// The routed-experts part of include/graft.h: naming routers, per-request control in run
// options, and the routing record (GraftCore's RoutingControl / RoutingRecord).

/// A routing record plus the C strings of its entries' adapter names (remade per run).
final class RoutingRecordBox {
    let core = RoutingRecord()
    private var names: [UnsafeMutablePointer<CChar>] = []
    private var namesGeneration = -1

    /// The adapter name of entry `i` as a C string, valid until the record's next run.
    func name(_ i: Int) -> UnsafePointer<CChar> {
        if namesGeneration != core.generation {
            for n in names { free(n) }
            names = core.entries.map { strdup($0.adapter.name)! }
            namesGeneration = core.generation
        }
        return UnsafePointer(names[i])
    }

    deinit { for n in names { free(n) } }
}

extension RunOptionsBox {
    /// The options' routing control, made on first use.
    var control: RoutingControl {
        if let routing { return routing }
        let c = RoutingControl()
        routing = c
        return c
    }
}

@c @implementation
public func graft_adapter_router_count(_ adapter: OpaquePointer!, _ count: UnsafeMutablePointer<Int>!) -> graft_status {
    guarded {
        let a = object(try require(adapter, "adapter"), as: AdapterBox.self).core
        try require(count, "count").pointee = a.routers.count
    }
}

@c @implementation
public func graft_adapter_router_info(_ adapter: OpaquePointer!, _ index: Int, _ site: UnsafeMutablePointer<Int>!,
                                      _ experts: UnsafeMutablePointer<Int>!) -> graft_status {
    guarded {
        let a = object(try require(adapter, "adapter"), as: AdapterBox.self).core
        try RoutingControl.checkRouter(a, index)
        site?.pointee = a.routers[index].site
        experts?.pointee = a.routers[index].experts
    }
}

@c @implementation
public func graft_adapter_find_router(_ adapter: OpaquePointer!, _ site: UnsafePointer<CChar>!,
                                      _ index: UnsafeMutablePointer<Int>!) -> graft_status {
    guarded {
        let a = object(try require(adapter, "adapter"), as: AdapterBox.self).core
        let name = String(cString: try require(site, "site"))
        let out = try require(index, "index")
        out.pointee = try RoutingControl.findRouter(a, site: name)
    }
}

@c @implementation
public func graft_run_options_set_experts(_ options: OpaquePointer!, _ adapter: OpaquePointer!, _ router: Int,
                                          _ mode: Int32, _ mask: UnsafePointer<UInt8>!, _ count: Int) -> graft_status {
    guarded {
        let box = object(try require(options, "options"), as: RunOptionsBox.self)
        let a = object(try require(adapter, "adapter"), as: AdapterBox.self).core
        guard let kind = RoutingControl.Mode(rawValue: mode) else {
            throw invalid("mode \(mode) is not GRAFT_EXPERTS_ALLOW (0), GRAFT_EXPERTS_DENY (1) or GRAFT_EXPERTS_FORCE (2)")
        }
        let values: [Bool]? = count == 0 ? nil : UnsafeBufferPointer(start: try require(mask, "mask"), count: count).map { $0 != 0 }
        try box.control.setMask(a, router: router, mode: kind, mask: values)
    }
}

@c @implementation
public func graft_run_options_set_routing(_ options: OpaquePointer!, _ adapter: OpaquePointer!, _ router: Int,
                                          _ weights: UnsafePointer<Float>!, _ tokens: Int, _ experts: Int) -> graft_status {
    guarded {
        let box = object(try require(options, "options"), as: RunOptionsBox.self)
        let a = object(try require(adapter, "adapter"), as: AdapterBox.self).core
        guard tokens != 0 else {
            try box.control.setOverride(a, router: router, weights: nil, tokens: 0, experts: experts)
            return
        }
        let (n, overflow) = tokens.multipliedReportingOverflow(by: experts)
        guard !overflow, n <= 1 << 31 else { throw GraftError(.limitExceeded, "routing override of \(tokens) × \(experts) weights is too large") }
        let values = Array(UnsafeBufferPointer(start: try require(weights, "weights"), count: n))
        try box.control.setOverride(a, router: router, weights: values, tokens: tokens, experts: experts)
    }
}

@c @implementation
public func graft_routing_record_create(_ out: UnsafeMutablePointer<OpaquePointer?>!) -> graft_status {
    guarded {
        try require(out, "out").pointee = retainedHandle(RoutingRecordBox())
    }
}

@c @implementation
public func graft_routing_record_free(_ record: OpaquePointer!) {
    release(record)
}

@c @implementation
public func graft_run_options_set_routing_record(_ options: OpaquePointer!, _ record: OpaquePointer!) -> graft_status {
    guarded {
        let box = object(try require(options, "options"), as: RunOptionsBox.self)
        box.routingRecord = record.map { object($0, as: RoutingRecordBox.self) }
        box.control.record = box.routingRecord?.core
    }
}

@c @implementation
public func graft_routing_record_count(_ record: OpaquePointer!, _ count: UnsafeMutablePointer<Int>!) -> graft_status {
    guarded {
        let box = object(try require(record, "record"), as: RoutingRecordBox.self)
        try require(count, "count").pointee = box.core.entries.count
    }
}

@c @implementation
public func graft_routing_record_entry(_ record: OpaquePointer!, _ index: Int, _ entry: UnsafeMutablePointer<graft_routing_entry>!) -> graft_status {
    guarded {
        let box = object(try require(record, "record"), as: RoutingRecordBox.self)
        let out = try require(entry, "entry")
        guard Int(out.pointee.struct_size) >= MemoryLayout<graft_routing_entry>.size else {
            throw invalid("entry->struct_size \(out.pointee.struct_size) is smaller than graft_routing_entry (\(MemoryLayout<graft_routing_entry>.size))")
        }
        let all = box.core.entries
        guard index >= 0, index < all.count else { throw invalid("routing record entry \(index) is out of range (the record has \(all.count))") }
        let e = all[index]
        out.pointee.router = UInt32(e.router)
        out.pointee.adapter = box.name(index)
        out.pointee.site = e.site
        out.pointee.tokens = e.tokens
        out.pointee.experts = e.experts
        out.pointee.weights = UnsafePointer(e.weights.pointer(Float.self))
    }
}

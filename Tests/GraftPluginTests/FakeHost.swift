// A fake plugin host: a graft_host_api whose functions record what a plugin adds, with its own
// small safetensors reader. The plugins under test are the real shared objects, dlopened from
// the build directory exactly as the host loads them.
import CGraftPlugin
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Where the test files are.
enum Paths {
    /// The package root (this file is Tests/GraftPluginTests/FakeHost.swift).
    static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()
    static let adapters = root + "/Tests/Fixtures/adapters"

    /// The directory holding libGraftPlugin*.so: $GRAFT_PLUGIN_TEST_DIR, else the test binary's
    /// directory (swift build / swift test put products and tests side by side), else the usual
    /// scratch directories.
    static func pluginDirectory() -> String? {
        var candidates: [String] = []
        if let env = ProcessInfo.processInfo.environment["GRAFT_PLUGIN_TEST_DIR"] { candidates.append(env) }
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            candidates.append((exe as NSString).deletingLastPathComponent)
        }
        for argument in CommandLine.arguments.prefix(1) { candidates.append((argument as NSString).deletingLastPathComponent) }
        candidates += [root + "/.build/debug", root + "/.build-plugins/debug"]
        return candidates.first { FileManager.default.fileExists(atPath: $0 + "/libGraftPluginLoRA.so") }
    }
}

// MARK: - Recorded terms

struct RecordedTerm {
    let site: Int
    let rank: Int
    let a: [Float]
    let b: [Float]
    let scale: Float
    let activation: Int32
}

struct RecordedScale {
    let site: Int
    let which: Int32
    let values: [Float]
}

struct Site {
    let name: String
    let inFeatures: Int64
    let outFeatures: Int64
}

/// One adapter under construction (what the host's graft_adapter_builder is).
final class FakeBuilder {
    let sites: [Site]
    let siteNames: [UnsafeMutablePointer<CChar>]
    var terms: [RecordedTerm] = []
    var scales: [RecordedScale] = []
    var name: String?

    init(sites: [Site]) {
        self.sites = sites
        siteNames = sites.map { strdup($0.name)! }
    }

    deinit { siteNames.forEach { free($0) } }

    var pointer: OpaquePointer { OpaquePointer(Unmanaged.passUnretained(self).toOpaque()) }

    static func from(_ p: OpaquePointer?) -> FakeBuilder {
        Unmanaged<FakeBuilder>.fromOpaque(UnsafeRawPointer(p!)).takeUnretainedValue()
    }
}

/// The host's per-thread error and log lines. Tests that use them run serialized (one suite).
nonisolated(unsafe) var hostError = ""
nonisolated(unsafe) var hostLog: [String] = []

// MARK: - A small safetensors reader (the fake host's, independent of any plugin)

final class TestSafetensors {
    struct Tensor {
        let name: UnsafeMutablePointer<CChar>
        let dtype: UnsafeMutablePointer<CChar>
        let shape: UnsafeMutablePointer<Int64>
        let rank: Int
        let data: UnsafeMutablePointer<Float>
        let count: Int
    }
    var tensors: [Tensor] = []

    init?(path: String) {
        guard let bytes = FileManager.default.contents(atPath: path), bytes.count >= 8 else { return nil }
        let headerLength = bytes.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard headerLength <= UInt64(bytes.count - 8),
              let header = try? JSONSerialization.jsonObject(with: bytes.subdata(in: 8..<(8 + Int(headerLength)))) as? [String: Any]
        else { return nil }
        let base = 8 + Int(headerLength)
        var entries: [(String, String, [Int64], Int, Int)] = []
        for (key, value) in header where key != "__metadata__" {
            guard let info = value as? [String: Any], let dtype = info["dtype"] as? String,
                  let shape = info["shape"] as? [Int], let offsets = info["data_offsets"] as? [Int], offsets.count == 2,
                  offsets[0] <= offsets[1], base + offsets[1] <= bytes.count
            else { return nil }
            entries.append((key, dtype, shape.map(Int64.init), offsets[0], offsets[1]))
        }
        entries.sort { $0.3 < $1.3 }  // file order
        for (key, dtype, shape, begin, end) in entries {
            let count = shape.reduce(1) { $0 * Int($1) }
            let data = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
            let raw = bytes.subdata(in: (base + begin)..<(base + end))
            let width: Int
            switch dtype { case "F32": width = 4; case "F16", "BF16": width = 2; case "F64": width = 8; default: return nil }
            guard raw.count == count * width else { return nil }
            raw.withUnsafeBytes { p in
                for i in 0..<count {
                    switch dtype {
                    case "F32": data[i] = Float(bitPattern: p.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))
                    case "F64": data[i] = Float(Double(bitPattern: p.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))
                    case "BF16": data[i] = Float(bitPattern: UInt32(p.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16)
                    default: data[i] = Float(Float16(bitPattern: p.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
                    }
                }
            }
            let shapePointer = UnsafeMutablePointer<Int64>.allocate(capacity: max(shape.count, 1))
            for (i, extent) in shape.enumerated() { shapePointer[i] = extent }
            tensors.append(Tensor(name: strdup(key)!, dtype: strdup(dtype)!, shape: shapePointer, rank: shape.count,
                                  data: data, count: count))
        }
    }

    deinit {
        for t in tensors {
            free(t.name); free(t.dtype); t.shape.deallocate(); t.data.deallocate()
        }
    }

    func fill(_ index: Int, _ out: UnsafeMutablePointer<graft_st_tensor>) {
        let t = tensors[index]
        out.pointee.rank = UInt32(t.rank)
        out.pointee.name = UnsafePointer(t.name)
        out.pointee.shape = UnsafePointer(t.shape)
        out.pointee.data = UnsafePointer(t.data)
        out.pointee.count = Int64(t.count)
        out.pointee.file_dtype = UnsafePointer(t.dtype)
    }

    func values(_ name: String) -> [Float]? {
        guard let t = tensors.first(where: { String(cString: $0.name) == name }) else { return nil }
        return Array(UnsafeBufferPointer(start: t.data, count: t.count))
    }
}

/// Writes a float32 safetensors file with the tensors in the given order.
func writeSafetensors(_ path: String, _ tensors: [(name: String, shape: [Int], values: [Float])]) throws {
    var header = "{"
    var offset = 0
    for (i, t) in tensors.enumerated() {
        let size = t.values.count * 4
        header += "\(i == 0 ? "" : ",")\"\(t.name)\":{\"dtype\":\"F32\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + size)]}"
        offset += size
    }
    header += "}"
    while (header.utf8.count + 8) % 8 != 0 { header += " " }
    var data = Data()
    var length = UInt64(header.utf8.count).littleEndian
    withUnsafeBytes(of: &length) { data.append(contentsOf: $0) }
    data.append(contentsOf: Array(header.utf8))
    for t in tensors { t.values.withUnsafeBytes { data.append(contentsOf: $0) } }
    try data.write(to: URL(fileURLWithPath: path))
}

// MARK: - The host table

private func setError(_ message: String) { hostError = message }

func makeHostAPI(abiVersion: UInt32 = UInt32(GRAFT_PLUGIN_ABI_MAJOR) << 16 | UInt32(GRAFT_PLUGIN_ABI_MINOR)) -> graft_host_api {
    var api = graft_host_api()
    api.abi_version = abiVersion
    api.struct_size = UInt32(MemoryLayout<graft_host_api>.size)
    api.log = { level, message in hostLog.append("\(level): \(String(cString: message!))") }
    api.set_error = { message in hostError = String(cString: message!) }
    api.alloc = { bytes in
        var p: UnsafeMutableRawPointer?
        return posix_memalign(&p, 64, max(bytes, 1)) == 0 ? p : nil
    }
    api.free = { p in free(p) }
    api.sgemm = { _, _, _, _, _, _, _, _, _, _, _, _, _ in fatalError("sgemm is not used by these plugins") }
    api.safetensors_open = { path, out in
        guard let path, let out else { return GRAFT_PLUGIN_INVALID_ARGUMENT }
        let p = String(cString: path)
        guard let file = TestSafetensors(path: p) else {
            hostError = "fake host: \(p) is not a valid safetensors file"
            return GRAFT_PLUGIN_INVALID_DATA
        }
        out.pointee = OpaquePointer(Unmanaged.passRetained(file).toOpaque())
        return GRAFT_PLUGIN_OK
    }
    api.safetensors_close = { file in
        guard let file else { return }
        Unmanaged<TestSafetensors>.fromOpaque(UnsafeRawPointer(file)).release()
    }
    api.safetensors_count = { file in
        Unmanaged<TestSafetensors>.fromOpaque(UnsafeRawPointer(file!)).takeUnretainedValue().tensors.count
    }
    api.safetensors_get = { file, index, out in
        let f = Unmanaged<TestSafetensors>.fromOpaque(UnsafeRawPointer(file!)).takeUnretainedValue()
        guard index < f.tensors.count, let out, out.pointee.struct_size >= UInt32(MemoryLayout<graft_st_tensor>.size)
        else { return GRAFT_PLUGIN_INVALID_ARGUMENT }
        f.fill(index, out)
        return GRAFT_PLUGIN_OK
    }
    api.safetensors_find = { file, name, out in
        let f = Unmanaged<TestSafetensors>.fromOpaque(UnsafeRawPointer(file!)).takeUnretainedValue()
        let wanted = String(cString: name!)
        guard let index = f.tensors.firstIndex(where: { String(cString: $0.name) == wanted }), let out
        else { return GRAFT_PLUGIN_INVALID_ARGUMENT }
        f.fill(index, out)
        return GRAFT_PLUGIN_OK
    }
    api.site_count = { builder in FakeBuilder.from(builder).sites.count }
    api.site_info = { builder, index, out in
        let b = FakeBuilder.from(builder)
        guard index < b.sites.count, let out else { return GRAFT_PLUGIN_INVALID_ARGUMENT }
        out.pointee.index = UInt32(index)
        out.pointee.name = UnsafePointer(b.siteNames[index])
        out.pointee.node_name = UnsafePointer(b.siteNames[index])
        out.pointee.in_features = b.sites[index].inFeatures
        out.pointee.out_features = b.sites[index].outFeatures
        return GRAFT_PLUGIN_OK
    }
    api.find_site = { builder, module, index in
        let b = FakeBuilder.from(builder)
        let m = String(cString: module!)
        let matches = b.sites.indices.filter { b.sites[$0].name == m || b.sites[$0].name.hasSuffix("." + m) }
        guard matches.count == 1 else {
            hostError = "fake host: no single site named \(m); closest: \(b.sites.prefix(3).map(\.name).joined(separator: ", "))"
            return GRAFT_PLUGIN_INVALID_ARGUMENT
        }
        index!.pointee = matches[0]
        return GRAFT_PLUGIN_OK
    }
    api.add_lowrank = { builder, term in
        let b = FakeBuilder.from(builder)
        let t = term!.pointee
        guard t.struct_size >= UInt32(MemoryLayout<graft_lowrank_term>.size), Int(t.site) < b.sites.count, t.rank >= 1
        else { return GRAFT_PLUGIN_INVALID_ARGUMENT }
        let site = b.sites[Int(t.site)]
        let r = Int(t.rank)
        b.terms.append(RecordedTerm(
            site: Int(t.site), rank: r,
            a: Array(UnsafeBufferPointer(start: t.a, count: r * Int(site.inFeatures))),
            b: Array(UnsafeBufferPointer(start: t.b, count: r * Int(site.outFeatures))),
            scale: t.scale, activation: t.activation))
        return GRAFT_PLUGIN_OK
    }
    api.add_channel_scale = { builder, site, which, values, count in
        let b = FakeBuilder.from(builder)
        guard Int(site) < b.sites.count, which == 0 || which == 1 else { return GRAFT_PLUGIN_INVALID_ARGUMENT }
        let expected = which == 0 ? b.sites[Int(site)].inFeatures : b.sites[Int(site)].outFeatures
        guard count == expected else { return GRAFT_PLUGIN_SHAPE_MISMATCH }
        b.scales.append(RecordedScale(site: Int(site), which: which, values: Array(UnsafeBufferPointer(start: values, count: Int(count)))))
        return GRAFT_PLUGIN_OK
    }
    api.set_name = { builder, name in
        FakeBuilder.from(builder).name = String(cString: name!)
        return GRAFT_PLUGIN_OK
    }
    return api
}

// MARK: - Loading a plugin shared object

/// A plugin shared object opened like the host opens it, with one host table that lives for the
/// whole test run (plugins keep the pointer).
final class LoadedPlugin: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer
    let entry: graft_plugin_entry_fn
    let host: UnsafeMutablePointer<graft_host_api>
    let table: UnsafePointer<graft_plugin>

    init(_ library: String) throws {
        guard let dir = Paths.pluginDirectory() else {
            throw PluginTestError("no lib\(library).so found: run `swift build` first, or set GRAFT_PLUGIN_TEST_DIR")
        }
        let path = dir + "/lib\(library).so"
        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE) else {
            throw PluginTestError("dlopen \(path): \(String(cString: dlerror()))")
        }
        guard let symbol = dlsym(handle, GRAFT_PLUGIN_ENTRY_SYMBOL) else { throw PluginTestError("\(path) has no graft_plugin_entry") }
        self.handle = handle
        entry = unsafeBitCast(symbol, to: graft_plugin_entry_fn.self)
        host = .allocate(capacity: 1)
        host.initialize(to: makeHostAPI())
        guard let table = entry(host) else { throw PluginTestError("\(path): graft_plugin_entry returned NULL") }
        self.table = table
    }

    func claims(_ path: String) -> Int32 { table.pointee.claims!(table.pointee.ctx, path) }

    /// Loads `path` against a builder with `sites`; returns the status, the builder and the error.
    func load(_ path: String, sites: [Site]) -> (status: Int32, builder: FakeBuilder, error: String) {
        let builder = FakeBuilder(sites: sites)
        hostError = ""
        let status = table.pointee.load!(table.pointee.ctx, path, builder.pointer)
        return (status, builder, hostError)
    }
}

struct PluginTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A fresh temporary directory named `name` (inside a unique parent).
func temporaryDirectory(_ name: String) throws -> String {
    let parent = NSTemporaryDirectory() + "graft-plugin-tests-" + UUID().uuidString
    let dir = parent + "/" + name
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

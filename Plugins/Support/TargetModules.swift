// PEFT's rule for a target_modules list of names, shared by the plugins that read one.

/// Whether `module` is targeted by a list of names: equal to one, or ending in "." + one
/// (PEFT's check_target_module_exists for plain names). nil: no list, every module.
package func targetNamesMatch(_ names: [String]?, _ module: String) -> Bool {
    guard let names else { return true }
    return names.contains { module == $0 || module.hasSuffix("." + $0) }
}

/// The list as messages show it: ["query", "value"], or (none).
package func describeTargetNames(_ names: [String]?) -> String {
    guard let names else { return "(none)" }
    return "[" + names.map { "\"\($0)\"" }.joined(separator: ", ") + "]"
}

/// The config's "target_modules" as a list of names (nil when absent or null).
package func parseTargetNames(_ json: JSONValue) throws(PluginFailure) -> [String]? {
    switch configMember(json, "target_modules") {
    case nil: return nil
    case .array(let elements)?:
        var names: [String] = []
        for element in elements {
            guard case .string(let name) = element, !name.isEmpty else { throw configError("target_modules", "a list of module names", element) }
            names.append(name)
        }
        return names
    case let other?:
        throw configError("target_modules", "a list of module names (names match a module equal to them or ending in \".name\")", other)
    }
}

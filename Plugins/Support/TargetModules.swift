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

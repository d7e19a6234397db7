import ArgumentParser
import GraftCore

@main
struct GraftCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "graft",
        abstract: "Run ONNX models on the CPU with Graft.",
        subcommands: [Inspect.self, Run.self, Adapters.self, Bench.self]
    )
}

/// Turns a GraftError into a message on stderr and a non-zero exit, never a trap.
func reportingErrors<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let e as GraftError {
        printError("error: \(e.message)")
        throw ExitCode(2)
    }
}

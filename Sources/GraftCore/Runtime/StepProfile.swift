import Dispatch

/// Wall time per operator type over the runs of a session that has one (`graft bench
/// --profile`): where a model's time goes, for docs/PERFORMANCE.md. A step's adapter work is
/// counted with it. Costs two clock reads per step, so sessions have none by default.
package final class StepProfile: @unchecked Sendable {
    package struct Entry: Sendable {
        package let opType: String
        /// Steps of this type per run (of the last run's plan).
        package let steps: Int
        /// Total seconds over every recorded run.
        package let seconds: Double
    }

    private var seconds: [String: Double] = [:]
    private var steps: [String: Int] = [:]
    package private(set) var runs = 0
    private var stepsThisRun: [String: Int] = [:]

    package init() {}

    func beginRun() {
        runs += 1
        stepsThisRun.removeAll(keepingCapacity: true)
    }

    func add(_ opType: String, nanoseconds: UInt64) {
        seconds[opType, default: 0] += Double(nanoseconds) * 1e-9
        stepsThisRun[opType, default: 0] += 1
        steps[opType] = stepsThisRun[opType]
    }

    /// Operator types by total time, longest first.
    package var entries: [Entry] {
        seconds.map { Entry(opType: $0.key, steps: steps[$0.key] ?? 0, seconds: $0.value) }
            .sorted { $0.seconds > $1.seconds }
    }

    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
}

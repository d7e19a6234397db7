/// SplitMix64: a tiny deterministic generator for synthetic data (bench inputs, test inputs).
/// Not for anything that needs unpredictability. The same seed gives the same sequence on
/// every platform.
public struct SplitMix64 {
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 24 bits (every value exact in Float).
    public mutating func unit() -> Float { Float(next() >> 40) / Float(1 << 24) }
}

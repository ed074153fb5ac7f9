// Seeded pseudo-random SAM 2 parameters, for benchmarks without a checkpoint.
import TensorCore

/// Deterministic pseudo-random parameters of the right shapes, for benchmarks without a checkpoint
/// (timing does not depend on the values). Norm weights near 1, other tensors ~ U(-1, 1)/sqrt(fan_in).
public struct SAM2RandomWeights: TensorSource, Sendable {
    public var seed: UInt64
    public init(seed: UInt64 = 0) { self.seed = seed }

    /// Every key reads as a tensor of the shape asked for.
    public var scope: WeightScope { WeightScope(self) }

    /// No stored shapes: modules whose widths come from the file (the memory path) cannot be built from this.
    public func shape(_ key: String) -> [Int]? { nil }

    public func tensor(_ key: String, shape: [Int]) throws -> Tensor {
        // SplitMix64 seeded by the key, so every tensor is reproducible on its own.
        var state = seed ^ key.utf8.reduce(UInt64(1469598103934665603)) { ($0 ^ UInt64($1)) &* 1099511628211 }
        func next() -> Float {
            state &+= 0x9E3779B97F4A7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
            z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
            z ^= z >> 31
            return Float(z >> 40) / Float(1 << 24) * 2 - 1
        }
        let isNormWeight = key.contains("norm") && key.hasSuffix(".weight")
        let fanIn = shape.count > 1 ? shape.dropFirst().reduce(1, *) : 1
        let scale = key.hasSuffix(".bias") ? 0.1 : 1 / Float(fanIn).squareRoot()
        return Tensor(shape: shape) { out in
            for i in 0..<out.count { out[i] = isNormWeight ? 1 + 0.1 * next() : scale * next() }
        }
    }

    /// A [3, size, size] tensor of N(0,1)-like values (sum of uniforms), a stand-in for a normalized image.
    public func randomImage(size: Int) -> Tensor {
        var state = seed &+ 0x51_7CC1_B727_220A
        return Tensor(shape: [3, size, size]) { out in
            for i in 0..<out.count {
                var sum: Float = 0
                for _ in 0..<4 {
                    state = state &* 6364136223846793005 &+ 1442695040888963407
                    sum += Float(state >> 40) / Float(1 << 24)
                }
                out[i] = (sum - 2) * 1.732
            }
        }
    }
}

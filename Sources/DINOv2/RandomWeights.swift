import TensorCore

extension DINOv2Model {
    /// A model of architecture `config` with seeded random weights, for benchmarks (no checkpoint needed).
    /// Linear weights have std 1/sqrt(fan_in) so activations stay O(1) through any depth.
    public init(randomWeights c: DINOv2Config, seed: UInt64 = 0) {
        var state = seed &+ 0x9E37_79B9_7F4A_7C15
        // SplitMix64 -> uniform [-1, 1) scaled to the requested standard deviation (uniform std = 1/sqrt 3).
        func random(_ shape: [Int], std: Float, mean: Float = 0) -> Tensor {
            Tensor(shape: shape) { out in
                for i in out.indices {
                    state &+= 0x9E37_79B9_7F4A_7C15
                    var z = state
                    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
                    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
                    z ^= z >> 31
                    let u = Float(z >> 40) / Float(1 << 24) * 2 - 1
                    out[i] = mean + u * std * 1.7320508
                }
            }
        }
        let d = c.hiddenSize, p = c.patchSize
        func linear(_ out: Int, _ inFeatures: Int) -> Linear {
            Linear(
                weight: random([out, inFeatures], std: 1 / Float(inFeatures).squareRoot()),
                bias: random([out], std: 0.1))
        }
        func randomNorm() -> LayerNorm {
            LayerNorm(weight: random([d], std: 0.2, mean: 1), bias: random([d], std: 0.1), eps: c.layerNormEps)
        }
        config = c
        keyLayout = .huggingFace(prefix: "")
        patchEmbed = PatchEmbed(
            weight: random([d, 3, p, p], std: 1 / Float(3 * p * p).squareRoot()), bias: random([d], std: 0.1))
        clsToken = random([d], std: 0.5)
        registerTokens = random([c.registers, d], std: 0.5)
        position = PositionEmbedding(
            table: random([1 + c.positionGrid * c.positionGrid, d], std: 0.5),
            grid: c.positionGrid, resampling: c.positionResampling)
        blocks = (0..<c.depth).map { _ in
            let feedForward: FeedForward
            switch c.feedForward {
            case .mlp(let h): feedForward = .mlp(Mlp(fc1: linear(h, d), fc2: linear(d, h)))
            case .swiGLU(let h): feedForward = .swiGLU(SwiGLUFFN(w12: linear(2 * h, d), w3: linear(d, h)))
            }
            return Block(
                norm1: randomNorm(),
                attention: Attention(qkv: linear(3 * d, d), projection: linear(d, d), heads: c.heads),
                layerScale1: LayerScale(gamma: random([d], std: 0.3, mean: 0.6)), norm2: randomNorm(),
                feedForward: feedForward, layerScale2: LayerScale(gamma: random([d], std: 0.3, mean: 0.6)))
        }
        norm = randomNorm()
    }
}

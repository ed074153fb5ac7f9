import TensorCore

/// The two feed-forward kinds DINOv2 blocks use.
enum FeedForward: Sendable {
    case mlp(Mlp)
    case swiGLU(SwiGLUFFN)

    func callAsFunction(_ x: Tensor) -> Tensor {
        switch self {
        case .mlp(let m): m(x)
        case .swiGLU(let s): s(x)
        }
    }
}

/// One pre-norm transformer block: x += ls1 ⊙ attn(norm1(x)); x += ls2 ⊙ ffn(norm2(x)).
struct Block: Sendable {
    let norm1: LayerNorm
    let attention: Attention
    let layerScale1: LayerScale
    let norm2: LayerNorm
    let feedForward: FeedForward
    let layerScale2: LayerScale

    /// x [N·T, D], updated in place.
    func callAsFunction(_ x: inout Tensor, images: Int) {
        layerScale1.addScaled(attention(norm1(x), images: images), to: &x)
        layerScale2.addScaled(feedForward(norm2(x)), to: &x)
    }
}

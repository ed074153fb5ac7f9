import TensorCore

/// The ViT-S/B/L feed-forward: fc1 (D -> 4D), exact (erf) GELU, fc2 (4D -> D).
struct Mlp: Sendable {
    let fc1: Linear
    let fc2: Linear

    func callAsFunction(_ x: Tensor) -> Tensor {
        var hidden = fc1(x)
        geluInPlace(&hidden)
        return fc2(hidden)
    }
}

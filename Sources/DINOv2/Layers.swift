import TensorCore

/// `nn.Linear` weights, PyTorch layout: weight [out, in], bias [out].
struct Linear: Sendable {
    let weight: Tensor
    let bias: Tensor?

    var outFeatures: Int { weight.shape[0] }

    /// x [rows, in] -> [rows, out], one GEMM (weight read transposed by flag).
    func callAsFunction(_ x: Tensor) -> Tensor { linear(x, weight: weight, bias: bias) }
}

/// `nn.LayerNorm` over the last axis (biased variance), eps 1e-6 in every DINOv2 checkpoint.
struct LayerNorm: Sendable {
    let weight: Tensor
    let bias: Tensor
    let eps: Float

    func callAsFunction(_ x: Tensor) -> Tensor { layerNorm(x, weight: weight, bias: bias, eps: eps) }
}

/// LayerScale (Touvron et al., CaiT): a learned per-channel gain on a residual branch.
struct LayerScale: Sendable {
    let gamma: Tensor

    /// residual += gamma ⊙ branch, fused into one pass over [rows, D] (the branch is never scaled in a copy).
    func addScaled(_ branch: Tensor, to residual: inout Tensor) {
        let d = gamma.count
        precondition(branch.shape == residual.shape && residual.dim(-1) == d, "LayerScale shapes \(branch.shape) / \(residual.shape)")
        let rows = residual.count / d
        gamma.withUnsafeBufferPointer { g in
            branch.withUnsafeBufferPointer { b in
                residual.withUnsafeMutableBufferPointer { r in
                    for row in 0..<rows {
                        let o = row * d
                        for j in 0..<d { r[o + j] += g[j] * b[o + j] }
                    }
                }
            }
        }
    }
}

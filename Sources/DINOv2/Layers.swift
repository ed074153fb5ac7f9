// DINOv2's own layer; Linear and LayerNorm are TensorCore's.
import TensorCore

/// LayerScale (Touvron et al., CaiT): a learned per-channel gain on a residual branch.
struct LayerScale: Sendable {
    let gamma: Tensor

    /// residual += gamma ⊙ branch, fused into one pass over [rows, D] (the branch is never scaled in a copy).
    func addScaled(_ branch: Tensor, to residual: inout Tensor) {
        let d = gamma.count
        precondition(
            branch.shape == residual.shape && residual.dim(-1) == d,
            "LayerScale shapes \(branch.shape) / \(residual.shape)")
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

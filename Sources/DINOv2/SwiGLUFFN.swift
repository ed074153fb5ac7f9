import TensorCore

/// The ViT-g feed-forward (Shazeer 2020): w12 (D -> 2H), silu(first half) ⊙ second half, w3 (H -> D).
struct SwiGLUFFN: Sendable {
    /// weight [2H, D]; rows [0, H) are the gate (through SiLU), [H, 2H) the value.
    let w12: Linear
    let w3: Linear

    func callAsFunction(_ x: Tensor) -> Tensor {
        let both = w12(x)
        let rows = both.shape[0], h = both.shape[1] / 2
        // Gate halves gathered into their own tensor so SiLU runs as one vectorized pass, then times the values.
        var gated = Tensor(shape: [rows, h]) { out in
            both.withUnsafeBufferPointer { src in
                for r in 0..<rows { (out.baseAddress! + r * h).update(from: src.baseAddress! + r * 2 * h, count: h) }
            }
        }
        siluInPlace(&gated)
        gated.withUnsafeMutableBufferPointer { g in
            both.withUnsafeBufferPointer { src in
                for r in 0..<rows {
                    let value = src.baseAddress! + r * 2 * h + h, o = g.baseAddress! + r * h
                    for j in 0..<h { o[j] *= value[j] }
                }
            }
        }
        return w3(gated)
    }
}

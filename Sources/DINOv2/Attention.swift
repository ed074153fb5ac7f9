import TensorCore

/// Multi-head self-attention: fused qkv projection, softmax(QKᵀ/√d)V per head, output projection.
struct Attention: Sendable {
    /// weight [3D, D]: rows [0, D) give Q, [D, 2D) K, [2D, 3D) V; head h owns columns [h·d, (h+1)·d) of each.
    let qkv: Linear
    let projection: Linear
    let heads: Int

    /// x [N·T, D] (N images of T tokens) -> [N·T, D].
    func callAsFunction(_ x: Tensor, images: Int) -> Tensor {
        let d = projection.outputDim
        let rows = x.shape[0], tokens = rows / images
        let fused = qkv(x)  // [N·T, 3D]
        // Split the fused rows into three [N, T, D] tensors (O(T·D) copies next to O(T·D²) GEMMs).
        var parts = [Tensor]()
        for part in 0..<3 {
            parts.append(
                Tensor(shape: [images, tokens, d]) { out in
                    fused.withUnsafeBufferPointer { src in
                        for r in 0..<rows {
                            (out.baseAddress! + r * d).update(from: src.baseAddress! + r * 3 * d + part * d, count: d)
                        }
                    }
                })
        }
        let mixed = attention(query: parts[0], key: parts[1], value: parts[2], heads: heads)
        return projection(mixed.reshaped([rows, d]))
    }
}

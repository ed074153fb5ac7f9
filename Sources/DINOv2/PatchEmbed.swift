import TensorCore

/// Patch embedding: a p x p, stride-p convolution 3 -> D, done as one GEMM over unfolded patches.
///
/// Each p x p x 3 patch is flattened in (channel, row, column) order, which is the conv weight's own
/// [D, 3, p, p] order, so the weight is used as a [D, 3·p·p] matrix without reordering. Tokens come out
/// row-major over the patch grid (index = py·Wp + px), already token-major ([N·Np, D]): no transpose needed.
struct PatchEmbed: Sendable {
    let projection: Linear  // weight [D, 3·p·p]
    let patchSize: Int

    init(weight: Tensor, bias: Tensor) {
        let d = weight.shape[0]
        patchSize = weight.shape[2]
        projection = Linear(weight: weight.reshaped([d, weight.count / d]), bias: bias)
    }

    /// pixels [N, 3, H, W] with H, W multiples of p -> tokens [N·(H/p)·(W/p), D].
    func callAsFunction(_ pixels: Tensor) -> Tensor {
        let n = pixels.shape[0], c = pixels.shape[1], h = pixels.shape[2], w = pixels.shape[3]
        let p = patchSize, rows = h / p, cols = w / p
        let patchLength = c * p * p
        let unfolded = Tensor(shape: [n * rows * cols, patchLength]) { out in
            pixels.withUnsafeBufferPointer { src in
                let s = src.baseAddress!, o = out.baseAddress!
                for image in 0..<n {
                    for py in 0..<rows {
                        for px in 0..<cols {
                            var dst = o + ((image * rows + py) * cols + px) * patchLength
                            for ch in 0..<c {
                                for ky in 0..<p {
                                    let line = s + ((image * c + ch) * h + py * p + ky) * w + px * p
                                    dst.update(from: line, count: p)
                                    dst += p
                                }
                            }
                        }
                    }
                }
            }
        }
        return projection(unfolded)
    }
}

// Position encodings used by the memory path (sam2.md §4.2, §6.2, §7.3). All are input-independent
// except for the pointer distances; computed in fp32 the way PyTorch does, so they match to ~1 ulp.
import Foundation
import TensorCore

enum MemoryPositionEncoding {
    /// `PositionEmbeddingSine(normalize, scale 2π, T 10000)` of an H×W map with `channels` channels:
    /// channels [0, C/2) encode the row, [C/2, C) the column; even channel d is sin(pos / t_d), odd is cos.
    /// Used for the memory tokens (C = memory dim) and the target tokens (C = hidden dim). Returns [C, H, W].
    static func sine(channels: Int, height: Int, width: Int) -> Tensor {
        let half = channels / 2
        let scale = Float(2 * Double.pi)
        let dimT = (0..<half).map { d in powf(10000, Float(2 * (d / 2)) / Float(half)) }
        return Tensor(shape: [channels, height, width]) { out in
            for d in 0..<half {
                for i in 0..<height {
                    let y = Float(i + 1) / (Float(height) + 1e-6) * scale / dimT[d]
                    for j in 0..<width {
                        let x = Float(j + 1) / (Float(width) + 1e-6) * scale / dimT[d]
                        out[(d * height + i) * width + j] = d % 2 == 0 ? sinf(y) : cosf(y)
                        out[((half + d) * height + i) * width + j] = d % 2 == 0 ? sinf(x) : cosf(x)
                    }
                }
            }
        }
    }

    /// `get_1d_sine_pe(u, dim)`: [sin(u / t_j) for j < dim/2, cos(u / t_j) for j < dim/2], t_j = 10000^(2⌊j/2⌋/(dim/2)).
    static func sine1D(_ positions: [Float], dim: Int) -> Tensor {
        let half = dim / 2
        let dimT = (0..<half).map { j in powf(10000, Float(2 * (j / 2)) / Float(half)) }
        return Tensor(shape: [positions.count, dim]) { out in
            for (n, u) in positions.enumerated() {
                for j in 0..<half {
                    let v = u / dimT[j]
                    out[n * dim + j] = sinf(v)
                    out[n * dim + half + j] = cosf(v)
                }
            }
        }
    }

    /// Axial RoPE angles for a `width`×`height` grid (token n = y·width + x) and a head of `dim` channels:
    /// dim/2 complex pairs, pair m < dim/4 rotates by x·f_m, pair m ≥ dim/4 by y·f_{m−dim/4},
    /// f_j = 1 / θ^(4j/dim). Returns (cos, sin), each [height·width, dim/2].
    static func axialRoPE(dim: Int, width: Int, height: Int, theta: Float = 10000) -> (cos: [Float], sin: [Float]) {
        let quarter = dim / 4, pairs = dim / 2
        let freqs = (0..<quarter).map { j in 1 / powf(theta, Float(4 * j) / Float(dim)) }
        var cosT = [Float](repeating: 0, count: width * height * pairs)
        var sinT = cosT
        for n in 0..<(width * height) {
            let x = Float(n % width), y = Float(n / width)
            for m in 0..<pairs {
                let angle = m < quarter ? x * freqs[m] : y * freqs[m - quarter]
                cosT[n * pairs + m] = cosf(angle)
                sinT[n * pairs + m] = sinf(angle)
            }
        }
        return (cosT, sinT)
    }
}

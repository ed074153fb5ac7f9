// The sine and rotary position encodings of SAM 2 (`PositionEmbeddingSine`, `get_1d_sine_pe`,
// `compute_axial_cis`). Input-independent except for the pointer distances; computed in fp32 the way
// PyTorch does, so they match to ~1 ulp.
import Foundation
import TensorCore

public enum SinePositionEncoding {
    /// `PositionEmbeddingSine(normalize, scale 2π, T 10000)` of an H×W map, [channels, height, width]:
    /// the first channels/2 encode the row (y), the rest the column (x); within each half, even channels
    /// are sin and odd ones cos of position / 10000^(2*floor(d/2)/(channels/2)). Used for the FPN levels,
    /// the memory tokens (C = memory dim) and the target tokens (C = hidden dim).
    /// Arithmetic in Float like the reference (positions (i+1)/(n+1e-6)*2*pi in fp32).
    public static func encoding(channels: Int, height: Int, width: Int) -> Tensor {
        precondition(channels % 2 == 0, "sine position encoding needs an even channel count")
        let features = channels / 2
        let scale = Float(2 * Double.pi)
        let frequencies: [Float] = (0..<features).map { d in
            powf(10000, Float(2 * (d / 2)) / Float(features))
        }
        func embed(_ i: Int, _ n: Int) -> Float { Float(i + 1) / (Float(n) + 1e-6) * scale }
        return Tensor(shape: [channels, height, width]) { out in
            for d in 0..<features {
                let f = frequencies[d]
                let useSin = d % 2 == 0
                for y in 0..<height {
                    let ay = embed(y, height) / f
                    let vy = useSin ? sinf(ay) : cosf(ay)
                    let rowY = out.baseAddress! + (d * height + y) * width
                    let rowX = out.baseAddress! + ((features + d) * height + y) * width
                    for x in 0..<width {
                        let ax = embed(x, width) / f
                        rowY[x] = vy
                        rowX[x] = useSin ? sinf(ax) : cosf(ax)
                    }
                }
            }
        }
    }

    /// `get_1d_sine_pe(u, dim)`: [sin(u / t_j) for j < dim/2, cos(u / t_j) for j < dim/2], t_j =
    /// 10000^(2⌊j/2⌋/(dim/2)).
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

/// [C, H, W] -> tokens [H·W, C] (row-major token order, n = y·W + x).
func tokenRows(_ map: Tensor) -> Tensor {
    let c = map.dim(0), hw = map.dim(1) * map.dim(2)
    return permuted(map.reshaped([c, hw]), [1, 0])
}

/// Tokens [H·W, C] -> [C, H, W].
func featureMap(_ tokens: Tensor, height: Int, width: Int) -> Tensor {
    permuted(tokens, [1, 0]).reshaped([tokens.dim(1), height, width])
}

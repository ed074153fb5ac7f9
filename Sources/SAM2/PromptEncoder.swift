// SAM 2 prompt encoder (`prompt_encoder.py PromptEncoder`): sparse tokens for points/boxes (random-Fourier PE + learned
// per-label embeddings), a dense embedding from a low-resolution mask prompt (or the learned
// no-mask embedding), and the dense image PE the decoder uses as key positions.
import Foundation
import TensorCore

/// A point prompt, SAM's labels: 1 foreground, 0 background, −1 padding ("not a point"), 2/3 box corners.
/// Coordinates are model-input pixels (0..<imageSize) where the heads take it; in a `SAM2Prompt` they
/// are the target image's own pixels (x = column, y = row).
public struct SAM2Point: Sendable, Equatable {
    public var x: Float
    public var y: Float
    public var label: Int
    public init(x: Float, y: Float, label: Int) {
        self.x = x
        self.y = y
        self.label = label
    }
}

extension SAM2Point {
    /// A box as the SAM 2 predictors pass it to the heads: two points labelled 2 (top-left) and 3
    /// (bottom-right), placed before any click points.
    public static func corners(of box: SAM2Box) -> [SAM2Point] {
        [SAM2Point(x: box.x0, y: box.y0, label: 2), SAM2Point(x: box.x1, y: box.y1, label: 3)]
    }
}

/// A box prompt (top-left x0, y0; bottom-right x1, y1), in the same coordinates as `SAM2Point`.
public struct SAM2Box: Sendable, Equatable {
    public var x0: Float, y0: Float, x1: Float, y1: Float
    public init(x0: Float, y0: Float, x1: Float, y1: Float) {
        self.x0 = x0
        self.y0 = y0
        self.x1 = x1
        self.y1 = y1
    }
}

public struct PromptEncoder: Sendable {
    let embedDim: Int
    let imageSize: Int
    let gridSize: Int
    /// Random-Fourier frequencies [2, embedDim/2] (row 0 for x, row 1 for y).
    let gaussian: Tensor
    /// Learned additions for labels 0...3, each [embedDim].
    let pointEmbeddings: [Tensor]
    let notAPoint: Tensor
    let noMask: Tensor
    /// `mask_downscaling`: conv 2x2 s2, LN2d, GELU, conv 2x2 s2, LN2d, GELU, conv 1x1.
    let maskConvs: [Conv2d]
    let maskNorms: [LayerNorm]
    /// The dense image PE [embedDim, grid, grid] (input-independent, computed once).
    public let imagePositionEncoding: Tensor

    /// `scope`: `sam_prompt_encoder`.
    init(_ scope: WeightScope, config: SAM2Config) throws {
        let d = config.hiddenDim
        embedDim = d
        imageSize = config.imageSize
        gridSize = config.featureSize
        gaussian = try scope.tensor("pe_layer.positional_encoding_gaussian_matrix", shape: [2, d / 2])
        pointEmbeddings = try (0..<4).map {
            try scope["point_embeddings"][$0].tensor("weight", shape: [1, d]).reshaped([d])
        }
        notAPoint = try scope.tensor("not_a_point_embed.weight", shape: [1, d]).reshaped([d])
        noMask = try scope.tensor("no_mask_embed.weight", shape: [1, d]).reshaped([d])
        let downscaling = scope["mask_downscaling"]
        let hidden = downscaling.shape("3.weight")?.first ?? 16  // absent: the read below names it
        maskConvs = [
            try Conv2d(downscaling[0], input: 1, output: hidden / 4, kernel: 2, stride: 2),
            try Conv2d(downscaling[3], input: hidden / 4, output: hidden, kernel: 2, stride: 2),
            try Conv2d(downscaling[6], input: hidden, output: d, kernel: 1),
        ]
        maskNorms = [
            try LayerNorm(downscaling[1], dim: hidden / 4, eps: 1e-6),
            try LayerNorm(downscaling[4], dim: hidden, eps: 1e-6),
        ]
        // Grid cell (i, j) sits at ((j + 0.5)/g, (i + 0.5)/g), x first.
        let g = config.featureSize
        var coords: [(Float, Float)] = []
        for i in 0..<g { for j in 0..<g { coords.append(((Float(j) + 0.5) / Float(g), (Float(i) + 0.5) / Float(g))) } }
        let encoded = Self.fourier(coords, gaussian: gaussian)  // [g·g, d]
        imagePositionEncoding = featureMap(encoded, height: g, width: g)
    }

    /// Random-Fourier encoding of normalized coordinates in [0, 1]²: [sin(2π(2c−1)·G), cos(...)] -> [N, d].
    static func fourier(_ coords: [(Float, Float)], gaussian: Tensor) -> Tensor {
        let half = gaussian.dim(1), d = 2 * half
        let twoPi = Float(2 * Double.pi)
        return Tensor(shape: [coords.count, d]) { out in
            gaussian.withUnsafeBufferPointer { g in
                for (n, c) in coords.enumerated() {
                    let cx = 2 * c.0 - 1, cy = 2 * c.1 - 1
                    for j in 0..<half {
                        let v = twoPi * (cx * g[j] + cy * g[half + j])
                        out[n * d + j] = sinf(v)
                        out[n * d + half + j] = cosf(v)
                    }
                }
            }
        }
    }

    func encodeCoordinates(_ points: [(Float, Float)]) -> Tensor {
        // +0.5: pixel centres; then normalized by the model input size.
        Self.fourier(
            points.map { (($0.0 + 0.5) / Float(imageSize), ($0.1 + 0.5) / Float(imageSize)) }, gaussian: gaussian)
    }

    /// Sparse prompt tokens [N, d]: the points (plus one padding point when there is no box), then the
    /// two box corners. With no points and no box this is what SAM 2 feeds a prompt-free decoder: two
    /// `not_a_point` tokens (one padding point given by the caller of the heads, one added here).
    public func sparseEmbeddings(points: [SAM2Point], box: SAM2Box? = nil) -> Tensor {
        var all = points.isEmpty && box == nil ? [SAM2Point(x: 0, y: 0, label: -1)] : points
        if box == nil { all.append(SAM2Point(x: 0, y: 0, label: -1)) }
        var parts: [Tensor] = []
        if !all.isEmpty {
            var e = encodeCoordinates(all.map { ($0.x, $0.y) })
            let d = embedDim
            e.withUnsafeMutableBufferPointer { eb in
                for (n, p) in all.enumerated() {
                    let row = n * d
                    if p.label == -1 {
                        notAPoint.withUnsafeBufferPointer { for j in 0..<d { eb[row + j] = $0[j] } }
                    } else if (0...3).contains(p.label) {
                        pointEmbeddings[p.label].withUnsafeBufferPointer { for j in 0..<d { eb[row + j] += $0[j] } }
                    }
                }
            }
            parts.append(e)
        }
        if let box {
            var e = encodeCoordinates([(box.x0, box.y0), (box.x1, box.y1)])
            let d = embedDim
            e.withUnsafeMutableBufferPointer { eb in
                pointEmbeddings[2].withUnsafeBufferPointer { for j in 0..<d { eb[j] += $0[j] } }
                pointEmbeddings[3].withUnsafeBufferPointer { for j in 0..<d { eb[d + j] += $0[j] } }
            }
            parts.append(e)
        }
        return parts.count == 1 ? parts[0] : concatenated(parts, axis: 0)
    }

    /// The prompt-free sparse tokens (2 × not_a_point), as `_forward_sam_heads` builds them.
    public var emptySparseEmbeddings: Tensor { sparseEmbeddings(points: []) }

    /// Dense embedding [d, g, g]: mask prompt [1, 4g, 4g] (logits) through the downscaling convs,
    /// or the learned no-mask embedding everywhere.
    public func denseEmbeddings(mask: Tensor?) -> Tensor {
        guard let mask else {
            let g = gridSize, d = embedDim
            return Tensor(shape: [d, g, g]) { out in
                noMask.withUnsafeBufferPointer { nm in
                    for c in 0..<d { for i in 0..<(g * g) { out[c * g * g + i] = nm[c] } }
                }
            }
        }
        var x = maskNorms[0].channels(maskConvs[0](mask))
        geluInPlace(&x)
        x = maskNorms[1].channels(maskConvs[1](x))
        geluInPlace(&x)
        return maskConvs[2](x)
    }
}

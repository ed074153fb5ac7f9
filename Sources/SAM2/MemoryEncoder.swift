// SAM 2 memory encoder (`memory_encoder.py MemoryEncoder`): turns a frame's features and its mask into a memory.
// mask (image size) -> MaskDownSampler (4x [conv3x3 s2 -> LN2d -> GELU], 1x1 conv) -> + pix_feat_proj(features)
// -> fuser (2 ConvNeXt blocks) -> out_proj (1x1 conv to the memory dim).
import TensorCore

/// Four stride-2 3x3 convolutions (channels x4 each) with LayerNorm2d + GELU, then a 1x1 conv:
/// a 1 x S x S mask becomes hidden x S/16 x S/16.
struct MaskDownSampler: Sendable {
    let convs: [Conv2d]
    let norms: [LayerNorm]
    let final: Conv2d

    /// `scope`: `memory_encoder.mask_downsampler` (its `encoder` Sequential: conv, norm, GELU per stage).
    init(_ scope: WeightScope, hiddenDim: Int) throws {
        let encoder = scope["encoder"]
        var convs: [Conv2d] = [], norms: [LayerNorm] = []
        var channels = 1
        for i in 0..<4 {
            let out = channels * 4
            convs.append(try Conv2d(encoder[3 * i], input: channels, output: out, kernel: 3, stride: 2, padding: 1))
            norms.append(try LayerNorm(encoder[3 * i + 1], dim: out, eps: 1e-6))
            channels = out
        }
        self.convs = convs
        self.norms = norms
        final = try Conv2d(encoder[12], input: channels, output: hiddenDim, kernel: 1)
    }

    /// mask [1, S, S] -> [hidden, S/16, S/16]
    func callAsFunction(_ mask: Tensor) -> Tensor {
        var x = mask
        for (conv, norm) in zip(convs, norms) {
            x = norm.channels(conv(x))
            geluInPlace(&x)
        }
        return final(x)
    }
}

/// ConvNeXt block: depthwise 7x7 -> LN2d -> pointwise 4x MLP (GELU) -> layer scale -> residual.
struct CXBlock: Sendable {
    let depthwise: Conv2d
    let norm: LayerNorm
    // The pointwise linears run as 1x1 convs on the [C, H, W] map (one GEMM each, no transposes).
    let pointwise1: Conv2d
    let pointwise2: Conv2d
    let layerScale: Tensor

    /// `scope`: one `memory_encoder.fuser.layers.i`.
    init(_ scope: WeightScope, dim: Int) throws {
        depthwise = try Conv2d(scope["dwconv"], input: dim, output: dim, kernel: 7, padding: 3, groups: dim)
        norm = try LayerNorm(scope["norm"], dim: dim, eps: 1e-6)
        let hidden = scope.shape("pwconv1.weight")?.first ?? 4 * dim
        pointwise1 = Conv2d(pointwise: try Linear(scope["pwconv1"], input: dim, output: hidden))
        pointwise2 = Conv2d(pointwise: try Linear(scope["pwconv2"], input: hidden, output: dim))
        layerScale = try scope.tensor("gamma", shape: [dim])
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        var y = norm.channels(depthwise(x))
        y = pointwise1(y)
        geluInPlace(&y)
        y = pointwise2(y)
        let c = y.dim(0), hw = y.dim(1) * y.dim(2)
        var out = x
        out.withUnsafeMutableBufferPointer { o in
            y.withUnsafeBufferPointer { yb in
                layerScale.withUnsafeBufferPointer { g in
                    for ch in 0..<c {
                        let s = g[ch]
                        for i in (ch * hw)..<((ch + 1) * hw) { o[i] += s * yb[i] }
                    }
                }
            }
        }
        return out
    }
}

public struct MemoryEncoder: Sendable {
    let maskDownSampler: MaskDownSampler
    let pixelProjection: Conv2d
    let fuser: [CXBlock]
    let outputProjection: Conv2d

    /// `scope`: `memory_encoder`.
    init(_ scope: WeightScope, config: SAM2Config) throws {
        let d = config.hiddenDim
        maskDownSampler = try MaskDownSampler(scope["mask_downsampler"], hiddenDim: d)
        pixelProjection = try Conv2d(scope["pix_feat_proj"], input: d, output: d, kernel: 1)
        let layers = scope["fuser.layers"]
        fuser = try (0..<layers.moduleCount(probe: "gamma")).map { try CXBlock(layers[$0], dim: d) }
        outputProjection = try Conv2d(scope["out_proj"], input: d, output: config.memoryDim, kernel: 1)
    }

    /// features: raw top-level features [hidden, h, w]; maskForMemory: [1, 16h, 16w] already scaled
    /// (±10 for a binarized mask; the encoder skips the sigmoid). Returns [memoryDim, h, w] in fp32.
    public func callAsFunction(features: Tensor, maskForMemory: Tensor) -> Tensor {
        var x = pixelProjection(features)
        addInPlace(&x, maskDownSampler(maskForMemory))
        for block in fuser { x = block(x) }
        return outputProjection(x)
    }
}

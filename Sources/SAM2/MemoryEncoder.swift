// SAM 2 memory encoder (sam2.md §5): turns a frame's features and its mask into a memory.
// mask (image size) -> MaskDownSampler (4x [conv3x3 s2 -> LN2d -> GELU], 1x1 conv) -> + pix_feat_proj(features)
// -> fuser (2 ConvNeXt blocks) -> out_proj (1x1 conv to the memory dim).
import TensorCore

/// Four stride-2 3x3 convolutions (channels x4 each) with LayerNorm2d + GELU, then a 1x1 conv:
/// a 1 x S x S mask becomes hidden x S/16 x S/16.
struct MaskDownSampler: Sendable {
    let stages: [(conv: Conv, norm: Norm)]
    let final: Conv

    init(_ w: SAM2MemoryWeights, _ prefix: String, hiddenDim: Int) throws {
        var stages: [(Conv, Norm)] = []
        var channels = 1
        for i in 0..<4 {
            let out = channels * 4
            stages.append((try Conv(w, "\(prefix).encoder.\(3 * i)", input: channels, output: out, kernel: 3, stride: 2, padding: 1),
                           try Norm(w, "\(prefix).encoder.\(3 * i + 1)", dim: out, eps: 1e-6)))
            channels = out
        }
        self.stages = stages
        final = try Conv(w, "\(prefix).encoder.12", input: channels, output: hiddenDim, kernel: 1)
    }

    /// mask [1, S, S] -> [hidden, S/16, S/16]
    func callAsFunction(_ mask: Tensor) -> Tensor {
        var x = mask
        for stage in stages {
            x = stage.norm.channels(stage.conv(x))
            geluInPlace(&x)
        }
        return final(x)
    }
}

/// ConvNeXt block: depthwise 7x7 -> LN2d -> pointwise 4x MLP (GELU) -> layer scale -> residual.
struct CXBlock: Sendable {
    let depthwise: Conv
    let norm: Norm
    let pointwise1: Tensor, bias1: Tensor
    let pointwise2: Tensor, bias2: Tensor
    let layerScale: Tensor

    init(_ w: SAM2MemoryWeights, _ prefix: String, dim: Int) throws {
        depthwise = try Conv(w, prefix + ".dwconv", input: dim, output: dim, kernel: 7, padding: 3, groups: dim)
        norm = try Norm(w, prefix + ".norm", dim: dim, eps: 1e-6)
        let hidden = try w.shape(prefix + ".pwconv1.weight").first ?? 4 * dim
        // The pointwise linears run as 1x1 convs on the [C, H, W] map (one GEMM each, no transposes).
        pointwise1 = try w.tensor(prefix + ".pwconv1.weight", shape: [hidden, dim]).reshaped([hidden, dim, 1, 1])
        bias1 = try w.tensor(prefix + ".pwconv1.bias", shape: [hidden])
        pointwise2 = try w.tensor(prefix + ".pwconv2.weight", shape: [dim, hidden]).reshaped([dim, hidden, 1, 1])
        bias2 = try w.tensor(prefix + ".pwconv2.bias", shape: [dim])
        layerScale = try w.tensor(prefix + ".gamma", shape: [dim])
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        var y = norm.channels(depthwise(x))
        y = conv2d(y, weight: pointwise1, bias: bias1)
        geluInPlace(&y)
        y = conv2d(y, weight: pointwise2, bias: bias2)
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
    let pixelProjection: Conv
    let fuser: [CXBlock]
    let outputProjection: Conv

    init(_ w: SAM2MemoryWeights, config: SAM2MemoryConfig) throws {
        let d = config.hiddenDim
        maskDownSampler = try MaskDownSampler(w, "memory_encoder.mask_downsampler", hiddenDim: d)
        pixelProjection = try Conv(w, "memory_encoder.pix_feat_proj", input: d, output: d, kernel: 1)
        var blocks: [CXBlock] = []
        while w.contains("memory_encoder.fuser.layers.\(blocks.count).gamma") {
            blocks.append(try CXBlock(w, "memory_encoder.fuser.layers.\(blocks.count)", dim: d))
        }
        guard !blocks.isEmpty else {
            throw SAM2MemoryWeightsError(path: w.path, message: "missing tensor 'memory_encoder.fuser.layers.0.gamma'")
        }
        fuser = blocks
        outputProjection = try Conv(w, "memory_encoder.out_proj", input: d, output: config.memoryDim, kernel: 1)
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

// SAM 2 mask decoder (`mask_decoder.py MaskDecoder`): output tokens [object score, IoU, 4 masks] + prompt tokens go
// through
// the two-way transformer with the image embedding; the image side is upscaled 4x (two 2x2 transposed
// convs fused with the high-resolution FPN features) and each mask token's hypernetwork MLP turns it
// into a per-pixel linear classifier. Heads: IoU (sigmoid), object score; plus the object-pointer MLP.
import TensorCore

/// Raw decoder outputs, before any multimask selection or object-score gating.
public struct MaskDecoderOutput: Sendable {
    /// All 4 low-resolution mask logits [4, 4g, 4g] (0: single-mask output, 1...3: multimask outputs).
    public var masks: Tensor
    /// Predicted IoU of each mask [4].
    public var iou: [Float]
    /// Object-score logit (> 0: object present).
    public var objectScore: Float
    /// The 4 mask tokens after the transformer [4, d] (object pointers are projected from them).
    public var maskTokens: Tensor
}

extension MaskDecoderOutput {
    /// The single-mask output with `dynamic_multimask_via_stability` (what the video predictor's builder
    /// enables): mask 0 if its stability #(logit > δ)/#(logit > −δ) reaches the threshold, else the
    /// argmax-IoU multimask output. Returns (index into `masks`, logits [4g, 4g], IoU).
    public func singleMask(stabilityDelta: Float = 0.05, stabilityThreshold: Float = 0.98) -> (
        index: Int, logits: Tensor, iou: Float
    ) {
        let side = masks.dim(1), n = side * side
        var inner = 0, union = 0
        masks.withUnsafeBufferPointer { m in
            for i in 0..<n {
                if m[i] > stabilityDelta { inner += 1 }
                if m[i] > -stabilityDelta { union += 1 }
            }
        }
        let stability: Float = union > 0 ? Float(inner) / Float(union) : 1
        var index = 0
        if stability < stabilityThreshold {
            index = 1
            for i in 2...3 where iou[i] > iou[index] { index = i }
        }
        return (index, sliced(masks, axis: 0, range: index..<(index + 1)).reshaped([side, side]), iou[index])
    }
}

public struct MaskDecoder: Sendable {
    let dim: Int
    let transformer: TwoWayTransformer
    /// Learned output tokens in the order the transformer sees them: object score, IoU, 4 mask tokens [6, d].
    let outputTokens: Tensor
    let upscale1: ConvTranspose2x2
    let upscaleNorm: LayerNorm
    let upscale2: ConvTranspose2x2
    let hypernetworks: [MLP]
    let iouHead: MLP
    let objectScoreHead: MLP

    /// `scope`: `sam_mask_decoder`.
    init(_ scope: WeightScope, config: SAM2Config) throws {
        let d = config.hiddenDim
        dim = d
        transformer = try TwoWayTransformer(scope["transformer"], dim: d)
        outputTokens = concatenated(
            [
                try scope.tensor("obj_score_token.weight", shape: [1, d]),
                try scope.tensor("iou_token.weight", shape: [1, d]),
                try scope.tensor("mask_tokens.weight", shape: [4, d]),
            ], axis: 0)
        let upscaling = scope["output_upscaling"]
        upscale1 = try ConvTranspose2x2(upscaling[0], input: d, output: d / 4)
        upscaleNorm = try LayerNorm(upscaling[1], dim: d / 4, eps: 1e-6)
        upscale2 = try ConvTranspose2x2(upscaling[3], input: d / 4, output: d / 8)
        hypernetworks = try (0..<4).map { try MLP(scope["output_hypernetworks_mlps"][$0], dims: [d, d, d, d / 8]) }
        let iouHidden = scope.shape("iou_prediction_head.layers.0.weight")?.first ?? 256
        iouHead = try MLP(scope["iou_prediction_head"], dims: [d, iouHidden, iouHidden, 4], sigmoidOutput: true)
        objectScoreHead = try MLP(scope["pred_obj_score_head"], dims: [d, d, d, 1])
    }

    /// image: [d, g, g] (pix_feat_with_mem, or raw features for a support); imagePE: dense PE [d, g, g];
    /// sparse: prompt tokens [N, d]; dense: dense prompt [d, g, g];
    /// highResolution0/1: conv_s0(L0) [d/8, 4g, 4g], conv_s1(L1) [d/4, 2g, 2g].
    public func callAsFunction(
        image: Tensor, imagePE: Tensor, sparse: Tensor, dense: Tensor,
        highResolution0: Tensor, highResolution1: Tensor
    ) -> MaskDecoderOutput {
        let g = image.dim(1)
        let tokensIn = concatenated([outputTokens, sparse], axis: 0)
        let (hs, src) = transformer(tokens: tokensIn, image: tokenRows(add(image, dense)), imagePE: tokenRows(imagePE))

        // Upscaling: ConvT -> + conv_s1(L1) -> LN2d -> GELU -> ConvT -> + conv_s0(L0) -> GELU.
        var u = upscale1(featureMap(src, height: g, width: g))
        addInPlace(&u, highResolution1)
        u = upscaleNorm.channels(u)
        geluInPlace(&u)
        u = upscale2(u)
        addInPlace(&u, highResolution0)
        geluInPlace(&u)

        let maskTokens = sliced(hs, axis: 0, range: 2..<6)
        let hyper = concatenated(
            (0..<4).map { i in hypernetworks[i](sliced(maskTokens, axis: 0, range: i..<(i + 1))) }, axis: 0)
        let side = u.dim(1)
        let masks = matmul(hyper, u.reshaped([u.dim(0), side * side])).reshaped([4, side, side])
        let iou = iouHead(sliced(hs, axis: 0, range: 1..<2)).data
        let score = objectScoreHead(sliced(hs, axis: 0, range: 0..<1)).data[0]
        return MaskDecoderOutput(masks: masks, iou: iou, objectScore: score, maskTokens: maskTokens)
    }
}

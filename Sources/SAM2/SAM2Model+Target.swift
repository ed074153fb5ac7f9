// The target path of `SAM2Model`: memory attention over the supports, prompt-free decoding, the optional
// refinement by clicks/box, and the resize to the target's own size (`sam2_base.py _track_step`,
// `_forward_sam_heads`). The one implementation every caller (CLI, server, pipeline, tests) runs.
import TensorCore

extension SAM2Model {
    // MARK: Target

    /// pix_feat_with_mem for the target given the assembled bank.
    public func conditionedFeatures(_ f: SAM2FrameFeatures, bank: MemoryBankInputs) -> Tensor {
        memoryAttention(
            features: f.vision, positionEncoding: targetPosition, memory: bank.memory,
            memoryPosition: bank.position, pointerTokens: bank.pointerTokens)
    }

    /// Prompt-free multimask decoding of conditioned features (`_forward_sam_heads`, multimask output).
    public func decodeTarget(_ conditioned: Tensor, _ f: SAM2FrameFeatures, outputSize: (height: Int, width: Int))
        -> (raw: MaskDecoderOutput, result: SAM2Segmentation)
    {
        decode(conditioned, f, multimask: true, outputSize: outputSize)
    }

    /// The SAM heads as `_forward_sam_heads` runs them: prompt encoding, decoding, mask selection
    /// (multimask: argmax IoU of masks 1...3; single: mask 0 unless unstable, see `singleMask`),
    /// object-score gating of the masks and the pointer, then the resize to `outputSize`.
    /// - image: conditioned features [d, g, g] (or raw features for an unconditioned frame).
    /// - points: model-input pixel coordinates; a box is passed as its two corners (`SAM2Point.corners`),
    ///   as the video predictor does. No points = the prompt-free padding tokens.
    /// - maskPrompt: mask logits [4g, 4g] (other sizes are resized, antialiased bilinear) or nil.
    public func decode(
        _ image: Tensor, _ f: SAM2FrameFeatures, points: [SAM2Point] = [], maskPrompt: Tensor? = nil,
        multimask: Bool, outputSize: (height: Int, width: Int)
    ) -> (raw: MaskDecoderOutput, result: SAM2Segmentation) {
        var dense = promptEncoder.denseEmbeddings(mask: nil)
        if let maskPrompt {
            let low = config.lowResolutionSize
            var m = maskPrompt.reshaped([1, maskPrompt.dim(-2), maskPrompt.dim(-1)])
            if m.dim(1) != low || m.dim(2) != low {
                m = interpolate(m, size: (low, low), mode: .bilinear, antialias: true)
            }
            dense = promptEncoder.denseEmbeddings(mask: m)
        }
        let raw = maskDecoder(
            image: image, imagePE: promptEncoder.imagePositionEncoding,
            sparse: promptEncoder.sparseEmbeddings(points: points), dense: dense,
            highResolution0: f.highResolution0, highResolution1: f.highResolution1)
        let present = raw.objectScore > 0
        var masks: Tensor, iou: [Float], chosen = 0, token: Int
        if multimask {
            masks = sliced(raw.masks, axis: 0, range: 1..<4)
            iou = Array(raw.iou[1..<4])
            for i in 1..<3 where iou[i] > iou[chosen] { chosen = i }
            token = 1 + chosen
        } else {
            let single = raw.singleMask()
            masks = single.logits.reshaped([1] + single.logits.shape)
            iou = [single.iou]
            token = 0  // the single-mask pointer always comes from mask token 0
        }
        if !present { masks = Tensor(repeating: -1024, shape: masks.shape) }
        let low = sliced(masks, axis: 0, range: chosen..<(chosen + 1))
        let pointer = gatedPointer(sliced(raw.maskTokens, axis: 0, range: token..<(token + 1)), present: present)
        let logits = interpolate(low, size: outputSize, mode: .bilinear)
        let side = low.dim(1)
        return (
            raw,
            SAM2Segmentation(
                masks: masks, iou: iou, chosen: chosen, objectScore: raw.objectScore,
                lowResolutionLogits: low.reshaped([side, side]), pointer: pointer,
                logits: logits.reshaped([outputSize.height, outputSize.width]))
        )
    }

    /// Refines a prompt-free target result with clicks/a box, as the official predictor does when
    /// add_new_points_or_box hits a frame that propagation already segmented (see Prompt.swift): the
    /// same conditioned features, the previous low-res logits clamped to ±32 as the mask prompt, box
    /// corners then clicks scaled from the original size (`outputSize`) to the model input, multimask
    /// output iff exactly one point in all. `previous` is `decodeTarget(conditioned, f, ...)`'s result.
    public func refine(
        _ conditioned: Tensor, _ f: SAM2FrameFeatures, previous: SAM2Segmentation, prompt: SAM2Prompt,
        outputSize: (height: Int, width: Int)
    ) throws -> (raw: MaskDecoderOutput, result: SAM2Segmentation) {
        guard !prompt.isEmpty else { throw SAM2PromptError("the prompt has no point and no box") }
        try prompt.validate(width: outputSize.width, height: outputSize.height)
        return decode(
            conditioned, f,
            points: prompt.modelPoints(
                imageSize: config.imageSize, width: outputSize.width,
                height: outputSize.height),
            maskPrompt: Self.refinementMaskPrompt(previous: previous), multimask: prompt.usesMultimask,
            outputSize: outputSize)
    }

    /// The mask prompt of a refinement: the previous low-res logits clamped to ±32 (prev_sam_mask_logits;
    /// a gated "no object" result, −1024, becomes −32).
    public static func refinementMaskPrompt(previous: SAM2Segmentation) -> Tensor {
        var prior = previous.lowResolutionLogits
        prior.withUnsafeMutableBufferPointer { for i in $0.indices { $0[i] = min(max($0[i], -32), 32) } }
        return prior
    }

    /// Segments a target from its features and k supports (frame order = array order; the reference's
    /// rank-order convention puts the most similar support first). outputSize: the original image size.
    /// With a non-empty `prompt` (coordinates in that original size) the prompt-free result is refined
    /// by it (`refine`); the memory attention runs once. `stageDone` is called as each stage ends, with its
    /// name: "attend" (memory-bank assembly + memory attention), then "decode" (decoding, refinement, resize);
    /// callers that time stages read their clocks there.
    public func segment(
        _ target: SAM2FrameFeatures, supports: [SupportMemory], outputSize: (height: Int, width: Int),
        prompt: SAM2Prompt? = nil, stageDone: (String) -> Void = { _ in }
    ) throws -> SAM2Segmentation {
        try check(target, "target")
        guard outputSize.height > 0, outputSize.width > 0 else {
            throw SAM2InputError(message: "output size \(outputSize.height)x\(outputSize.width) is empty")
        }
        if let prompt, !prompt.isEmpty { try prompt.validate(width: outputSize.width, height: outputSize.height) }
        let bank = try memoryBank.assemble(supports)
        let conditioned = conditionedFeatures(target, bank: bank)
        stageDone("attend")
        var result = decodeTarget(conditioned, target, outputSize: outputSize).result
        if let prompt, !prompt.isEmpty {
            result = try refine(conditioned, target, previous: result, prompt: prompt, outputSize: outputSize).result
        }
        stageDone("decode")
        return result
    }
}

// The prompt-free, memory-conditioned half of SAM 2 (sam2.md §1 steps 2-3 and 5-8), as the official
// video predictor runs it when the supports are conditioning frames 0..k-1 (GT masks via add_new_mask)
// and the target is frame k:
//   encodeSupport: features + GT mask -> SupportMemory (bf16 memory of the round-tripped mask, pointer
//                  from a mask-prompted decoder run, occlusion handling);
//   segment:       target features + supports -> memory attention -> prompt-free multimask decoding ->
//                  argmax-IoU mask, object-score gating, bilinear resize to the original size.
//   refine:        optional clicks/box on the target on top of that (Prompt.swift: the official flow).
// Inputs start at the image encoder's outputs (`SAM2FrameFeatures(SAM2ImageFeatures)`), so the two
// halves are tested independently; MemoryPathTests also runs them together from pixels.
import TensorCore

/// The image-encoder outputs the memory path consumes, each [C, H, W]:
/// conv_s0(L0) [d/8, 4g, 4g], conv_s1(L1) [d/4, 2g, 2g], L2 [d, g, g] (g = imageSize/16).
public struct SAM2FrameFeatures: Sendable {
    public var highResolution0: Tensor
    public var highResolution1: Tensor
    public var vision: Tensor
    public init(highResolution0: Tensor, highResolution1: Tensor, vision: Tensor) {
        self.highResolution0 = highResolution0
        self.highResolution1 = highResolution1
        self.vision = vision
    }
}

extension SAM2FrameFeatures {
    /// The parts of the image encoder's output that the memory path consumes.
    public init(_ features: SAM2ImageFeatures) {
        self.init(highResolution0: features.highResolution0, highResolution1: features.highResolution1,
                  vision: features.visionFeatures)
    }
}

/// Result of segmenting one target.
public struct SAM2Segmentation: Sendable {
    /// The candidate low-resolution logits after object-score gating (−1024 when score ≤ 0):
    /// [3, 4g, 4g] in multimask mode (the prompt-free target), [1, 4g, 4g] in single-mask mode.
    public var masks: Tensor
    /// Their predicted IoUs.
    public var iou: [Float]
    /// Index of the returned mask in `masks`: argmax IoU, first on ties (0 in single-mask mode).
    public var chosen: Int
    /// Object-score logit; ≤ 0 means "no object" and every mask logit is −1024.
    public var objectScore: Float
    /// The chosen low-resolution logits [4g, 4g].
    public var lowResolutionLogits: Tensor
    /// The target's object pointer (after gating); what a refinement step or a later frame would use.
    public var pointer: [Float]
    /// Logits resized to the original size [H, W] (bilinear, align_corners false); foreground = logit > 0.
    public var logits: Tensor
}

public struct SAM2MemoryPathError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public var description: String { message }
}

public struct SAM2MemoryModel: Sendable {
    public let config: SAM2MemoryConfig
    public let memoryEncoder: MemoryEncoder
    public let memoryAttention: MemoryAttention
    public let memoryBank: MemoryBank
    public let promptEncoder: PromptEncoder
    public let maskDecoder: MaskDecoder
    let pointerProjection: MLP
    let noObjectPointer: Tensor
    let noObjectSpatial: Tensor?
    /// `mask_downsample`: Conv2d(1, 1, 4, stride 4) turning a GT mask into the decoder's mask prompt.
    let maskDownsample: Conv
    /// Sine PE of the target's top-level features [d, g, g] (memory attention adds 0.1 x it).
    let targetPosition: Tensor

    public init(weights w: SAM2MemoryWeights, config: SAM2MemoryConfig) throws {
        self.config = config
        let d = config.hiddenDim
        memoryEncoder = try MemoryEncoder(w, config: config)
        memoryAttention = try MemoryAttention(w, config: config)
        memoryBank = try MemoryBank(w, config: config)
        promptEncoder = try PromptEncoder(w, config: config)
        maskDecoder = try MaskDecoder(w, config: config)
        pointerProjection = try MLP(w, "obj_ptr_proj", dims: [d, d, d, d])
        noObjectPointer = try w.tensor("no_obj_ptr", shape: [1, d]).reshaped([d])
        noObjectSpatial = config.noObjectSpatialEmbedding
            ? try w.tensor("no_obj_embed_spatial", shape: [1, config.memoryDim]).reshaped([config.memoryDim]) : nil
        maskDownsample = try Conv(w, "mask_downsample", input: 1, output: 1, kernel: 4, stride: 4)
        targetPosition = MemoryPositionEncoding.sine(channels: d, height: config.featureSize, width: config.featureSize)
    }

    /// Opens an official-layout safetensors checkpoint; dimensions come from the tensors.
    public init(path: String, imageSize: Int = 1024) throws {
        let w = try SAM2MemoryWeights(path: path)
        try self.init(weights: w, config: w.inferConfig(imageSize: imageSize))
    }

    func check(_ f: SAM2FrameFeatures, _ what: String) throws {
        let d = config.hiddenDim, g = config.featureSize
        let expected = [[d / 8, 4 * g, 4 * g], [d / 4, 2 * g, 2 * g], [d, g, g]]
        let got = [f.highResolution0.shape, f.highResolution1.shape, f.vision.shape]
        guard got == expected else {
            throw SAM2MemoryPathError(message: "\(what): features have shapes \(got), this model needs \(expected)")
        }
    }

    // MARK: Supports

    /// The mask the reference actually encodes for a GT-mask frame (sam2.md §5.1): logits 20m−10,
    /// antialiased bilinear down to 4g², bilinear back up, binarized, rescaled -> ±10, [1, S, S].
    public func maskForMemory(groundTruth mask: Tensor) -> Tensor {
        let s = config.imageSize, low = config.lowResolutionSize
        var logits = mask.reshaped([1, s, s])
        logits.withUnsafeMutableBufferPointer { for i in $0.indices { $0[i] = 20 * $0[i] - 10 } }
        let down = interpolate(logits, size: (low, low), mode: .bilinear, antialias: true)
        var up = interpolate(down, size: (s, s), mode: .bilinear)
        up.withUnsafeMutableBufferPointer { for i in $0.indices { $0[i] = $0[i] > 0 ? 10 : -10 } }
        return up
    }

    /// The pointer of a support (sam2.md §10.2): decoder on the raw features with the GT as a dense
    /// mask prompt, single-mask token 0, then gated by the decoder's object score.
    /// Returns the decoder output and the pointer before the GT-emptiness gating.
    public func supportDecoderPointer(_ f: SAM2FrameFeatures, groundTruth mask: Tensor) -> (decoder: MaskDecoderOutput, pointer: [Float], maskPrompt: Tensor) {
        let s = config.imageSize
        let prompt = maskDownsample(mask.reshaped([1, s, s]))
        let out = maskDecoder(image: f.vision, imagePE: promptEncoder.imagePositionEncoding,
                              sparse: promptEncoder.emptySparseEmbeddings, dense: promptEncoder.denseEmbeddings(mask: prompt),
                              highResolution0: f.highResolution0, highResolution1: f.highResolution1)
        let token = sliced(out.maskTokens, axis: 0, range: 0..<1)
        return (out, gatedPointer(token, present: out.objectScore > 0), prompt)
    }

    /// obj_ptr_proj(token), replaced by no_obj_ptr when the object is absent.
    func gatedPointer(_ token: Tensor, present: Bool) -> [Float] {
        present ? pointerProjection(token).data : noObjectPointer.data
    }

    /// Encodes one support: features of its image and its GT mask [S, S] with values 0/1 at the model
    /// input size S (resize other sizes first: antialiased bilinear + ≥ 0.5, see `resizeMask`).
    public func encodeSupport(_ f: SAM2FrameFeatures, mask: Tensor) throws -> SupportMemory {
        try encodeSupportFP32(f, mask: mask).support
    }

    /// `encodeSupport` plus the memory before bf16 rounding (for parity tests).
    public func encodeSupportFP32(_ f: SAM2FrameFeatures, mask: Tensor) throws -> (support: SupportMemory, memory: Tensor) {
        try check(f, "support")
        let s = config.imageSize
        guard mask.count == s * s, mask.shape.suffix(2) == [s, s] else {
            throw SAM2MemoryPathError(message: "support mask has shape \(mask.shape), this model needs [\(s), \(s)]")
        }
        let present = mask.data.contains { $0 > 0 }
        // An empty GT replaces the pointer by no_obj_ptr whatever the decoder says, so skip the decoder.
        let pointer = present ? supportDecoderPointer(f, groundTruth: mask).pointer : noObjectPointer.data
        var memory = memoryEncoder(features: f.vision, maskForMemory: maskForMemory(groundTruth: mask))
        if !present, let noObjectSpatial {
            let m = config.memoryDim, hw = memory.dim(1) * memory.dim(2)
            memory.withUnsafeMutableBufferPointer { mb in
                for c in 0..<m { for i in 0..<hw { mb[c * hw + i] += noObjectSpatial.data[c] } }
            }
        }
        return (SupportMemory(memory: memory, pointer: pointer, isEmpty: !present), memory)
    }

    /// Resizes a {0,1} mask of any size to the model input size the way `add_new_mask` does:
    /// antialiased bilinear, then ≥ 0.5.
    public func resizeMask(_ mask: Tensor) -> Tensor {
        let s = config.imageSize
        let h = mask.dim(-2), w = mask.dim(-1)
        if h == s && w == s { return mask.reshaped([s, s]) }
        var r = interpolate(mask.reshaped([1, h, w]), size: (s, s), mode: .bilinear, antialias: true)
        r.withUnsafeMutableBufferPointer { for i in $0.indices { $0[i] = $0[i] >= 0.5 ? 1 : 0 } }
        return r.reshaped([s, s])
    }

    // MARK: Target

    /// pix_feat_with_mem for the target given the assembled bank.
    public func conditionedFeatures(_ f: SAM2FrameFeatures, bank: MemoryBankInputs) -> Tensor {
        memoryAttention(features: f.vision, positionEncoding: targetPosition, memory: bank.memory,
                        memoryPosition: bank.position, pointerTokens: bank.pointerTokens)
    }

    /// Prompt-free multimask decoding of conditioned features (sam2.md §9.4, §10.1).
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
    public func decode(_ image: Tensor, _ f: SAM2FrameFeatures, points: [SAM2Point] = [], maskPrompt: Tensor? = nil,
                       multimask: Bool, outputSize: (height: Int, width: Int)) -> (raw: MaskDecoderOutput, result: SAM2Segmentation)
    {
        var dense = promptEncoder.denseEmbeddings(mask: nil)
        if let maskPrompt {
            let low = config.lowResolutionSize
            var m = maskPrompt.reshaped([1, maskPrompt.dim(-2), maskPrompt.dim(-1)])
            if m.dim(1) != low || m.dim(2) != low { m = interpolate(m, size: (low, low), mode: .bilinear, antialias: true) }
            dense = promptEncoder.denseEmbeddings(mask: m)
        }
        let raw = maskDecoder(image: image, imagePE: promptEncoder.imagePositionEncoding,
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
        return (raw, SAM2Segmentation(masks: masks, iou: iou, chosen: chosen, objectScore: raw.objectScore,
                                      lowResolutionLogits: low.reshaped([side, side]), pointer: pointer,
                                      logits: logits.reshaped([outputSize.height, outputSize.width])))
    }

    /// Refines a prompt-free target result with clicks/a box, as the official predictor does when
    /// add_new_points_or_box hits a frame that propagation already segmented (see Prompt.swift): the
    /// same conditioned features, the previous low-res logits clamped to ±32 as the mask prompt, box
    /// corners then clicks scaled from the original size (`outputSize`) to the model input, multimask
    /// output iff exactly one point in all. `previous` is `decodeTarget(conditioned, f, ...)`'s result.
    public func refine(_ conditioned: Tensor, _ f: SAM2FrameFeatures, previous: SAM2Segmentation, prompt: SAM2Prompt,
                       outputSize: (height: Int, width: Int)) throws -> (raw: MaskDecoderOutput, result: SAM2Segmentation)
    {
        guard !prompt.isEmpty else { throw SAM2PromptError("the prompt has no point and no box") }
        try prompt.validate(width: outputSize.width, height: outputSize.height)
        return decode(conditioned, f, points: prompt.modelPoints(imageSize: config.imageSize, width: outputSize.width,
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
    public func segment(_ target: SAM2FrameFeatures, supports: [SupportMemory], outputSize: (height: Int, width: Int),
                        prompt: SAM2Prompt? = nil, stageDone: (String) -> Void = { _ in }) throws -> SAM2Segmentation {
        try check(target, "target")
        guard outputSize.height > 0, outputSize.width > 0 else {
            throw SAM2MemoryPathError(message: "output size \(outputSize.height)x\(outputSize.width) is empty")
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

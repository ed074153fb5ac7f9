// A whole SAM 2 model as RAGSeg runs it: the image encoder and the prompt-free, memory-conditioned heads
// (`sam2_base.py SAM2Base`), as the official video predictor runs them when the supports are conditioning
// frames 0..k-1 (GT masks via add_new_mask) and the target is frame k:
//   encode:        image -> features (Hiera trunk, FPN neck, conv_s0/conv_s1);
//   encodeSupport: features + GT mask -> SupportMemory (bf16 memory of the round-tripped mask, pointer
//                  from a mask-prompted decoder run, occlusion handling);
//   segment:       target features + supports -> memory attention -> prompt-free multimask decoding ->
//                  argmax-IoU mask, object-score gating, bilinear resize to the original size
//                  (SAM2Model+Target.swift), optionally refined by clicks/box (Prompt.swift).
// The memory path starts at the image encoder's outputs (`SAM2FrameFeatures`), so the parity tests can
// feed it the reference's features; MemoryPathTests also runs the whole model from pixels.
import Foundation
import RAGSegIO
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
        self.init(
            highResolution0: features.highResolution0, highResolution1: features.highResolution1,
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

/// A frame, support or target that does not fit the model (shapes, sizes, empty inputs).
public struct SAM2InputError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public var description: String { message }
}

public struct SAM2Model: Sendable {
    public let config: SAM2Config
    public let imageEncoder: SAM2ImageEncoder
    public let memoryEncoder: MemoryEncoder
    public let memoryAttention: MemoryAttention
    public let memoryBank: MemoryBank
    public let promptEncoder: PromptEncoder
    public let maskDecoder: MaskDecoder
    let pointerProjection: MLP
    let noObjectPointer: Tensor
    let noObjectSpatial: Tensor?
    /// `mask_downsample`: Conv2d(1, 1, 4, stride 4) turning a GT mask into the decoder's mask prompt.
    let maskDownsample: Conv2d
    /// Sine PE of the target's top-level features [d, g, g] (memory attention adds 0.1 x it).
    let targetPosition: Tensor

    /// Opens one SAM 2 checkpoint (official or Hugging Face safetensors), reading the file once. The image
    /// encoder's size comes from a `<weights>.json` sidecar when there is one (SAM2ModelDescription), else
    /// from the shapes (published sizes, at 1024); the memory path's widths from the shapes. `imageSize`
    /// overrides the input size.
    public init(checkpoint path: String, imageSize: Int? = nil) throws {
        let weights = try SAM2Weights(path: path)
        try self.init(weights: weights, config: weights.inferConfig(imageSize: imageSize))
    }

    /// Builds the model from an opened checkpoint and a configuration (e.g. `weights.inferConfig()`, changed).
    public init(weights: SAM2Weights, config: SAM2Config) throws {
        try config.validate(against: weights, file: SAM2ModelDescription.configurationFile(for: weights.path))
        try self.init(weights.scope, config: config)
    }

    /// Builds the model from the parameters under `model` (official key names).
    public init(_ model: WeightScope, config: SAM2Config) throws {
        self.config = config
        let d = config.hiddenDim
        imageEncoder = try SAM2ImageEncoder(model, config: config)
        memoryEncoder = try MemoryEncoder(model["memory_encoder"], config: config)
        memoryAttention = try MemoryAttention(model["memory_attention"], config: config)
        memoryBank = try MemoryBank(model, config: config)
        promptEncoder = try PromptEncoder(model["sam_prompt_encoder"], config: config)
        maskDecoder = try MaskDecoder(model["sam_mask_decoder"], config: config)
        pointerProjection = try MLP(model["obj_ptr_proj"], dims: [d, d, d, d])
        noObjectPointer = try model.tensor("no_obj_ptr", shape: [1, d]).reshaped([d])
        noObjectSpatial =
            config.noObjectSpatialEmbedding
            ? try model.tensor("no_obj_embed_spatial", shape: [1, config.memoryDim]).reshaped([config.memoryDim]) : nil
        maskDownsample = try Conv2d(model["mask_downsample"], input: 1, output: 1, kernel: 4, stride: 4)
        targetPosition = SinePositionEncoding.encoding(
            channels: d, height: config.featureSize, width: config.featureSize)
    }

    /// Image features of a normalized [3, S, S] image (see `SAM2Preprocess`), as the memory path takes them.
    public func encode(_ image: Tensor) -> SAM2FrameFeatures {
        SAM2FrameFeatures(imageEncoder.encode(image))
    }

    func check(_ f: SAM2FrameFeatures, _ what: String) throws {
        let d = config.hiddenDim, g = config.featureSize
        let expected = [[d / 8, 4 * g, 4 * g], [d / 4, 2 * g, 2 * g], [d, g, g]]
        let got = [f.highResolution0.shape, f.highResolution1.shape, f.vision.shape]
        guard got == expected else {
            throw SAM2InputError(message: "\(what): features have shapes \(got), this model needs \(expected)")
        }
    }

    // MARK: Supports

    /// The mask the reference actually encodes for a GT-mask frame (`_use_mask_as_output`): logits 20m−10,
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

    /// The pointer of a support (`_use_mask_as_output`): decoder on the raw features with the GT as a dense
    /// mask prompt, single-mask token 0, then gated by the decoder's object score.
    /// Returns the decoder output and the pointer before the GT-emptiness gating.
    public func supportDecoderPointer(_ f: SAM2FrameFeatures, groundTruth mask: Tensor) -> (
        decoder: MaskDecoderOutput, pointer: [Float], maskPrompt: Tensor
    ) {
        let s = config.imageSize
        let prompt = maskDownsample(mask.reshaped([1, s, s]))
        let out = maskDecoder(
            image: f.vision, imagePE: promptEncoder.imagePositionEncoding,
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
    public func encodeSupportFP32(_ f: SAM2FrameFeatures, mask: Tensor) throws -> (
        support: SupportMemory, memory: Tensor
    ) {
        try check(f, "support")
        let s = config.imageSize
        guard mask.count == s * s, mask.shape.suffix(2) == [s, s] else {
            throw SAM2InputError(message: "support mask has shape \(mask.shape), this model needs [\(s), \(s)]")
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
}

// The SAM 2 image encoder as the rest of the model consumes it (`sam2_base.py SAM2Base.forward_image`):
// Hiera trunk -> FPN neck (scalp drops the coarsest level) -> sine PEs, and the mask decoder's
// conv_s0/conv_s1 applied once to the two high-resolution levels.
import RAGSegIO
import TensorCore

/// Features of one image, [C, H, W] each (for 1024x1024 input and neck 256).
public struct SAM2ImageFeatures: Sendable {
    /// conv_s0(L0): [32, 256, 256].
    public var highResolution0: Tensor
    /// conv_s1(L1): [64, 128, 128].
    public var highResolution1: Tensor
    /// L2, "vision_features": [256, 64, 64].
    public var visionFeatures: Tensor
    /// Sine PEs of the kept levels, finest first: [256, 256, 256], [256, 128, 128], [256, 64, 64].
    public var positionEncodings: [Tensor]
}

/// Everything computed along the way, for parity tests and `ragseg debug image-features`.
public struct SAM2ImageEncoderTrace: Sendable {
    /// Patch embedding + position embedding, [h, w, C0] channels-last (as the trunk holds it).
    public var embedded: Tensor
    /// Every Hiera block's output, [h, w, c] channels-last.
    public var blocks: [Tensor]
    /// Stage outputs S0..S3, [c, h, w].
    public var stages: [Tensor]
    /// All FPN levels before scalp, finest first, [neck, h, w].
    public var fpn: [Tensor]
    /// Sine PEs of all FPN levels, finest first.
    public var fpnPositionEncodings: [Tensor]
    public var features: SAM2ImageFeatures
}

public struct SAM2ImageEncoder: Sendable {
    public let config: SAM2Config
    public let trunk: Hiera
    public let neck: FpnNeck
    /// The mask decoder's conv_s0 / conv_s1 (1x1 convs, run as Linears on channels-last levels).
    let highResolution0: Linear
    let highResolution1: Linear
    /// Sine PEs for the configured image size, finest first (input-independent).
    let positionEncodings: [Tensor]

    /// Loads the encoder alone from a checkpoint; without `config` the size is inferred from the tensor shapes.
    public init(weights: SAM2Weights, config: SAM2Config? = nil) throws {
        let config = try config ?? weights.inferImageEncoderConfig()
        try config.validate(
            against: weights, file: SAM2ModelDescription.configurationFile(for: weights.path), memoryPath: false)
        try self.init(weights.scope, config: config)
    }

    /// Builds the encoder from the whole model's parameters (a checkpoint, or random weights for benchmarks).
    public init(_ model: WeightScope, config: SAM2Config) throws {
        self.config = config
        trunk = try Hiera(model["image_encoder.trunk"], config: config)
        neck = try FpnNeck(model["image_encoder.neck"], config: config)
        let d = config.neckDim
        highResolution0 = try Linear(pointwiseConv: model["sam_mask_decoder.conv_s0"], input: d, output: d / 8)
        highResolution1 = try Linear(pointwiseConv: model["sam_mask_decoder.conv_s1"], input: d, output: d / 4)
        positionEncodings = (0..<config.stages.count).map { level in
            let side = config.imageSize / (4 << level)
            return SinePositionEncoding.encoding(channels: d, height: side, width: side)
        }
    }

    /// image: [3, H, W] normalized (see `SAM2Preprocess`), H and W multiples of 32
    /// (and of 4 * windowSpec[0] for the window position table).
    public func encode(_ image: Tensor) -> SAM2ImageFeatures {
        run(image, keepIntermediates: false).features
    }

    public func trace(_ image: Tensor) -> SAM2ImageEncoderTrace {
        run(image, keepIntermediates: true)
    }

    func run(_ image: Tensor, keepIntermediates: Bool) -> SAM2ImageEncoderTrace {
        precondition(image.rank == 3 && image.dim(0) == 3, "SAM 2 image encoder expects [3, H, W], got \(image.shape)")
        let hiera = trunk(image, keepIntermediates: keepIntermediates)
        let levels = neck(hiera.stages)  // channels-last, finest first
        let toCHW = { (t: Tensor) in permuted(t, [2, 0, 1]) }
        let s0 = highResolution0(levels[0])
        let s1 = highResolution1(levels[1])
        let kept = levels.count - config.scalp
        let encodings = levels.indices.map { i -> Tensor in
            let h = levels[i].dim(0), w = levels[i].dim(1)
            if positionEncodings[i].dim(1) == h && positionEncodings[i].dim(2) == w { return positionEncodings[i] }
            return SinePositionEncoding.encoding(channels: config.neckDim, height: h, width: w)
        }
        let features = SAM2ImageFeatures(
            highResolution0: toCHW(s0), highResolution1: toCHW(s1),
            visionFeatures: toCHW(levels[kept - 1]),
            positionEncodings: Array(encodings.prefix(kept)))
        return SAM2ImageEncoderTrace(
            embedded: hiera.embedded ?? Tensor(zeros: [0]),
            blocks: hiera.blocks,
            stages: keepIntermediates ? hiera.stages.map(toCHW) : [],
            fpn: keepIntermediates ? levels.map(toCHW) : [],
            fpnPositionEncodings: keepIntermediates ? encodings : [],
            features: features)
    }
}

import Foundation
import RAGSegIO

/// Architecture of one DINOv2 ViT: the published sizes, read from a checkpoint's `config.json`, or inferred
/// from the shapes of its tensors.
public struct DINOv2Config: Sendable, Equatable {
    /// The feed-forward half of each block.
    public enum FeedForward: Sendable, Equatable {
        /// fc1 (D -> hidden), exact GELU, fc2 (hidden -> D): ViT-S/B/L.
        case mlp(hidden: Int)
        /// w12 (D -> 2 hidden), silu(first half) * second half, w3 (hidden -> D): ViT-g.
        case swiGLU(hidden: Int)
    }

    /// How the trained position table is resampled to another patch grid (docs/dinov2.md#position-table-resampling).
    public enum PositionResampling: Sendable, Equatable {
        /// transformers' `Dinov2Model`: bicubic by output size, no antialias (variant C).
        case bicubic
        /// transformers' `Dinov2WithRegistersModel` (= official `_reg` models): bicubic by size, antialiased (variant
        /// D).
        case bicubicAntialiased
    }

    public var hiddenSize: Int
    public var depth: Int
    public var heads: Int
    public var feedForward: FeedForward
    /// Register tokens inserted between CLS and the patches (0 or 4 in the released models).
    public var registers: Int
    public var patchSize: Int
    /// Side of the square position table (37 for the released models, trained at 518 px).
    public var positionGrid: Int
    public var layerNormEps: Float
    public var positionResampling: PositionResampling

    public var headDim: Int { hiddenSize / heads }

    public init(
        hiddenSize: Int, depth: Int, heads: Int, feedForward: FeedForward, registers: Int = 0,
        patchSize: Int = 14, positionGrid: Int = 37, layerNormEps: Float = 1e-6,
        positionResampling: PositionResampling? = nil
    ) {
        self.hiddenSize = hiddenSize
        self.depth = depth
        self.heads = heads
        self.feedForward = feedForward
        self.registers = registers
        self.patchSize = patchSize
        self.positionGrid = positionGrid
        self.layerNormEps = layerNormEps
        // transformers picks the resampler by model class, i.e. by whether the model has registers.
        self.positionResampling = positionResampling ?? (registers > 0 ? .bicubicAntialiased : .bicubic)
    }

    /// SwiGLU keeps two thirds of the MLP width, rounded up to a multiple of 8 (4096 for the giant).
    public static func swiGLUHidden(mlpHidden: Int) -> Int { (Int(Double(mlpHidden) * 2 / 3) + 7) / 8 * 8 }

    // Published backbones (facebook/dinov2-{small,base,large,giant}); head dim 64 throughout.
    public static let small = DINOv2Config(hiddenSize: 384, depth: 12, heads: 6, feedForward: .mlp(hidden: 1536))
    public static let base = DINOv2Config(hiddenSize: 768, depth: 12, heads: 12, feedForward: .mlp(hidden: 3072))
    public static let large = DINOv2Config(hiddenSize: 1024, depth: 24, heads: 16, feedForward: .mlp(hidden: 4096))
    public static let giant = DINOv2Config(
        hiddenSize: 1536, depth: 40, heads: 24,
        feedForward: .swiGLU(hidden: swiGLUHidden(mlpHidden: 4 * 1536)))

    /// The same backbone with 4 registers (facebook/dinov2-with-registers-*).
    public func withRegisters(_ count: Int = 4) -> DINOv2Config {
        var c = self
        c.registers = count
        c.positionResampling = count > 0 ? .bicubicAntialiased : .bicubic
        return c
    }

    /// Published variants by their torch-hub names.
    public static let published: [String: DINOv2Config] = [
        "vits14": small, "vitb14": base, "vitl14": large, "vitg14": giant,
        "vits14_reg": small.withRegisters(), "vitb14_reg": base.withRegisters(),
        "vitl14_reg": large.withRegisters(), "vitg14_reg": giant.withRegisters(),
    ]

    /// Patch tokens for an input of `height` x `width` pixels.
    public func patchGrid(height: Int, width: Int) -> (rows: Int, columns: Int) {
        (height / patchSize, width / patchSize)
    }

    /// Floating-point operations (2 per multiply-add) of one image's forward pass, counting the GEMMs only
    /// (patch embedding, qkv/proj, FFN, the two attention products); norms and activations are O(T·D).
    public func flops(height: Int, width: Int) -> Double {
        let grid = patchGrid(height: height, width: width)
        let patches = Double(grid.rows * grid.columns)
        let t = patches + 1 + Double(registers)
        let d = Double(hiddenSize)
        let ffn: Double
        switch feedForward {
        case .mlp(let h): ffn = 2 * t * d * Double(h)
        case .swiGLU(let h): ffn = 3 * t * d * Double(h)
        }
        let perBlock = 4 * t * d * d + ffn + 2 * t * t * d
        let macs = patches * d * Double(3 * patchSize * patchSize) + Double(depth) * perBlock
        return 2 * macs
    }
}

extension DINOv2Config {
    /// Reads a Hugging Face `config.json` (`Dinov2Config` / `Dinov2WithRegistersConfig`).
    public init(configJSON path: String) throws {
        let fail = { (message: String) in RAGSegIOError(path: path, message: message) }
        guard let data = FileManager.default.contents(atPath: path) else { throw fail("cannot read file") }
        guard let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw fail("not a JSON object")
        }
        // Whole numbers only; beyond Int they saturate, so the range checks below name them.
        func integer(_ n: NSNumber, _ key: String) throws -> Int {
            let d = n.doubleValue
            guard d.isFinite, d.rounded() == d else { throw fail("\(key) \(n) is not an integer") }
            if d >= 9.2e18 { return Int.max }
            if d <= -9.2e18 { return Int.min }
            return Int(n.int64Value)
        }
        func int(_ key: String, default value: Int? = nil) throws -> Int {
            if let n = json[key] as? NSNumber { return try integer(n, key) }
            // image_size / patch_size may be [h, w] pairs; DINOv2 only uses square ones.
            if let pair = json[key] as? [NSNumber], pair.count == 2, pair[0] == pair[1] {
                return try integer(pair[0], key)
            }
            if let value { return value }
            throw fail("missing or non-integer \"\(key)\"")
        }
        func inRange(_ key: String, _ value: Int, _ range: ClosedRange<Int>) throws {
            if value < range.lowerBound { throw fail("\(key) \(value) must be >= \(range.lowerBound)") }
            if value > range.upperBound { throw fail("\(key) \(value) must be <= \(range.upperBound)") }
        }
        let modelType = json["model_type"] as? String ?? "dinov2"
        guard modelType == "dinov2" || modelType == "dinov2_with_registers" else {
            throw fail("model_type \"\(modelType)\" is not a DINOv2 model")
        }
        let act = json["hidden_act"] as? String ?? "gelu"
        guard act == "gelu" else { throw fail("hidden_act \"\(act)\" unsupported (DINOv2 uses exact \"gelu\")") }
        if let qkvBias = json["qkv_bias"] as? Bool, !qkvBias { throw fail("qkv_bias false is unsupported") }
        if let channels = json["num_channels"] as? NSNumber, channels.intValue != 3 {
            throw fail("num_channels \(channels) unsupported (RGB only)")
        }
        // Ranges (DINOv2Config.limits) before anything is derived from the values: see ConfigValidation.swift.
        let limits = DINOv2Config.limits
        let hidden = try int("hidden_size")
        try inRange("hidden_size", hidden, 1...limits.width)
        let heads = try int("num_attention_heads")
        try inRange("num_attention_heads", heads, 1...hidden)
        guard hidden % heads == 0 else {
            throw fail("hidden_size \(hidden) is not divisible by num_attention_heads \(heads)")
        }
        let depth = try int("num_hidden_layers")
        try inRange("num_hidden_layers", depth, 1...limits.depth)
        let ratio = (json["mlp_ratio"] as? NSNumber)?.doubleValue ?? 4
        guard ratio.isFinite, ratio > 0, ratio <= Double(limits.mlpRatio) else {
            throw fail("mlp_ratio \(ratio) must be > 0 and <= \(limits.mlpRatio)")
        }
        let mlpHidden = Int(Double(hidden) * ratio)
        guard mlpHidden >= 1 else { throw fail("mlp_ratio \(ratio) leaves no hidden units (hidden_size \(hidden))") }
        let swiGLU = json["use_swiglu_ffn"] as? Bool ?? false
        let imageSize = try int("image_size")
        try inRange("image_size", imageSize, 1...limits.imageSize)
        let patch = try int("patch_size")
        try inRange("patch_size", patch, 1...imageSize)
        guard imageSize % patch == 0 else {
            throw fail("image_size \(imageSize) is not a multiple of patch_size \(patch)")
        }
        let registers = modelType == "dinov2_with_registers" ? try int("num_register_tokens", default: 4) : 0
        try inRange("num_register_tokens", registers, 0...limits.registers)
        let eps = (json["layer_norm_eps"] as? NSNumber)?.doubleValue ?? 1e-6
        guard eps.isFinite, eps > 0, eps <= 1 else { throw fail("layer_norm_eps \(eps) must be > 0 and <= 1") }
        self.init(
            hiddenSize: hidden, depth: depth, heads: heads,
            feedForward: swiGLU
                ? .swiGLU(hidden: DINOv2Config.swiGLUHidden(mlpHidden: mlpHidden)) : .mlp(hidden: mlpHidden),
            registers: registers, patchSize: patch, positionGrid: imageSize / patch, layerNormEps: Float(eps))
    }
}

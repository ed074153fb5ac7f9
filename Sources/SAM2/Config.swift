// Hyper-parameters of a whole SAM 2 model: the image encoder (Hiera trunk + FPN neck), one entry per
// published size, and the memory path (memory encoder and attention, prompt encoder, mask decoder).
// Source: sam2/configs/sam2{,.1}/sam2{,.1}_hiera_{t,s,b+,l}.yaml plus the Hiera defaults they rely on
// (docs/sam2.md, image encoder). The trunk and neck are identical in SAM 2.0 and SAM 2.1, and every size
// shares the memory path's widths: the releases differ only in two memory-path flags, so one table of
// sizes serves both.

/// Which SAM 2 release a checkpoint belongs to. The image encoder is the same in both.
public enum SAM2Version: String, Sendable, CaseIterable {
    case sam2 = "2.0"
    case sam2_1 = "2.1"
}

public struct SAM2Config: Sendable, Equatable, Codable, CustomStringConvertible {
    /// "tiny", "small", "base_plus", "large" (or "custom" for test models).
    public var name: String
    /// Channels after the patch embedding (stage 1); doubled at every later stage.
    public var embedDim: Int
    /// Heads in stage 1; doubled at every later stage (so the head dim is constant).
    public var numHeads: Int
    /// Blocks per stage (4 stages).
    public var stages: [Int]
    /// Blocks (global index) that attend over the whole map instead of windows.
    public var globalAttentionBlocks: [Int]
    /// Window size per stage; the first block of a stage still uses the previous stage's window.
    public var windowSpec: [Int]
    /// Spatial size (h, w) of the background position embedding, bicubic-resized to the token grid.
    public var positionEmbeddingBackgroundSize: [Int]
    /// Number of stage transitions that 2x2 max-pool the queries (3 in every published model).
    public var qPoolStages: Int
    /// Channels of every FPN level, which is also the width of the memory-attention tokens and the mask
    /// decoder (d_model, `hiddenDim`).
    public var neckDim: Int
    /// FPN levels (0 = finest) that receive the top-down (nearest x2) path; the others are lateral only.
    public var fpnTopDownLevels: [Int]
    /// Coarsest FPN levels dropped after the top-down pass (the 32x32 level is still computed).
    public var scalp: Int
    /// Square input resolution the model is run at; the memory-attention grid is imageSize / 16.
    public var imageSize: Int

    // Memory path. Every published SAM 2 / 2.1 size shares these (memory 64, 7 memory slots, 16 pointers);
    // the tests use a shrunken model of the same structure.

    /// Channels of a stored memory (memory-encoder output); a pointer becomes hiddenDim / memoryDim tokens.
    public var memoryDim: Int
    /// Temporal memory slots (`num_maskmem`); conditioning frames use the last row of `maskmem_tpos_enc`.
    public var memorySlots: Int
    /// `max_obj_ptrs_in_encoder`: caps the pointer-distance normalisation (M = min(frames, 16)).
    public var maxObjectPointers: Int
    /// SAM 2.1 projects a temporal sine PE onto every pointer token; SAM 2.0 uses zeros.
    public var pointerTemporalEncoding: Bool
    /// SAM 2.1 adds `no_obj_embed_spatial` to the memory of an empty frame; SAM 2.0 has no such embedding.
    public var noObjectSpatialEmbedding: Bool

    public init(
        name: String, embedDim: Int, numHeads: Int, stages: [Int], globalAttentionBlocks: [Int],
        windowSpec: [Int], positionEmbeddingBackgroundSize: [Int], qPoolStages: Int = 3,
        neckDim: Int = 256, fpnTopDownLevels: [Int] = [2, 3], scalp: Int = 1, imageSize: Int = 1024,
        memoryDim: Int = 64, memorySlots: Int = 7, maxObjectPointers: Int = 16,
        pointerTemporalEncoding: Bool = true, noObjectSpatialEmbedding: Bool = true
    ) {
        self.name = name
        self.embedDim = embedDim
        self.numHeads = numHeads
        self.stages = stages
        self.globalAttentionBlocks = globalAttentionBlocks
        self.windowSpec = windowSpec
        self.positionEmbeddingBackgroundSize = positionEmbeddingBackgroundSize
        self.qPoolStages = qPoolStages
        self.neckDim = neckDim
        self.fpnTopDownLevels = fpnTopDownLevels
        self.scalp = scalp
        self.imageSize = imageSize
        self.memoryDim = memoryDim
        self.memorySlots = memorySlots
        self.maxObjectPointers = maxObjectPointers
        self.pointerTemporalEncoding = pointerTemporalEncoding
        self.noObjectSpatialEmbedding = noObjectSpatialEmbedding
    }

    /// A model description (`<weights>.json`) names the image encoder only; the memory path's fields
    /// default to the published values until the weights' shapes set them.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            name: try c.decode(String.self, forKey: .name), embedDim: try c.decode(Int.self, forKey: .embedDim),
            numHeads: try c.decode(Int.self, forKey: .numHeads), stages: try c.decode([Int].self, forKey: .stages),
            globalAttentionBlocks: try c.decode([Int].self, forKey: .globalAttentionBlocks),
            windowSpec: try c.decode([Int].self, forKey: .windowSpec),
            positionEmbeddingBackgroundSize: try c.decode([Int].self, forKey: .positionEmbeddingBackgroundSize),
            qPoolStages: try c.decode(Int.self, forKey: .qPoolStages),
            neckDim: try c.decode(Int.self, forKey: .neckDim),
            fpnTopDownLevels: try c.decode([Int].self, forKey: .fpnTopDownLevels),
            scalp: try c.decode(Int.self, forKey: .scalp),
            imageSize: try c.decode(Int.self, forKey: .imageSize))
        memoryDim = try c.decodeIfPresent(Int.self, forKey: .memoryDim) ?? memoryDim
        memorySlots = try c.decodeIfPresent(Int.self, forKey: .memorySlots) ?? memorySlots
        maxObjectPointers = try c.decodeIfPresent(Int.self, forKey: .maxObjectPointers) ?? maxObjectPointers
        pointerTemporalEncoding =
            try c.decodeIfPresent(Bool.self, forKey: .pointerTemporalEncoding) ?? pointerTemporalEncoding
        noObjectSpatialEmbedding =
            try c.decodeIfPresent(Bool.self, forKey: .noObjectSpatialEmbedding) ?? noObjectSpatialEmbedding
    }

    public static let tiny = SAM2Config(
        name: "tiny", embedDim: 96, numHeads: 1, stages: [1, 2, 7, 2], globalAttentionBlocks: [5, 7, 9],
        windowSpec: [8, 4, 14, 7], positionEmbeddingBackgroundSize: [7, 7])
    public static let small = SAM2Config(
        name: "small", embedDim: 96, numHeads: 1, stages: [1, 2, 11, 2], globalAttentionBlocks: [7, 10, 13],
        windowSpec: [8, 4, 14, 7], positionEmbeddingBackgroundSize: [7, 7])
    /// b+ keeps Hiera's defaults for everything but width and heads (background PE 14x14).
    public static let basePlus = SAM2Config(
        name: "base_plus", embedDim: 112, numHeads: 2, stages: [2, 3, 16, 3], globalAttentionBlocks: [12, 16, 20],
        windowSpec: [8, 4, 14, 7], positionEmbeddingBackgroundSize: [14, 14])
    public static let large = SAM2Config(
        name: "large", embedDim: 144, numHeads: 2, stages: [2, 6, 36, 4], globalAttentionBlocks: [23, 33, 43],
        windowSpec: [8, 4, 16, 8], positionEmbeddingBackgroundSize: [7, 7])

    /// The four published sizes, as SAM 2.1 (SAM 2.0: `version(.sam2)`).
    public static let published: [SAM2Config] = [tiny, small, basePlus, large]

    public static func named(_ name: String) -> SAM2Config? {
        published.first { $0.name == name }
    }

    /// This size as the given release: SAM 2.0 has no pointer temporal PE and no occlusion embedding.
    public func version(_ version: SAM2Version) -> SAM2Config {
        var c = self
        c.pointerTemporalEncoding = version == .sam2_1
        c.noObjectSpatialEmbedding = version == .sam2_1
        return c
    }

    // MARK: Derived layout

    /// Width of the image features, the memory-attention tokens and the decoder (d_model): the neck's.
    public var hiddenDim: Int {
        get { neckDim }
        set { neckDim = newValue }
    }
    /// Side of the top-level feature map (backbone stride 16).
    public var featureSize: Int { imageSize / 16 }
    /// Side of the decoder's low-resolution masks (4x the feature map).
    public var lowResolutionSize: Int { featureSize * 4 }
    /// Tokens per pointer.
    public var tokensPerPointer: Int { hiddenDim / memoryDim }

    public var depth: Int { stages.reduce(0, +) }
    /// Global index of the last block of each stage.
    public var stageEnds: [Int] {
        var ends: [Int] = []
        var total = 0
        for n in stages { total += n; ends.append(total - 1) }
        return ends
    }
    /// Channels of the four stage outputs, finest first.
    public var stageDims: [Int] { (0..<stages.count).map { embedDim << $0 } }

    /// Per-block layout, exactly as Hiera builds it (window lags one block behind the stage change).
    public struct Block: Sendable, Equatable {
        public var dimIn: Int
        public var dimOut: Int
        public var heads: Int
        /// 0 = global attention.
        public var window: Int
        public var qPool: Bool
    }

    public var blocks: [Block] {
        let ends = stageEnds
        let qPoolBlocks = Set(ends.dropLast().prefix(qPoolStages).map { $0 + 1 })
        var result: [Block] = []
        var dim = embedDim, heads = numHeads, stage = 1
        for i in 0..<depth {
            var window = windowSpec[stage - 1]
            if globalAttentionBlocks.contains(i) { window = 0 }
            var dimOut = dim
            if ends.contains(i - 1) {
                dimOut = dim * 2
                heads *= 2
                stage += 1
            }
            result.append(
                Block(dimIn: dim, dimOut: dimOut, heads: heads, window: window, qPool: qPoolBlocks.contains(i)))
            dim = dimOut
        }
        return result
    }

    /// FLOPs of `forward_image` at `imageSize` (FLOP = 2 MAC; convs, linears and attention matmuls,
    /// padded window tokens included as the reference computes them; norms/activations excluded) —
    /// the usual convention, so GFLOP/s figures compare with the reference's.
    public var flops: (patchEmbed: Double, blocks: [Double], neck: Double, highResolution: Double, total: Double) {
        var side = imageSize / 4
        let patch = 2.0 * Double(side * side) * Double(embedDim * 3 * 49)
        var perBlock: [Double] = []
        for b in blocks {
            let dIn = Double(b.dimIn), dOut = Double(b.dimOut)
            let tokens = Double(side * side)
            let padded = b.window > 0 ? Double(((side + b.window - 1) / b.window) * b.window) : Double(side)
            let keysPerGroup = b.window > 0 ? Double(b.window * b.window) : tokens
            let groups = b.window > 0 ? (padded / Double(b.window)) * (padded / Double(b.window)) : 1
            let queriesPerGroup = b.qPool ? keysPerGroup / 4 : keysPerGroup
            let outSide = b.qPool ? side / 2 : side
            let outTokens = Double(outSide * outSide)
            var f = 2 * groups * keysPerGroup * dIn * 3 * dOut  // qkv on (padded) windows
            f += 2 * 2 * groups * queriesPerGroup * keysPerGroup * dOut  // scores and weighted values
            f += 2 * groups * queriesPerGroup * dOut * dOut  // attn.proj
            if b.dimIn != b.dimOut { f += 2 * tokens * dIn * dOut }  // shortcut proj
            f += 2 * 2 * outTokens * dOut * 4 * dOut  // MLP
            perBlock.append(f)
            side = outSide
        }
        let d = Double(neckDim)
        var neck = 0.0
        for (s, c) in stageDims.enumerated() {
            let n = Double((imageSize / (4 << s)) * (imageSize / (4 << s)))
            neck += 2 * n * Double(c) * d
        }
        let n0 = Double((imageSize / 4) * (imageSize / 4))
        let highRes = 2 * n0 * d * (d / 8) + 2 * (n0 / 4) * d * (d / 4)
        let total = patch + perBlock.reduce(0, +) + neck + highRes
        return (patch, perBlock, neck, highRes, total)
    }

    public var description: String {
        """
        \(name): embed \(embedDim), heads \(numHeads), stages \(stages), global \(globalAttentionBlocks), windows \
        \(windowSpec), bkg \(positionEmbeddingBackgroundSize)
        """
    }
}

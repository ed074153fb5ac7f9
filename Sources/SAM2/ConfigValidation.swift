// Validation of a SAM 2 configuration before any layer is built: every field against the range the model
// code supports and against the checkpoint's tensor shapes. A model description (`<weights>.json`) is
// user input; without this, absurd values trapped deep in the layers (index out of range, a zero-size
// window, a 100000-pixel input that never finished). Errors name the file the configuration came from
// and the field: "weights.safetensors.json: numHeads 0 must be >= 1".
import RAGSegIO

extension SAM2Config {
    /// Largest input side accepted (4x the published 1024: the trunk's first stage then holds 1M tokens).
    public static let maxImageSize = 4096
    /// Bounds far above every published model that keep all derived sizes clear of overflow.
    static let maxWidth = 1 << 14, maxBlocksPerStage = 1024, maxWindow = 1024, maxBackgroundSide = 1024

    /// Checks this configuration; `file` is where it came from (named in errors). With `memoryPath` false
    /// only the image encoder's fields are checked (a model description, before the memory path's widths
    /// are read from the shapes).
    public func validate(against weights: SAM2Weights, file: String, memoryPath: Bool = true) throws {
        let fail = { (message: String) in RAGSegIOError(path: file, message: message) }
        func require(_ ok: Bool, _ message: @autoclosure () -> String) throws { if !ok { throw fail(message()) } }
        func inRange(_ field: String, _ value: Int, _ range: ClosedRange<Int>) throws {
            try require(value >= range.lowerBound, "\(field) \(value) must be >= \(range.lowerBound)")
            try require(value <= range.upperBound, "\(field) \(value) must be <= \(range.upperBound)")
        }

        // Ranges first: the derived layout (depth, widths, block list) is only computed from sane values.
        try inRange("embedDim", embedDim, 1...Self.maxWidth)
        try inRange("numHeads", numHeads, 1...embedDim)
        try require(
            embedDim % numHeads == 0, "numHeads \(numHeads) must divide embedDim \(embedDim) (heads share the width)")
        try require(stages.count == 4, "stages \(stages) must list the blocks of 4 Hiera stages")
        for (i, n) in stages.enumerated() { try inRange("stages[\(i)]", n, 1...Self.maxBlocksPerStage) }
        try require(
            qPoolStages == stages.count - 1,
            "qPoolStages \(qPoolStages) must be \(stages.count - 1) (every later stage halves the map for the FPN)")
        try require(scalp == 1, "scalp \(scalp) must be 1 (the memory path reads the levels at strides 4, 8 and 16)")
        try require(
            windowSpec.count == stages.count,
            "windowSpec \(windowSpec) must have one window per stage (\(stages.count))")
        for (i, w) in windowSpec.enumerated() { try inRange("windowSpec[\(i)]", w, 1...Self.maxWindow) }
        for (i, b) in globalAttentionBlocks.enumerated() {
            try inRange("globalAttentionBlocks[\(i)]", b, 0...(depth - 1))
        }
        try require(
            positionEmbeddingBackgroundSize.count == 2,
            "positionEmbeddingBackgroundSize \(positionEmbeddingBackgroundSize) must be [height, width]")
        for (i, s) in positionEmbeddingBackgroundSize.enumerated() {
            try inRange("positionEmbeddingBackgroundSize[\(i)]", s, 1...Self.maxBackgroundSide)
        }
        try inRange("neckDim", neckDim, 8...Self.maxWidth)
        try require(neckDim % 8 == 0, "neckDim \(neckDim) must be a multiple of 8 (conv_s0 has neckDim / 8 outputs)")
        for (i, level) in fpnTopDownLevels.enumerated() {
            try inRange("fpnTopDownLevels[\(i)]", level, 0...(stages.count - 1))
        }
        try inRange("imageSize", imageSize, 32...Self.maxImageSize)
        try require(imageSize % 32 == 0, "imageSize \(imageSize) must be a multiple of 32 (the trunk's total stride)")
        try require(
            (imageSize / 4) % windowSpec[0] == 0,
            """
            imageSize \(imageSize) must make a token grid (imageSize / 4 = \(imageSize / 4)) that is a multiple of \
            windowSpec[0] \(windowSpec[0]) (the window position table is tiled over it)
            """)
        for (i, block) in blocks.enumerated() where block.qPool && block.window > 0 {
            try require(
                block.window % 2 == 0,
                "windowSpec: block \(i) pools its queries in windows of \(block.window), which must be even")
        }
        try inRange("maxObjectPointers", maxObjectPointers, 1...1024)

        // Against the weights: what the shapes show must agree with what the description says.
        func shape(_ key: String) throws -> [Int] {
            guard let s = weights.shape(key) else {
                throw RAGSegIOError(path: weights.path, message: "missing tensor '\(weights.storedName(key))'")
            }
            return s
        }
        func matches(_ field: String, _ value: Any, _ key: String, _ ok: ([Int]) -> Bool) throws {
            let s = try shape(key)
            try require(ok(s), "\(field) \(value) does not match the weights ('\(weights.storedName(key))' is \(s))")
        }
        let trunk = "image_encoder.trunk."
        /// Blocks per stage as the shapes show them: a stage starts where the qkv width changes.
        func weightStages() -> [Int] {
            var result: [Int] = [], width = -1, block = 0
            while let qkv = weights.shape(trunk + "blocks.\(block).attn.qkv.weight") {
                let out = qkv.first ?? 0
                if out != width { result.append(0) }
                result[result.count - 1] += 1
                width = out
                block += 1
            }
            return result
        }
        try matches("embedDim", embedDim, trunk + "patch_embed.proj.weight") { $0.first == embedDim }
        let shown = weightStages()
        try require(
            shown == stages, "stages \(stages) do not match the weights, which hold \(shown) blocks per stage")
        try matches("positionEmbeddingBackgroundSize", positionEmbeddingBackgroundSize, trunk + "pos_embed") {
            Array($0.suffix(2)) == positionEmbeddingBackgroundSize
        }
        try matches("windowSpec[0]", windowSpec[0], trunk + "pos_embed_window") {
            Array($0.suffix(2)) == [windowSpec[0], windowSpec[0]]
        }
        try matches("neckDim", neckDim, "image_encoder.neck.convs.0.conv.weight") { $0.first == neckDim }
        guard memoryPath else { return }
        try inRange("memoryDim", memoryDim, 1...hiddenDim)
        try require(
            hiddenDim % memoryDim == 0, "memoryDim \(memoryDim) must divide the decoder width \(hiddenDim)")
        try matches("memoryDim", memoryDim, "maskmem_tpos_enc") { $0.last == memoryDim }
        try matches("memorySlots", memorySlots, "maskmem_tpos_enc") { $0.first == memorySlots && memorySlots >= 1 }
        try matches("neckDim", neckDim, "no_obj_ptr") { $0.last == neckDim }

    }
}

// Validation of a DINOv2 configuration before any layer is built: field ranges (also checked while
// config.json is read, with its field names) and agreement with the checkpoint's tensor shapes. Without
// it a config.json with num_hidden_layers -1 trapped and image_size -140 crashed in the position table.
import RAGSegIO

extension DINOv2Config {
    /// Upper bounds far above every published model (ViT-g: width 1536, 40 blocks, 518 px).
    public static let limits = (width: 1 << 14, depth: 1024, mlpRatio: 64, imageSize: 4096, registers: 64)

    /// Checks this configuration against the checkpoint `loader` reads; `file` is where the configuration
    /// came from (config.json, or the weights when it was inferred from them), named in errors.
    func validate(against loader: CheckpointLoader, file: String) throws {
        let fail = { (message: String) in RAGSegIOError(path: file, message: message) }
        func inRange(_ key: String, _ value: Int, _ range: ClosedRange<Int>) throws {
            if value < range.lowerBound { throw fail("\(key) \(value) must be >= \(range.lowerBound)") }
            if value > range.upperBound { throw fail("\(key) \(value) must be <= \(range.upperBound)") }
        }
        let limits = Self.limits
        try inRange("hidden_size", hiddenSize, 1...limits.width)
        try inRange("num_attention_heads", heads, 1...hiddenSize)
        if hiddenSize % heads != 0 {
            throw fail("hidden_size \(hiddenSize) is not divisible by num_attention_heads \(heads)")
        }
        try inRange("num_hidden_layers", depth, 1...limits.depth)
        try inRange("patch_size", patchSize, 1...limits.imageSize)
        try inRange("image_size / patch_size (position grid)", positionGrid, 1...limits.imageSize / patchSize)
        try inRange("num_register_tokens", registers, 0...limits.registers)
        switch feedForward {
        case .mlp(let h), .swiGLU(let h): try inRange("MLP width (hidden_size x mlp_ratio)", h, 1...limits.width * 64)
        }
        if !(layerNormEps.isFinite && layerNormEps > 0) { throw fail("layer_norm_eps \(layerNormEps) must be > 0") }

        // Against the weights (before any tensor is read, so no loop or allocation follows a wrong count).
        let blocksInFile = loader.blockCount()
        if blocksInFile != depth {
            throw fail(
                """
                num_hidden_layers \(depth) does not match the weights, which hold \(blocksInFile) blocks \
                (\(loader.file.path))
                """)
        }
        let patchShape = loader.file.entry(loader.patchName + ".weight")?.shape
        if let patchShape, patchShape != [hiddenSize, 3, patchSize, patchSize] {
            throw fail(
                """
                hidden_size \(hiddenSize) / patch_size \(patchSize) do not match the weights \
                ('\(loader.patchName).weight' is \(patchShape), expected [hidden_size, 3, patch_size, patch_size])
                """)
        }
        if let positions = loader.file.entry(loader.positionName)?.shape.dropLast().last,
            positions != 1 + positionGrid * positionGrid
        {
            throw fail(
                """
                image_size / patch_size = \(positionGrid) does not match the weights ('\(loader.positionName)' \
                holds \(positions) positions, expected 1 + \(positionGrid)^2)
                """)
        }
    }
}

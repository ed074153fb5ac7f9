// The effective configuration of each model as canonical JSON (sorted keys), recorded in a bank's
// ModelIdentity at create and compared whenever the bank is used with models: the same weights under
// another model description (`<weights>.json`, config.json) make different vectors and memories.
import DINOv2
import Foundation
import SAM2

enum ModelConfiguration {
    static func canonical(_ object: [String: Any]) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    /// Every field of the SAM 2 configuration the model was built with (image encoder and memory path).
    static func json(_ c: SAM2Config) -> String {
        [
            "name": c.name, "embedDim": c.embedDim, "numHeads": c.numHeads, "stages": c.stages,
            "globalAttentionBlocks": c.globalAttentionBlocks, "windowSpec": c.windowSpec,
            "positionEmbeddingBackgroundSize": c.positionEmbeddingBackgroundSize, "qPoolStages": c.qPoolStages,
            "neckDim": c.neckDim, "fpnTopDownLevels": c.fpnTopDownLevels, "scalp": c.scalp,
            "imageSize": c.imageSize, "memoryDim": c.memoryDim, "memorySlots": c.memorySlots,
            "maxObjectPointers": c.maxObjectPointers, "pointerTemporalEncoding": c.pointerTemporalEncoding,
            "noObjectSpatialEmbedding": c.noObjectSpatialEmbedding,
        ].withCanonicalValues
    }

    /// The DINOv2 architecture in config.json's terms (the input size is recorded in the bank's preprocessing).
    static func json(_ c: DINOv2Config) -> String {
        let feedForward: [String: Any]
        switch c.feedForward {
        case .mlp(let h): feedForward = ["kind": "mlp", "hidden": h]
        case .swiGLU(let h): feedForward = ["kind": "swiglu", "hidden": h]
        }
        return [
            "hidden_size": c.hiddenSize, "num_hidden_layers": c.depth, "num_attention_heads": c.heads,
            "feed_forward": feedForward, "num_register_tokens": c.registers, "patch_size": c.patchSize,
            "position_grid": c.positionGrid, "layer_norm_eps": Double(c.layerNormEps),
            "position_resampling": c.positionResampling == .bicubic ? "bicubic" : "bicubic-antialiased",
        ].withCanonicalValues
    }
}

extension Dictionary where Key == String, Value == Any {
    fileprivate var withCanonicalValues: String { ModelConfiguration.canonical(self) }
}

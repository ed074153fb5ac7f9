// Opening a SAM 2 checkpoint for RAGSeg: the whole model from one safetensors file (official or Hugging
// Face key layout), identified for banks by the file's SHA-256.
import Foundation
import RAGSegIO
import SAM2
import SupportBank

public enum SAM2Checkpoint {
    /// The SAM 2 half of RAGSeg for `path` (see `SAM2Model(checkpoint:)` for how the size is found).
    public static func supportEncoder(path: String) throws -> SAM2SupportEncoder {
        let model = try SAM2Model(checkpoint: path)
        var identity = try weightsIdentity(path, name: "sam2", variant: model.config.name)
        identity.configuration = ModelConfiguration.json(model.config)
        return SAM2SupportEncoder(sam2: model, model: identity)
    }
}

// Opening a SAM 2 checkpoint for RAGSeg: the image encoder and the memory path from one safetensors
// file (official or Hugging Face key layout).
import Foundation
import RAGSegIO
import SAM2
import SupportBank

public enum SAM2Checkpoint {
    /// The SAM 2 half of RAGSeg for `path` (see SupportSegmenter.init(path:) for how the size is found),
    /// identified for banks by the file's SHA-256.
    public static func supportEncoder(path: String) throws -> SAM2SupportEncoder {
        let segmenter = try SupportSegmenter(path: path)
        return SAM2SupportEncoder(imageEncoder: segmenter.encoder, memoryModel: segmenter.model,
                                  model: try weightsIdentity(path, name: "sam2", variant: segmenter.encoder.config.name))
    }
}

// Opening a SAM 2 checkpoint for RAGSeg: the image encoder and the memory path from one safetensors
// file (official or Hugging Face key layout).
import Foundation
import RAGSegIO
import SAM2
import SupportBank

public enum SAM2Checkpoint {
    /// The SAM 2 half of RAGSeg for `path`, identified (for banks) by the file's SHA-256. The image
    /// encoder's size comes from SAM2ModelDescription (shapes, or a `<weights>.json` sidecar).
    public static func supportEncoder(path: String) throws -> SAM2SupportEncoder {
        guard FileManager.default.fileExists(atPath: path) else {
            throw RAGSegIOError(path: path, message: "SAM 2 weights file not found")
        }
        let weights = try SAM2Weights(path: path)
        var encoderConfig = try SAM2ModelDescription.imageEncoderConfig(path: path, weights: weights)
        let memoryModel = try SAM2MemoryModel(path: path, imageSize: encoderConfig.imageSize)
        encoderConfig.neckDim = memoryModel.config.hiddenDim
        let imageEncoder = try SAM2ImageEncoder(weights: weights, config: encoderConfig)
        return SAM2SupportEncoder(imageEncoder: imageEncoder, memoryModel: memoryModel,
                                  model: try weightsIdentity(path, name: "sam2", variant: encoderConfig.name))
    }
}

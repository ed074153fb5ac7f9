// Opening a SAM 2 checkpoint for RAGSeg: the image encoder and the memory path from one safetensors
// file (official or Hugging Face key layout).
import Foundation
import RAGSegIO
import SAM2
import SupportBank

public enum SAM2Checkpoint {
    /// Optional sidecar beside the weights (`<weights>.json`, e.g. `sam2.safetensors.json`) describing an
    /// image encoder that is not one of the published sizes (test models); published checkpoints need none:
    /// their size is inferred from the tensor shapes and they run at 1024 x 1024.
    public struct Sidecar: Codable, Sendable {
        public var imageEncoder: SAM2ImageEncoderConfig
    }

    public static func sidecarPath(for weights: String) -> String { weights + ".json" }

    /// The SAM 2 half of RAGSeg for `path`, identified (for banks) by the file's SHA-256.
    public static func supportEncoder(path: String) throws -> SAM2SupportEncoder {
        guard FileManager.default.fileExists(atPath: path) else {
            throw RAGSegIOError(path: path, message: "SAM 2 weights file not found")
        }
        let weights = try SAM2Weights(path: path)
        var encoderConfig: SAM2ImageEncoderConfig
        let sidecar = sidecarPath(for: path)
        if FileManager.default.fileExists(atPath: sidecar) {
            do {
                encoderConfig = try JSONDecoder().decode(Sidecar.self, from: Data(contentsOf: URL(fileURLWithPath: sidecar))).imageEncoder
            } catch {
                throw RAGSegIOError(path: sidecar, message: "not a valid SAM 2 model description: \(error)")
            }
        } else {
            encoderConfig = try weights.inferImageEncoderConfig()
        }
        let memoryModel = try SAM2MemoryModel(path: path, imageSize: encoderConfig.imageSize)
        encoderConfig.neckDim = memoryModel.config.hiddenDim
        let imageEncoder = try SAM2ImageEncoder(weights: weights, config: encoderConfig)
        return SAM2SupportEncoder(imageEncoder: imageEncoder, memoryModel: memoryModel,
                                  model: try weightsIdentity(path, name: "sam2", variant: encoderConfig.name))
    }
}

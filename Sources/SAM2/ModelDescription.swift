// Which image encoder a SAM 2 checkpoint holds. Published sizes are recognized from the tensor shapes
// (and run at 1024 x 1024); other models (our small test models) carry a sidecar `<weights>.json`.
import Foundation
import RAGSegIO

public enum SAM2ModelDescription {
    public struct Sidecar: Codable, Sendable {
        public var imageEncoder: SAM2Config
    }

    /// `sam2.safetensors` -> `sam2.safetensors.json`.
    public static func sidecarPath(for weights: String) -> String { weights + ".json" }

    /// The image encoder configuration for the checkpoint at `path`: the sidecar's when there is one,
    /// else inferred from the tensor shapes. (The memory path's fields are SAM2Weights.inferConfig's.)
    public static func imageEncoderConfig(path: String, weights: SAM2Weights) throws -> SAM2Config {
        let sidecar = sidecarPath(for: path)
        guard FileManager.default.fileExists(atPath: sidecar) else { return try weights.inferImageEncoderConfig() }
        let config: SAM2Config
        do {
            config = try JSONDecoder().decode(Sidecar.self, from: Data(contentsOf: URL(fileURLWithPath: sidecar)))
                .imageEncoder
        } catch {
            throw RAGSegIOError(path: sidecar, message: "not a valid SAM 2 model description: \(error)")
        }
        try config.validate(against: weights, file: sidecar, memoryPath: false)
        return config
    }

    /// The file a checkpoint's configuration is read from (for errors): its sidecar, else the weights.
    public static func configurationFile(for weights: String) -> String {
        let sidecar = sidecarPath(for: weights)
        return FileManager.default.fileExists(atPath: sidecar) ? sidecar : weights
    }
}

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

    /// The checkpoint's description, its sidecar read once: the image encoder configuration (the sidecar's,
    /// checked against the shapes, else inferred from them) and the memory-path fields the sidecar states (nil
    /// without a sidecar), for `checkStatedMemoryPath` once the shapes have set them. (The memory path's fields
    /// themselves are `SAM2Weights.inferConfig`'s, from the shapes.)
    static func describe(path: String, weights: SAM2Weights) throws -> (
        imageEncoder: SAM2Config, stated: StatedMemoryPath?
    ) {
        let sidecar = sidecarPath(for: path)
        guard FileManager.default.fileExists(atPath: sidecar) else {
            return (try weights.inferImageEncoderConfig(), nil)
        }
        let config: SAM2Config, stated: StatedMemoryPath
        do {
            let data = try Data(contentsOf: URL(fileURLWithPath: sidecar))
            config = try JSONDecoder().decode(Sidecar.self, from: data).imageEncoder
            stated = try JSONDecoder().decode(StatedSidecar.self, from: data).imageEncoder
        } catch {
            throw RAGSegIOError(path: sidecar, message: "not a valid SAM 2 model description: \(error)")
        }
        try config.validate(against: weights, file: sidecar, memoryPath: false)
        return (config, stated)
    }

    /// The memory-path fields a description states. The weights' shapes decide them (`SAM2Weights.inferConfig`);
    /// a description that states other values describes some other model, and is refused rather than ignored.
    struct StatedMemoryPath: Decodable {
        var memoryDim: Int?
        var memorySlots: Int?
        var pointerTemporalEncoding: Bool?
        var noObjectSpatialEmbedding: Bool?
    }

    private struct StatedSidecar: Decodable { var imageEncoder: StatedMemoryPath }

    /// Throws, naming the sidecar of the checkpoint at `path` and the field, when the sidecar stated (`stated`) a
    /// memory-path value other than `config`'s (the one the shapes give).
    static func checkStatedMemoryPath(_ stated: StatedMemoryPath, of config: SAM2Config, path: String) throws {
        let sidecar = sidecarPath(for: path)
        func check<Value: Equatable>(_ field: String, _ value: Value?, _ actual: Value, _ weightsSay: String) throws {
            guard let value, value != actual else { return }
            throw RAGSegIOError(path: sidecar, message: "\(field) \(value) does not match the weights: \(weightsSay)")
        }
        func presence(_ tensor: String, _ present: Bool) -> String { "\(tensor) is \(present ? "present" : "absent")" }
        try check(
            "memoryDim", stated.memoryDim, config.memoryDim, "maskmem_tpos_enc's last axis is \(config.memoryDim)")
        try check(
            "memorySlots", stated.memorySlots, config.memorySlots,
            "maskmem_tpos_enc's first axis is \(config.memorySlots)")
        try check(
            "pointerTemporalEncoding", stated.pointerTemporalEncoding, config.pointerTemporalEncoding,
            presence("obj_ptr_tpos_proj", config.pointerTemporalEncoding))
        try check(
            "noObjectSpatialEmbedding", stated.noObjectSpatialEmbedding, config.noObjectSpatialEmbedding,
            presence("no_obj_embed_spatial", config.noObjectSpatialEmbedding))
    }

    /// The file a checkpoint's configuration is read from (for errors): its sidecar, else the weights.
    public static func configurationFile(for weights: String) -> String {
        let sidecar = sidecarPath(for: weights)
        return FileManager.default.fileExists(atPath: sidecar) ? sidecar : weights
    }
}

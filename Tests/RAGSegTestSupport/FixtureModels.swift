import Foundation
import DINOv2
import RAGSegIO
import SAM2
import SupportBank
import TensorCore
import RAGSegPipeline

/// The tiny random-weight reference models other suites verified against PyTorch: DINOv2 (plain, D = 128,
/// 2 blocks) and the SAM 2 memory-path fixture checkpoint (image size 128, shrunken trunk), used here as
/// real models for end-to-end tests (shared by PipelineTests and ServerTests). Paths are relative to this file, so
/// tests run from any checkout.
public enum FixtureModels {
    public static let testsDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent()
    public static let dinov2 = testsDirectory.appendingPathComponent("DINOv2Tests/Fixtures/plain").path
    public static let sam2 = testsDirectory.appendingPathComponent("SAM2Tests/Fixtures/memory/weights.safetensors").path
    public static let sam2ImageSize = 128

    /// The fixture script's model (tools/make_sam2_memory_fixtures.py): a shrunken Hiera, not a published
    /// size, so it cannot be inferred from the shapes; a 16-channel memory.
    public static func sam2Config(hiddenDim: Int, memoryDim: Int) -> SAM2Config {
        SAM2Config(
            name: "memory-path fixture", embedDim: 8, numHeads: 1, stages: [1, 1, 2, 1], globalAttentionBlocks: [3],
            windowSpec: [8, 4, 14, 7], positionEmbeddingBackgroundSize: [7, 7], neckDim: hiddenDim,
            imageSize: sam2ImageSize,
            memoryDim: memoryDim)
    }

    public static func retrievalEncoder() throws -> DINOv2RetrievalEncoder {
        try DINOv2RetrievalEncoder(path: dinov2, inputSize: 112)
    }

    /// Opened the way the CLI opens it (the sidecar weights.safetensors.json describes the shrunken trunk).
    public static func supportEncoder() throws -> SAM2SupportEncoder {
        try SAM2Checkpoint.supportEncoder(path: sam2)
    }

    /// The fixture SAM 2 with the last bias of its object-score head raised by 100: every target is then judged
    /// to hold the object, so masks are the decoder's own logits instead of all background (the random weights
    /// score every target negative). For tests of where mask voxels land (volume geometry), not of their values:
    /// these are not the reference model's outputs. Written once per process to a temporary folder.
    public static func supportEncoderSeeingObjects() throws -> SAM2SupportEncoder {
        try SAM2Checkpoint.supportEncoder(path: try seeingObjectsWeights.get())
    }

    private static let seeingObjectsWeights = Result { () throws -> String in
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
            "ragseg-sam2-seeing-objects-\(getpid())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let path = folder.appendingPathComponent("weights.safetensors").path
        let file = try SafeTensors(path: sam2)
        let biasName = "sam_mask_decoder.pred_obj_score_head.layers.2.bias"
        let tensors = try file.names.sorted().map { name -> (String, Tensor) in
            var tensor = try file.tensor(name)
            if name == biasName { tensor = Tensor(shape: tensor.shape, data: tensor.data.map { $0 + 100 }) }
            return (name, tensor)
        }
        try SafeTensors.write(tensors, to: path)
        try? FileManager.default.removeItem(atPath: path + ".json")
        try FileManager.default.copyItem(atPath: sam2 + ".json", toPath: path + ".json")
        return path
    }
}

/// Synthetic cases: a bright textured ellipse (the object) on a smooth background with a distractor blob.
public enum SyntheticCases {
    public struct Case: Sendable {
        public var image: [UInt8]
        public var mask: [UInt8]
    }

    public static func make(seed: UInt64, width: Int, height: Int) -> Case {
        var state = seed &* 0x9E3779B97F4A7C15 | 1
        func uniform() -> Double {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Double(state >> 11) / Double(1 << 53)
        }
        let cx = (0.3 + 0.4 * uniform()) * Double(width), cy = (0.3 + 0.4 * uniform()) * Double(height)
        let rx = (0.12 + 0.15 * uniform()) * Double(width), ry = (0.12 + 0.15 * uniform()) * Double(height)
        let bx = uniform() * Double(width), by = uniform() * Double(height)
        var image = [UInt8](repeating: 0, count: width * height), mask = image
        for y in 0..<height {
            for x in 0..<width {
                let u = (Double(x) - cx) / rx, v = (Double(y) - cy) / ry
                let inside = u * u + v * v <= 1
                var value = 60 + 25 * sin(Double(x) / 9) * cos(Double(y) / 13)
                if (Double(x) - bx) * (Double(x) - bx) + (Double(y) - by) * (Double(y) - by) < 64 { value += 50 }
                if inside { value = 170 + 20 * sin(u * 5) * cos(v * 4) }
                value += 16 * (uniform() - 0.5)
                image[y * width + x] = UInt8(max(0, min(255, value.rounded())))
                mask[y * width + x] = inside ? 255 : 0
            }
        }
        return Case(image: image, mask: mask)
    }

    /// Writes case `i` as images/case_i.png and masks/case_i.png under `directory`; returns the paths.
    public static func write(_ c: Case, index i: Int, width: Int, height: Int, to directory: URL) throws -> CaseSource {
        let images = directory.appendingPathComponent("images"), masks = directory.appendingPathComponent("masks")
        try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: masks, withIntermediateDirectories: true)
        let image = images.appendingPathComponent("case_\(i).png").path
        let mask = masks.appendingPathComponent("case_\(i).png").path
        try PNG.writeGray8(c.image, width: width, height: height, to: image)
        try PNG.writeGray8(c.mask, width: width, height: height, to: mask)
        return CaseSource(image: image, mask: mask)
    }
}

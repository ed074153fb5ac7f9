// The real models behind the encoder protocols of ingest (Ingest/CaseInput.swift): DINOv2 for retrieval embeddings, SAM
// 2
// (image encoder + memory encoder) for support memories.
import Foundation
import DINOv2
import RAGSegIO
import SAM2
import SupportBank
import Synchronization
import TensorCore

/// Identity of a weights file as the bank records it: model family, variant, SHA-256 of the file.
func weightsIdentity(_ path: String, name: String, variant: String) throws -> ModelIdentity {
    ModelIdentity(name: name, variant: variant, sha256: hexString(try SHA256.hash(fileAt: path)))
}

/// DINOv2 final-norm CLS embedding of an image (the bank L2-normalizes it).
public struct DINOv2RetrievalEncoder: RetrievalEncoder, Sendable {
    public let model: ModelIdentity
    public let network: DINOv2Model
    /// Input side in pixels (multiple of 14; 224 by default, as DINOv2 is evaluated).
    public let inputSize: Int

    public var dimension: Int { network.config.hiddenSize }
    public var preprocessing: [String: String] {
        [
            "retrieval":
                """
            DINOv2: RGB (gray replicated), \(inputSize)x\(inputSize) antialiased bicubic (torch F.interpolate), \
            ImageNet mean/std
            """
        ]
    }

    public init(network: DINOv2Model, model: ModelIdentity, inputSize: Int = 224) {
        self.network = network
        self.model = model
        self.inputSize = inputSize
    }

    /// Loads a DINOv2 safetensors file (or a folder with model.safetensors + config.json).
    public init(path: String, inputSize: Int = 224) throws {
        let network = try DINOv2Model(path: path)
        var file = path
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            file = (path as NSString).appendingPathComponent("model.safetensors")
        }
        let c = network.config
        let variant =
            DINOv2Config.published.first { $0.value == c }?.key
            ?? "custom-d\(c.hiddenSize)-l\(c.depth)-r\(c.registers)"
        var identity = try weightsIdentity(file, name: "dinov2", variant: variant)
        identity.configuration = ModelConfiguration.json(c)
        self.init(network: network, model: identity, inputSize: inputSize)
    }

    public func embed(_ image: PNGImage) throws -> [Float] {
        try network.clsEmbeddings(DINOv2Preprocessing.pixels(image, size: inputSize)).data
    }
}

/// SAM 2 support encoding: image encoder on the support image, then the memory path on its mask
/// (what the official video predictor stores for a conditioning frame; see SAM2Model.encodeSupport).
public final class SAM2SupportEncoder: SupportEncoder, @unchecked Sendable {
    public let model: ModelIdentity
    public let sam2: SAM2Model
    /// Multi-label cases call encodeSupport once per label with the same image: keep the last image's
    /// features so the (expensive) image encoder runs once per case, not once per label.
    private let lastFeatures = Mutex<(image: PNGImage, features: SAM2FrameFeatures)?>(nil)

    public init(sam2: SAM2Model, model: ModelIdentity) {
        self.sam2 = sam2
        self.model = model
    }

    public var imageSize: Int { sam2.config.imageSize }

    public var memoryShape: MemoryShape {
        let c = sam2.config
        return MemoryShape(
            channels: c.memoryDim, height: c.featureSize, width: c.featureSize, pointerDimension: c.hiddenDim)
    }

    public var preprocessing: [String: String] {
        [
            "support":
                """
            SAM 2: RGB (gray replicated), \(imageSize)x\(imageSize) antialiased bilinear, ImageNet mean/std; \
            masks: antialiased bilinear + >= 0.5
            """
        ]
    }

    /// Image features at the model's input size.
    public func features(_ image: PNGImage, name: String = "image") throws -> SAM2FrameFeatures {
        if let cached = lastFeatures.withLock({ $0 }), cached.image == image { return cached.features }
        let pixels = try SAM2Preprocess.imageTensor(image, size: imageSize, name: name)
        let f = sam2.encode(pixels)
        lastFeatures.withLock { $0 = (image, f) }
        return f
    }

    public func encodeSupport(image: PNGImage, mask: [UInt8]) throws -> SupportMemory {
        precondition(
            mask.count == image.width * image.height,
            "mask has \(mask.count) pixels for a \(image.width)x\(image.height) image")
        let f = try features(image)
        let binary = Tensor(shape: [image.height, image.width], data: mask.map { $0 != 0 ? 1 : 0 })
        return try sam2.encodeSupport(f, mask: sam2.resizeMask(binary))
    }
}

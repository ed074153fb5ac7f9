// SAM 2 checkpoints as safetensors, in either of the two published key layouts (sam2.md §13):
//  - official: the `model` dict of `sam2{,.1}_hiera_*.pt`, keys unchanged (tools/convert_sam2_checkpoint.py);
//  - Hugging Face: `facebook/sam2{,.1}-hiera-*` (`vision_encoder.backbone.…`, `mask_decoder.…`).
// Code asks for tensors by their official name; the HF name is derived by the same renames
// transformers' converter applies. Shapes are identical in both layouts (no transposes, no splits).
import Foundation
import RAGSegIO
import TensorCore

public enum SAM2KeyLayout: String, Sendable {
    case official
    case huggingFace = "hugging-face"
}

/// Where model code gets its parameters: by official key, with the shape it expects.
public protocol SAM2TensorSource {
    func tensor(_ key: String, shape: [Int]) throws -> Tensor
}

public struct SAM2Weights: SAM2TensorSource {
    public let path: String
    public let file: SafeTensors
    public let layout: SAM2KeyLayout

    /// Opens a safetensors file and detects its key layout from the patch-embedding key.
    public init(path: String) throws {
        self.path = path
        self.file = try SafeTensors(path: path)
        if file.contains("image_encoder.trunk.patch_embed.proj.weight") {
            layout = .official
        } else if file.contains("vision_encoder.backbone.patch_embed.projection.weight") {
            layout = .huggingFace
        } else {
            throw RAGSegIOError(path: path, message:
                "not a SAM 2 checkpoint: found neither 'image_encoder.trunk.patch_embed.proj.weight' (official layout) nor 'vision_encoder.backbone.patch_embed.projection.weight' (Hugging Face layout)")
        }
    }

    /// The key under which this file stores the tensor whose official name is `key`.
    public func storedName(_ key: String) -> String {
        layout == .official ? key : SAM2Weights.huggingFaceName(key)
    }

    /// Official key -> Hugging Face key, for the image-encoder part (trunk, neck, conv_s0/conv_s1).
    /// Order matters: it is the converter's substring-rename order (sam2.md §13.2).
    public static func huggingFaceName(_ key: String) -> String {
        var k = key
        k = k.replacingOccurrences(of: "sam_mask_decoder", with: "mask_decoder")
        k = k.replacingOccurrences(of: "image_encoder.neck", with: "vision_encoder.neck")
        k = k.replacingOccurrences(of: "image_encoder", with: "vision_encoder.backbone")
        k = k.replacingOccurrences(of: "patch_embed.proj", with: "patch_embed.projection")
        k = k.replacingOccurrences(of: ".norm", with: ".layer_norm")
        k = k.replacingOccurrences(of: "trunk.", with: "")
        k = k.replacingOccurrences(of: "mlp.layers.0.", with: "mlp.proj_in.")
        k = k.replacingOccurrences(of: "mlp.layers.1.", with: "mlp.proj_out.")
        if k.hasPrefix("vision_encoder.neck.convs.") {
            k = k.replacingOccurrences(of: ".conv.", with: ".")
        }
        return k
    }

    public func contains(_ key: String) -> Bool { file.contains(storedName(key)) }

    /// Shape of a tensor by official name, nil when absent.
    public func shape(_ key: String) -> [Int]? { file.entry(storedName(key))?.shape }

    /// Loads a tensor by official name; a missing tensor or another shape is an error naming both.
    public func tensor(_ key: String, shape expected: [Int]) throws -> Tensor {
        let name = storedName(key)
        guard let entry = file.entry(name) else {
            throw RAGSegIOError(path: path, message: "missing tensor '\(name)' (\(layout.rawValue) key layout)")
        }
        guard entry.shape == expected else {
            throw RAGSegIOError(path: path, message:
                "tensor '\(name)' has shape \(entry.shape), expected \(expected)")
        }
        return try file.tensor(name)
    }

    /// Infers the encoder configuration from this file's tensor shapes (see the static form).
    public func inferImageEncoderConfig() throws -> SAM2ImageEncoderConfig {
        do {
            return try SAM2Weights.inferImageEncoderConfig(shapeOf: { shape($0) })
        } catch let error as ConfigInferenceError {
            throw RAGSegIOError(path: path, message: error.message.replacingOccurrences(of: "{layout}", with: layout.rawValue))
        }
    }

    struct ConfigInferenceError: Error { var message: String }

    /// Infers the encoder configuration from tensor shapes (looked up by official name): width and
    /// blocks per stage come from the tensors, the rest (heads, windows, global blocks — invisible in
    /// shapes) from the published size they identify. A layout matching no published size is an error.
    static func inferImageEncoderConfig(shapeOf: (String) -> [Int]?) throws -> SAM2ImageEncoderConfig {
        let patch = "image_encoder.trunk.patch_embed.proj.weight"
        guard let patchShape = shapeOf(patch), patchShape.count == 4 else {
            throw ConfigInferenceError(message: "missing or malformed tensor '\(patch)' ({layout} key layout)")
        }
        let embedDim = patchShape[0]
        var stages: [Int] = []
        var currentDim = embedDim
        var block = 0
        while let qkv = shapeOf("image_encoder.trunk.blocks.\(block).attn.qkv.weight") {
            guard qkv.count == 2, qkv[0] % 3 == 0 else {
                throw ConfigInferenceError(message: "tensor 'image_encoder.trunk.blocks.\(block).attn.qkv.weight' has shape \(qkv), expected [3*dim_out, dim_in]")
            }
            let dimOut = qkv[0] / 3
            if block == 0 || dimOut != currentDim { stages.append(0) }
            stages[stages.count - 1] += 1
            currentDim = dimOut
            block += 1
        }
        guard block > 0 else {
            throw ConfigInferenceError(message: "no Hiera blocks found (tensor 'image_encoder.trunk.blocks.0.attn.qkv.weight' missing)")
        }
        guard var config = SAM2ImageEncoderConfig.published.first(where: { $0.embedDim == embedDim && $0.stages == stages }) else {
            throw ConfigInferenceError(message:
                "Hiera layout embed_dim \(embedDim), stages \(stages) matches no published SAM 2 size (tiny, small, base_plus, large)")
        }
        if let bkg = shapeOf("image_encoder.trunk.pos_embed"), bkg.count == 4 {
            config.positionEmbeddingBackgroundSize = [bkg[2], bkg[3]]
        }
        if let neck = shapeOf("image_encoder.neck.convs.0.conv.weight"), neck.count == 4 {
            config.neckDim = neck[0]
        }
        return config
    }
}

/// Deterministic pseudo-random parameters of the right shapes, for benchmarks without a checkpoint
/// (timing does not depend on the values). Norm weights near 1, other tensors ~ U(-1, 1)/sqrt(fan_in).
public struct SAM2RandomWeights: SAM2TensorSource {
    public var seed: UInt64
    public init(seed: UInt64 = 0) { self.seed = seed }

    public func tensor(_ key: String, shape: [Int]) throws -> Tensor {
        // SplitMix64 seeded by the key, so every tensor is reproducible on its own.
        var state = seed ^ key.utf8.reduce(UInt64(1469598103934665603)) { ($0 ^ UInt64($1)) &* 1099511628211 }
        func next() -> Float {
            state &+= 0x9E3779B97F4A7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
            z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
            z ^= z >> 31
            return Float(z >> 40) / Float(1 << 24) * 2 - 1
        }
        let isNormWeight = key.contains("norm") && key.hasSuffix(".weight")
        let fanIn = shape.count > 1 ? shape.dropFirst().reduce(1, *) : 1
        let scale = key.hasSuffix(".bias") ? 0.1 : 1 / Float(fanIn).squareRoot()
        return Tensor(shape: shape) { out in
            for i in 0..<out.count { out[i] = isNormWeight ? 1 + 0.1 * next() : scale * next() }
        }
    }

    /// A [3, size, size] tensor of N(0,1)-like values (sum of uniforms), a stand-in for a normalized image.
    public func randomImage(size: Int) -> Tensor {
        var state = seed &+ 0x51_7CC1_B727_220A
        return Tensor(shape: [3, size, size]) { out in
            for i in 0..<out.count {
                var sum: Float = 0
                for _ in 0..<4 {
                    state = state &* 6364136223846793005 &+ 1442695040888963407
                    sum += Float(state >> 40) / Float(1 << 24)
                }
                out[i] = (sum - 2) * 1.732
            }
        }
    }
}

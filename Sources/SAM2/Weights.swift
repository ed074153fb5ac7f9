// A SAM 2 checkpoint (safetensors, or the official PyTorch `.pt`), in either published key layout (see
// HuggingFaceKeys.swift): opened
// once, read through `scope` by official names, and the model's configuration inferred from its shapes.
// Every loading problem is a RAGSegIOError naming the file and the tensor.
import Foundation
import RAGSegIO
import TensorCore

public enum SAM2KeyLayout: String, Sendable {
    case official
    case huggingFace = "hugging-face"
}

public struct SAM2Weights: TensorSource, Sendable {
    public let file: any TensorFile
    public let layout: SAM2KeyLayout
    public var path: String { file.path }

    /// Opens a safetensors file or PyTorch checkpoint (`{"model": state_dict}` as published) and detects its
    /// key layout from a key every SAM 2 file has (the patch embedding), or, for a file holding only the memory
    /// path, its temporal encoding.
    public init(path: String) throws {
        guard FileManager.default.fileExists(atPath: path) else {
            throw RAGSegIOError(path: path, message: "SAM 2 weights file does not exist")
        }
        file = try TensorFiles.open(path)
        if file.contains("image_encoder.trunk.patch_embed.proj.weight") || file.contains("maskmem_tpos_enc") {
            layout = .official
        } else if file.contains("vision_encoder.backbone.patch_embed.projection.weight")
            || file.contains("memory_temporal_positional_encoding")
        {
            layout = .huggingFace
        } else {
            throw RAGSegIOError(
                path: path,
                message:
                    """
                    not a SAM 2 checkpoint: found neither 'image_encoder.trunk.patch_embed.proj.weight' (official \
                    layout) nor 'vision_encoder.backbone.patch_embed.projection.weight' (Hugging Face layout)
                    """
            )
        }
    }

    /// The whole model's parameters by official name.
    public var scope: WeightScope { WeightScope(self) }

    /// Where this file stores the tensor whose official name is `key` (a row of a stacked tensor in some cases).
    func stored(_ key: String) -> (name: String, row: Int?) {
        guard layout == .huggingFace else { return (key, nil) }
        var (name, row) = Self.huggingFaceName(key)
        // Hugging Face ties the prompt encoder's Fourier matrix to a top-level copy; a file may keep either.
        let tiedCopy = "shared_image_embedding.positional_embedding"
        if name == "prompt_encoder.shared_embedding.positional_embedding", !file.contains(name), file.contains(tiedCopy)
        {
            name = tiedCopy
        }
        return (name, row)
    }

    /// The key under which this file stores the tensor whose official name is `key`.
    public func storedName(_ key: String) -> String { stored(key).name }

    public func contains(_ key: String) -> Bool { shape(key) != nil }

    /// Shape of a tensor by official name, nil when absent.
    public func shape(_ key: String) -> [Int]? {
        let (name, row) = stored(key)
        guard let shape = file.entry(name)?.shape else { return nil }
        return row == nil ? shape : [1] + shape.dropFirst()
    }

    /// Loads a tensor by official name; a missing tensor or another shape is an error naming it.
    public func tensor(_ key: String, shape expected: [Int]) throws -> Tensor {
        let (name, row) = stored(key)
        let shown = name == key ? "'\(key)'" : "'\(name)' (official '\(key)')"
        guard let entry = file.entry(name) else {
            throw RAGSegIOError(
                path: path,
                message: "missing tensor \(shown) (\(layout.rawValue) key layout, expected shape \(expected))")
        }
        if let row {  // one row of a stacked [rows, ...] tensor
            guard entry.shape.count == expected.count, entry.shape.count >= 1, row < entry.shape[0],
                Array(entry.shape.dropFirst()) == Array(expected.dropFirst()), expected.first == 1
            else {
                throw RAGSegIOError(
                    path: path,
                    message: "tensor \(shown) has shape \(entry.shape), expected row \(row) of shape \(expected)")
            }
            return sliced(try file.tensor(name), axis: 0, range: row..<(row + 1))
        }
        guard entry.shape == expected else {
            throw RAGSegIOError(path: path, message: "tensor \(shown) has shape \(entry.shape), expected \(expected)")
        }
        return try file.tensor(name)
    }

    // MARK: Configuration

    /// The whole model's configuration: the image encoder from the `<weights>.json` sidecar when there is one
    /// (`SAM2ModelDescription`), else from the shapes (published sizes only); the memory path's widths and
    /// versions from the shapes, which a sidecar may restate but not contradict. `imageSize` overrides the input
    /// size (1024 for every release).
    public func inferConfig(imageSize: Int? = nil) throws -> SAM2Config {
        var (config, stated) = try SAM2ModelDescription.describe(path: path, weights: self)
        if let imageSize { config.imageSize = imageSize }
        let tpos = try shapeOrMissing("maskmem_tpos_enc")
        let pointer = try shapeOrMissing("no_obj_ptr")
        guard tpos.count == 4, pointer.count == 2 else {
            throw RAGSegIOError(
                path: path, message: "unexpected shapes maskmem_tpos_enc \(tpos), no_obj_ptr \(pointer)")
        }
        config.hiddenDim = pointer[1]
        config.memoryDim = tpos[3]
        config.memorySlots = tpos[0]
        config.pointerTemporalEncoding = contains("obj_ptr_tpos_proj.weight")
        config.noObjectSpatialEmbedding = contains("no_obj_embed_spatial")
        if let stated { try SAM2ModelDescription.checkStatedMemoryPath(stated, of: config, path: path) }
        return config
    }

    func shapeOrMissing(_ key: String) throws -> [Int] {
        guard let shape = shape(key) else {
            throw RAGSegIOError(
                path: path, message: "missing tensor '\(storedName(key))' (\(layout.rawValue) key layout)")
        }
        return shape
    }

    /// Infers the image encoder's configuration from this file's tensor shapes (see the static form).
    public func inferImageEncoderConfig() throws -> SAM2Config {
        do {
            return try SAM2Weights.inferImageEncoderConfig(shapeOf: { shape($0) })
        } catch let error as ConfigInferenceError {
            throw RAGSegIOError(
                path: path, message: error.message.replacingOccurrences(of: "{layout}", with: layout.rawValue))
        }
    }

    struct ConfigInferenceError: Error { var message: String }

    /// Infers the image encoder's configuration from tensor shapes (looked up by official name): width and
    /// blocks per stage come from the tensors, the rest (heads, windows, global blocks — invisible in
    /// shapes) from the published size they identify. A layout matching no published size is an error.
    static func inferImageEncoderConfig(shapeOf: (String) -> [Int]?) throws -> SAM2Config {
        let patch = "image_encoder.trunk.patch_embed.proj.weight"
        guard let patchShape = shapeOf(patch) else {
            throw ConfigInferenceError(message: "missing tensor '\(patch)' ({layout} key layout)")
        }
        guard patchShape.count == 4 else {
            throw ConfigInferenceError(
                message:
                    "tensor '\(patch)' has shape \(patchShape), expected [embed_dim, 3, 7, 7] ({layout} key layout)")
        }
        let embedDim = patchShape[0]
        var stages: [Int] = []
        var currentDim = embedDim
        var block = 0
        while let qkv = shapeOf("image_encoder.trunk.blocks.\(block).attn.qkv.weight") {
            guard qkv.count == 2, qkv[0] % 3 == 0 else {
                throw ConfigInferenceError(
                    message:
                        """
                        tensor 'image_encoder.trunk.blocks.\(block).attn.qkv.weight' has shape \(qkv), expected \
                        [3*dim_out, dim_in]
                        """
                )
            }
            let dimOut = qkv[0] / 3
            if block == 0 || dimOut != currentDim { stages.append(0) }
            stages[stages.count - 1] += 1
            currentDim = dimOut
            block += 1
        }
        guard block > 0 else {
            throw ConfigInferenceError(
                message: "no Hiera blocks found (tensor 'image_encoder.trunk.blocks.0.attn.qkv.weight' missing)")
        }
        guard var config = SAM2Config.published.first(where: { $0.embedDim == embedDim && $0.stages == stages }) else {
            throw ConfigInferenceError(
                message:
                    """
                    Hiera layout embed_dim \(embedDim), stages \(stages) matches no published SAM 2 size (tiny, small, \
                    base_plus, large)
                    """
            )
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

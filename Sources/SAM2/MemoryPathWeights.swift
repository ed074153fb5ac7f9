// Weights and hyper-parameters of everything in SAM 2 after the image encoder: memory encoder, memory
// attention, prompt encoder, mask decoder, object-pointer heads (sam2.md §5-§10, keys §13.1).
// Kept apart from the image encoder's loader so the two halves can be built and tested independently.
import RAGSegIO
import TensorCore

/// Hyper-parameters of the memory path. Every published SAM 2 / 2.1 size shares them
/// (hidden 256, memory 64, 7 memory slots, 1024 input); the tests use a shrunken model of the same structure.
public struct SAM2MemoryConfig: Sendable, Equatable {
    /// Width of the image features, the memory-attention tokens and the decoder (d_model).
    public var hiddenDim: Int
    /// Channels of a stored memory (memory-encoder output); a pointer becomes hiddenDim / memoryDim tokens.
    public var memoryDim: Int
    /// Square model input size; the memory-attention grid is imageSize / 16.
    public var imageSize: Int
    /// Temporal memory slots (`num_maskmem`); conditioning frames use the last row of `maskmem_tpos_enc`.
    public var memorySlots: Int
    /// `max_obj_ptrs_in_encoder`: caps the pointer-distance normalisation (M = min(frames, 16)).
    public var maxObjectPointers: Int
    /// SAM 2.1 projects a temporal sine PE onto every pointer token; SAM 2.0 uses zeros.
    public var pointerTemporalEncoding: Bool
    /// SAM 2.1 adds `no_obj_embed_spatial` to the memory of an empty frame; SAM 2.0 has no such embedding.
    public var noObjectSpatialEmbedding: Bool

    public init(hiddenDim: Int = 256, memoryDim: Int = 64, imageSize: Int = 1024, memorySlots: Int = 7,
                maxObjectPointers: Int = 16, pointerTemporalEncoding: Bool = true, noObjectSpatialEmbedding: Bool = true) {
        self.hiddenDim = hiddenDim
        self.memoryDim = memoryDim
        self.imageSize = imageSize
        self.memorySlots = memorySlots
        self.maxObjectPointers = maxObjectPointers
        self.pointerTemporalEncoding = pointerTemporalEncoding
        self.noObjectSpatialEmbedding = noObjectSpatialEmbedding
    }

    /// SAM 2.1, any size.
    public static let sam2_1 = SAM2MemoryConfig()
    /// SAM 2.0, any size: no pointer temporal PE, no occlusion embedding.
    public static let sam2 = SAM2MemoryConfig(pointerTemporalEncoding: false, noObjectSpatialEmbedding: false)

    /// Side of the top-level feature map (backbone stride 16).
    public var featureSize: Int { imageSize / 16 }
    /// Side of the decoder's low-resolution masks (4x the feature map).
    public var lowResolutionSize: Int { featureSize * 4 }
    /// Tokens per pointer.
    public var tokensPerPointer: Int { hiddenDim / memoryDim }
}

/// Error in a memory-path checkpoint: names the file and the tensor.
public struct SAM2MemoryWeightsError: Error, CustomStringConvertible, Sendable {
    public let path: String
    public let message: String
    public var description: String { "\(path): \(message)" }
}

/// Reads memory-path tensors from a safetensors file in either key layout: the official `sam2` state
/// dict (sam2.md §13.1, converted unchanged) or Hugging Face `Sam2VideoModel` (§13.2). Modules ask for
/// official names; HF names are derived from them.
public struct SAM2MemoryWeights: Sendable {
    public enum Layout: String, Sendable { case official, huggingFace }

    public let file: SafeTensors
    public let layout: Layout
    public var path: String { file.path }

    public init(path: String) throws {
        file = try SafeTensors(path: path)
        if file.contains("maskmem_tpos_enc") {
            layout = .official
        } else if file.contains("memory_temporal_positional_encoding") {
            layout = .huggingFace
        } else {
            throw SAM2MemoryWeightsError(path: path, message:
                "not a SAM 2 checkpoint with a memory path: neither 'maskmem_tpos_enc' (official) nor 'memory_temporal_positional_encoding' (Hugging Face) is present")
        }
    }

    /// Where an official tensor lives in the Hugging Face layout: a name, and a row when HF stacks
    /// several official tensors into one (the four point embeddings).
    public static func huggingFaceName(_ key: String) -> (name: String, row: Int?) {
        let exact = [
            "maskmem_tpos_enc": "memory_temporal_positional_encoding", "no_obj_ptr": "no_object_pointer",
            "no_obj_embed_spatial": "occlusion_spatial_embedding_parameter", "no_mem_embed": "no_memory_embedding",
            "no_mem_pos_enc": "no_memory_positional_encoding",
            "sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix": "prompt_encoder.shared_embedding.positional_embedding",
        ]
        if let name = exact[key] { return (name, nil) }
        var parts = key.split(separator: ".").map(String.init)
        if parts.count == 4, parts[0] == "sam_prompt_encoder", parts[1] == "point_embeddings", let row = Int(parts[2]) {
            return ("prompt_encoder.point_embed.weight", row)
        }
        // Positional renames that depend on the parent module.
        for i in parts.indices.dropLast() {
            let parent = i > 0 ? parts[i - 1] : ""
            let grand = i > 1 ? parts[i - 2] : ""
            // 3-layer MLP heads: layers.{0,1,2} -> proj_in, layers.0, proj_out.
            let threeLayer = ["obj_ptr_proj", "iou_prediction_head", "pred_obj_score_head"].contains(parent)
                || grand == "output_hypernetworks_mlps"
            if parts[i] == "layers", threeLayer, let n = Int(parts[i + 1]) {
                let name = ["proj_in", "layers.0", "proj_out"][n]
                parts.replaceSubrange(i...(i + 1), with: [name])
                break
            }
            if parts[i] == "layers", parent == "mlp", let n = Int(parts[i + 1]) {  // two-way transformer MLP
                parts.replaceSubrange(i...(i + 1), with: [["proj_in", "proj_out"][n]])
                break
            }
            if parts[i] == "encoder", parent == "mask_downsampler", let n = Int(parts[i + 1]) {
                parts.replaceSubrange(i...(i + 1), with: n == 12 ? ["final_conv"] : ["layers", "\(n / 3)", n % 3 == 0 ? "conv" : "layer_norm"])
                break
            }
            if parts[i] == "mask_downscaling", let n = Int(parts[i + 1]) {
                let names = [0: "conv1", 1: "layer_norm1", 3: "conv2", 4: "layer_norm2", 6: "conv3"]
                parts.replaceSubrange(i...(i + 1), with: ["mask_embed", names[n] ?? "\(n)"])
                break
            }
            if parts[i] == "output_upscaling", let n = Int(parts[i + 1]) {
                let names = [0: "upscale_conv1", 1: "upscale_layer_norm", 3: "upscale_conv2"]
                parts.replaceSubrange(i...(i + 1), with: [names[n] ?? "\(n)"])
                break
            }
        }
        let renames = [
            "obj_ptr_tpos_proj": "temporal_positional_encoding_projection_layer", "obj_ptr_proj": "object_pointer_proj",
            "sam_prompt_encoder": "prompt_encoder", "sam_mask_decoder": "mask_decoder", "out_proj": "o_proj",
            "pix_feat_proj": "feature_projection", "fuser": "memory_fuser", "dwconv": "depthwise_conv",
            "pwconv1": "pointwise_conv1", "pwconv2": "pointwise_conv2", "gamma": "scale",
            "norm_final_attn": "layer_norm_final_attn", "norm": "layer_norm", "norm1": "layer_norm1",
            "norm2": "layer_norm2", "norm3": "layer_norm3", "norm4": "layer_norm4",
        ]
        parts = parts.map { renames[$0] ?? $0 }
        if parts.count >= 2, parts[0] == "memory_encoder", parts[1] == "o_proj" { parts[1] = "projection" }
        return (parts.joined(separator: "."), nil)
    }

    func stored(_ name: String) -> (name: String, row: Int?) {
        layout == .official ? (name, nil) : Self.huggingFaceName(name)
    }

    public func contains(_ name: String) -> Bool { file.contains(stored(name).name) }

    /// The tensor with official name `name`, checked against the expected shape.
    public func tensor(_ name: String, shape: [Int]) throws -> Tensor {
        var (storedName, row) = stored(name)
        // HF ties the prompt encoder's Fourier matrix to a top-level copy; a file may keep either.
        let tiedCopy = "shared_image_embedding.positional_embedding"
        if storedName == "prompt_encoder.shared_embedding.positional_embedding", !file.contains(storedName), file.contains(tiedCopy) {
            storedName = tiedCopy
        }
        let shown = storedName == name ? "'\(name)'" : "'\(storedName)' (official '\(name)')"
        guard let entry = file.entry(storedName) else {
            throw SAM2MemoryWeightsError(path: path, message: "missing tensor \(shown) (expected shape \(shape))")
        }
        if let row {  // one row of a stacked [rows, ...] tensor
            guard entry.shape.count == shape.count, entry.shape.count >= 1, row < entry.shape[0],
                  Array(entry.shape.dropFirst()) == Array(shape.dropFirst()), shape.first == 1 else {
                throw SAM2MemoryWeightsError(path: path, message: "tensor \(shown) has shape \(entry.shape), expected row \(row) of shape \(shape)")
            }
            return sliced(try file.tensor(storedName), axis: 0, range: row..<(row + 1))
        }
        guard entry.shape == shape else {
            throw SAM2MemoryWeightsError(path: path, message: "tensor \(shown) has shape \(entry.shape), expected \(shape)")
        }
        return try file.tensor(storedName)
    }

    /// Shape of the tensor with official name `name`, or an error naming it.
    public func shape(_ name: String) throws -> [Int] {
        let (storedName, row) = stored(name)
        guard let entry = file.entry(storedName) else {
            throw SAM2MemoryWeightsError(path: path, message: "missing tensor '\(storedName)'")
        }
        return row == nil ? entry.shape : [1] + entry.shape.dropFirst()
    }

    /// Reads the dimensions from the tensors; `imageSize` cannot be inferred from weights (1024 for every release).
    public func inferConfig(imageSize: Int = 1024) throws -> SAM2MemoryConfig {
        let tpos = try shape("maskmem_tpos_enc")
        let pointer = try shape("no_obj_ptr")
        guard tpos.count == 4, pointer.count == 2 else {
            throw SAM2MemoryWeightsError(path: path, message: "unexpected shapes maskmem_tpos_enc \(tpos), no_obj_ptr \(pointer)")
        }
        let config = SAM2MemoryConfig(hiddenDim: pointer[1], memoryDim: tpos[3], imageSize: imageSize, memorySlots: tpos[0],
                                      pointerTemporalEncoding: contains("obj_ptr_tpos_proj.weight"),
                                      noObjectSpatialEmbedding: contains("no_obj_embed_spatial"))
        guard config.hiddenDim % config.memoryDim == 0, imageSize % 16 == 0 else {
            throw SAM2MemoryWeightsError(path: path, message: "unsupported dimensions hidden \(config.hiddenDim), memory \(config.memoryDim), image \(imageSize)")
        }
        return config
    }
}

// MARK: - Small layers shared by the memory-path modules

/// `nn.Linear` (weight [out, in], PyTorch layout) applied over the last axis.
struct Linear: Sendable {
    let weight: Tensor
    let bias: Tensor?

    init(_ w: SAM2MemoryWeights, _ prefix: String, input: Int, output: Int, bias hasBias: Bool = true) throws {
        weight = try w.tensor(prefix + ".weight", shape: [output, input])
        bias = hasBias ? try w.tensor(prefix + ".bias", shape: [output]) : nil
    }

    var inputDim: Int { weight.dim(1) }
    var outputDim: Int { weight.dim(0) }

    func callAsFunction(_ x: Tensor) -> Tensor { linear(x, weight: weight, bias: bias) }

    /// residual += self(x), with no temporary output.
    func add(_ x: Tensor, into residual: inout Tensor) { addLinear(into: &residual, x, weight: weight, bias: bias) }
}

/// `nn.LayerNorm` / `LayerNorm2d` parameters.
struct Norm: Sendable {
    let weight: Tensor
    let bias: Tensor
    let eps: Float

    init(_ w: SAM2MemoryWeights, _ prefix: String, dim: Int, eps: Float) throws {
        weight = try w.tensor(prefix + ".weight", shape: [dim])
        bias = try w.tensor(prefix + ".bias", shape: [dim])
        self.eps = eps
    }

    /// Over the last axis of tokens [..., C].
    func callAsFunction(_ x: Tensor) -> Tensor { layerNorm(x, weight: weight, bias: bias, eps: eps) }
    /// Over C of a [C, H, W] map.
    func channels(_ x: Tensor) -> Tensor { layerNorm2d(x, weight: weight, bias: bias, eps: eps) }
}

/// A 2-D convolution's parameters (weight [O, C/groups, kh, kw]).
struct Conv: Sendable {
    let weight: Tensor
    let bias: Tensor
    let stride: Int
    let padding: Int
    let groups: Int

    init(_ w: SAM2MemoryWeights, _ prefix: String, input: Int, output: Int, kernel: Int,
         stride: Int = 1, padding: Int = 0, groups: Int = 1) throws {
        weight = try w.tensor(prefix + ".weight", shape: [output, input / groups, kernel, kernel])
        bias = try w.tensor(prefix + ".bias", shape: [output])
        self.stride = stride
        self.padding = padding
        self.groups = groups
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        conv2d(x, weight: weight, bias: bias, stride: stride, padding: padding, groups: groups)
    }
}

/// SAM's `MLP`: linear layers with ReLU between them (none after the last), optional sigmoid output.
struct MLP: Sendable {
    let layers: [Linear]
    let sigmoidOutput: Bool

    /// Reads `prefix.layers.{0..}`; dims = [in, hidden..., out].
    init(_ w: SAM2MemoryWeights, _ prefix: String, dims: [Int], sigmoidOutput: Bool = false) throws {
        layers = try (0..<(dims.count - 1)).map { i in
            try Linear(w, "\(prefix).layers.\(i)", input: dims[i], output: dims[i + 1])
        }
        self.sigmoidOutput = sigmoidOutput
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        var y = x
        for (i, layer) in layers.enumerated() {
            y = layer(y)
            if i < layers.count - 1 { reluInPlace(&y) }
        }
        if sigmoidOutput { sigmoidInPlace(&y) }
        return y
    }
}

/// [C, H, W] -> tokens [H·W, C] (row-major token order, n = y·W + x).
func tokenRows(_ map: Tensor) -> Tensor {
    let c = map.dim(0), hw = map.dim(1) * map.dim(2)
    return permuted(map.reshaped([c, hw]), [1, 0])
}

/// Tokens [H·W, C] -> [C, H, W].
func featureMap(_ tokens: Tensor, height: Int, width: Int) -> Tensor {
    permuted(tokens, [1, 0]).reshaped([tokens.dim(1), height, width])
}

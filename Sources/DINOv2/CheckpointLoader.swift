import Foundation
import RAGSegIO
import TensorCore

/// The two key layouts DINOv2 weights come in (docs/dinov2.md#checkpoint-key-layouts).
public enum DINOv2KeyLayout: Sendable, Equatable {
    /// Hugging Face hub files (`facebook/dinov2-*`): `embeddings.*`, `encoder.layer.i.*`, `layernorm.*`;
    /// q/k/v stored separately. `prefix` is "dinov2." etc. for classification checkpoints, else "".
    case huggingFace(prefix: String)
    /// torch.hub / facebookresearch/dinov2 state dicts (block_chunks = 0): `blocks.i.*`, fused `attn.qkv`.
    case torchHub
}

/// Reads a DINOv2 checkpoint (safetensors in either key layout, or torch hub's `.pth` state dict) into model
/// weights, checking every shape.
struct CheckpointLoader {
    let file: any TensorFile
    let layout: DINOv2KeyLayout

    init(file: any TensorFile) throws {
        self.file = file
        if let prefix = ["", "dinov2.", "dinov2_with_registers."].first(where: {
            file.contains($0 + "embeddings.cls_token")
        }) {
            layout = .huggingFace(prefix: prefix)
        } else if file.contains("cls_token") && file.contains("blocks.0.norm1.weight") {
            layout = .torchHub
        } else if file.contains("cls_token") && file.contains("blocks.0.0.norm1.weight") {
            throw RAGSegIOError(
                path: file.path,
                message: "torch-hub checkpoint saved with block_chunks > 0 "
                    + "('blocks.0.0.*'); re-save it with block_chunks = 0")
        } else {
            throw RAGSegIOError(
                path: file.path,
                message: "unknown DINOv2 key layout: expected 'embeddings.cls_token' "
                    + "(Hugging Face) or 'cls_token' + 'blocks.0.*' (torch hub)")
        }
    }

    // MARK: names

    private var hfPrefix: String { if case .huggingFace(let p) = layout { p } else { "" } }

    var clsTokenName: String { layout == .torchHub ? "cls_token" : hfPrefix + "embeddings.cls_token" }
    var registerTokensName: String { layout == .torchHub ? "register_tokens" : hfPrefix + "embeddings.register_tokens" }
    var positionName: String { layout == .torchHub ? "pos_embed" : hfPrefix + "embeddings.position_embeddings" }
    var patchName: String {
        layout == .torchHub ? "patch_embed.proj" : hfPrefix + "embeddings.patch_embeddings.projection"
    }
    var finalNormName: String { layout == .torchHub ? "norm" : hfPrefix + "layernorm" }

    func blockName(_ i: Int) -> String { layout == .torchHub ? "blocks.\(i)." : hfPrefix + "encoder.layer.\(i)." }

    /// Block-relative names: (torch hub, Hugging Face).
    private func name(_ i: Int, _ hub: String, _ hf: String) -> String {
        blockName(i) + (layout == .torchHub ? hub : hf)
    }

    // MARK: shape inference

    private func shape(_ name: String) throws -> [Int] {
        guard let e = file.entry(name) else { throw missing(name) }
        return e.shape
    }

    private func missing(_ name: String) -> RAGSegIOError {
        RAGSegIOError(path: file.path, message: "missing tensor '\(name)'")
    }

    /// The architecture implied by the tensors (used when no config.json sits beside the file).
    /// Head dim is 64 in every released DINOv2, which is the one thing shapes cannot tell.
    func inferConfig() throws -> DINOv2Config {
        let cls = try shape(clsTokenName)
        guard let hidden = cls.last, hidden > 0, cls.count >= 1 else {
            throw RAGSegIOError(
                path: file.path, message: "tensor '\(clsTokenName)' has shape \(cls), expected [1, 1, D]")
        }
        guard hidden % 64 == 0 else {
            throw RAGSegIOError(
                path: file.path,
                message: "hidden size \(hidden) is not a multiple of the head dim 64; "
                    + "put a config.json with num_attention_heads beside the weights")
        }
        let depth = blockCount()
        guard depth > 0 else { throw missing(name(0, "norm1.weight", "norm1.weight")) }
        let feedForward: DINOv2Config.FeedForward
        let fc1 = name(0, "mlp.fc1.weight", "mlp.fc1.weight")
        let w12 = name(0, "mlp.w12.weight", "mlp.weights_in.weight")
        if file.contains(fc1) {
            feedForward = .mlp(hidden: try shape(fc1)[0])
        } else if file.contains(w12) {
            feedForward = .swiGLU(hidden: try shape(w12)[0] / 2)
        } else {
            throw RAGSegIOError(path: file.path, message: "missing tensor '\(fc1)' (or SwiGLU '\(w12)')")
        }
        let registers = file.contains(registerTokensName) ? try shape(registerTokensName).dropLast().last ?? 0 : 0
        let patchWeight = try shape(patchName + ".weight")
        guard patchWeight.count == 4, patchWeight[2] == patchWeight[3] else {
            throw RAGSegIOError(
                path: file.path, message: "tensor '\(patchName).weight' has shape \(patchWeight), expected [D, 3, p, p]"
            )
        }
        let positions = (try shape(positionName)).dropLast().last ?? 0
        let grid = Int(Double(max(positions - 1, 0)).squareRoot().rounded())
        guard grid * grid + 1 == positions else {
            throw RAGSegIOError(
                path: file.path,
                message: "tensor '\(positionName)' holds \(positions) positions, expected 1 + a square grid")
        }
        return DINOv2Config(
            hiddenSize: hidden, depth: depth, heads: hidden / 64, feedForward: feedForward,
            registers: registers, patchSize: patchWeight[2], positionGrid: grid)
    }

    /// Blocks stored in the file (consecutive from block 0).
    func blockCount() -> Int {
        var depth = 0
        while file.contains(name(depth, "norm1.weight", "norm1.weight")) { depth += 1 }
        return depth
    }

    // MARK: loading

    /// Reads `name` and checks its shape; leading 1-sized axes are accepted (e.g. cls token [1, 1, D] for [D]).
    func tensor(_ name: String, _ expected: [Int]) throws -> Tensor {
        guard let e = file.entry(name) else { throw missing(name) }
        var got = e.shape
        while got.count > expected.count, got.first == 1 { got.removeFirst() }
        guard got == expected else {
            throw RAGSegIOError(path: file.path, message: "tensor '\(name)' has shape \(e.shape), expected \(expected)")
        }
        return try file.tensor(name).reshaped(expected)
    }

    /// The file's tensors by stored name, for the shared layers (which check every shape exactly).
    var root: WeightScope { WeightScope(file) }

    func linear(_ name: String, out: Int, in inFeatures: Int) throws -> Linear {
        try Linear(root[name], input: inFeatures, output: out)
    }

    func layerNorm(_ name: String, _ c: DINOv2Config) throws -> LayerNorm {
        try LayerNorm(root[name], dim: c.hiddenSize, eps: c.layerNormEps)
    }

    func block(_ i: Int, _ c: DINOv2Config) throws -> Block {
        let d = c.hiddenSize
        let qkv: Linear
        if layout == .torchHub {
            qkv = try linear(name(i, "attn.qkv", ""), out: 3 * d, in: d)
        } else {
            // Hub files keep q, k, v apart; fuse them into the torch-hub [3D, D] order so one GEMM does all three.
            let parts = try ["query", "key", "value"].map {
                try linear(name(i, "", "attention.attention.\($0)"), out: d, in: d)
            }
            qkv = Linear(
                weight: concatenated(parts.map(\.weight), axis: 0), bias: concatenated(parts.map { $0.bias! }, axis: 0))
        }
        let attention = Attention(
            qkv: qkv, projection: try linear(name(i, "attn.proj", "attention.output.dense"), out: d, in: d),
            heads: c.heads)
        let feedForward: FeedForward
        switch c.feedForward {
        case .mlp(let h):
            feedForward = .mlp(
                Mlp(
                    fc1: try linear(name(i, "mlp.fc1", "mlp.fc1"), out: h, in: d),
                    fc2: try linear(name(i, "mlp.fc2", "mlp.fc2"), out: d, in: h)))
        case .swiGLU(let h):
            feedForward = .swiGLU(
                SwiGLUFFN(
                    w12: try linear(name(i, "mlp.w12", "mlp.weights_in"), out: 2 * h, in: d),
                    w3: try linear(name(i, "mlp.w3", "mlp.weights_out"), out: d, in: h)))
        }
        return Block(
            norm1: try layerNorm(name(i, "norm1", "norm1"), c),
            attention: attention,
            layerScale1: LayerScale(gamma: try tensor(name(i, "ls1.gamma", "layer_scale1.lambda1"), [d])),
            norm2: try layerNorm(name(i, "norm2", "norm2"), c),
            feedForward: feedForward,
            layerScale2: LayerScale(gamma: try tensor(name(i, "ls2.gamma", "layer_scale2.lambda1"), [d])))
    }
}

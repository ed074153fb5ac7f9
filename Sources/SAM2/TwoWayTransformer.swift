// SAM's two-way transformer (sam2.md §9.2): prompt/output tokens and image tokens attend to each other.
// Per layer: token self-attention, tokens->image cross-attention, token MLP, image->tokens cross-attention;
// then a final tokens->image attention. Post-norm (LayerNorm eps 1e-5 after every residual).
import TensorCore

/// SAM's multi-head `Attention` with an internal width (embedding / downsample rate).
struct DecoderAttention: Sendable {
    let query: Linear, key: Linear, value: Linear, output: Linear
    let heads: Int

    init(_ w: SAM2MemoryWeights, _ prefix: String, dim: Int, heads: Int) throws {
        let internalDim = try w.shape(prefix + ".q_proj.weight").first ?? dim
        query = try Linear(w, prefix + ".q_proj", input: dim, output: internalDim)
        key = try Linear(w, prefix + ".k_proj", input: dim, output: internalDim)
        value = try Linear(w, prefix + ".v_proj", input: dim, output: internalDim)
        output = try Linear(w, prefix + ".out_proj", input: internalDim, output: dim)
        self.heads = heads
    }

    func callAsFunction(q: Tensor, k: Tensor, v: Tensor) -> Tensor {
        output(attention(query: query(q), key: key(k), value: value(v), heads: heads))
    }
}

struct TwoWayAttentionBlock: Sendable {
    let selfAttention: DecoderAttention
    let tokenToImage: DecoderAttention
    let imageToToken: DecoderAttention
    let mlp: MLP
    let norm1: Norm, norm2: Norm, norm3: Norm, norm4: Norm
    /// The first layer replaces the tokens by their self-attention (no residual, no PE).
    let skipFirstLayerPE: Bool

    init(_ w: SAM2MemoryWeights, _ prefix: String, dim: Int, heads: Int, skipFirstLayerPE: Bool) throws {
        selfAttention = try DecoderAttention(w, prefix + ".self_attn", dim: dim, heads: heads)
        tokenToImage = try DecoderAttention(w, prefix + ".cross_attn_token_to_image", dim: dim, heads: heads)
        imageToToken = try DecoderAttention(w, prefix + ".cross_attn_image_to_token", dim: dim, heads: heads)
        let hidden = try w.shape(prefix + ".mlp.layers.0.weight").first ?? 2048
        mlp = try MLP(w, prefix + ".mlp", dims: [dim, hidden, dim])
        norm1 = try Norm(w, prefix + ".norm1", dim: dim, eps: 1e-5)
        norm2 = try Norm(w, prefix + ".norm2", dim: dim, eps: 1e-5)
        norm3 = try Norm(w, prefix + ".norm3", dim: dim, eps: 1e-5)
        norm4 = try Norm(w, prefix + ".norm4", dim: dim, eps: 1e-5)
        self.skipFirstLayerPE = skipFirstLayerPE
    }

    func callAsFunction(queries: Tensor, keys: Tensor, queryPE: Tensor, keyPE: Tensor) -> (Tensor, Tensor) {
        var q: Tensor
        if skipFirstLayerPE {
            q = selfAttention(q: queries, k: queries, v: queries)
        } else {
            let qp = add(queries, queryPE)
            q = add(queries, selfAttention(q: qp, k: qp, v: queries))
        }
        q = norm1(q)
        let keysWithPE = add(keys, keyPE)
        q = norm2(add(q, tokenToImage(q: add(q, queryPE), k: keysWithPE, v: keys)))
        q = norm3(add(q, mlp(q)))
        let k = norm4(add(keys, imageToToken(q: keysWithPE, k: add(q, queryPE), v: q)))
        return (q, k)
    }
}

public struct TwoWayTransformer: Sendable {
    let layers: [TwoWayAttentionBlock]
    let finalAttention: DecoderAttention
    let finalNorm: Norm

    init(_ w: SAM2MemoryWeights, _ prefix: String, dim: Int, heads: Int = 8) throws {
        var layers: [TwoWayAttentionBlock] = []
        while w.contains("\(prefix).layers.\(layers.count).norm1.weight") {
            layers.append(try TwoWayAttentionBlock(w, "\(prefix).layers.\(layers.count)", dim: dim, heads: heads,
                                                   skipFirstLayerPE: layers.isEmpty))
        }
        guard !layers.isEmpty else {
            throw SAM2MemoryWeightsError(path: w.path, message: "missing tensor '\(prefix).layers.0.norm1.weight'")
        }
        self.layers = layers
        finalAttention = try DecoderAttention(w, prefix + ".final_attn_token_to_image", dim: dim, heads: heads)
        finalNorm = try Norm(w, prefix + ".norm_final_attn", dim: dim, eps: 1e-5)
    }

    /// tokens [T, d] (also their PE); image [N, d] with PE [N, d]. Returns (tokens, image) after the transformer.
    func callAsFunction(tokens: Tensor, image: Tensor, imagePE: Tensor) -> (tokens: Tensor, image: Tensor) {
        var q = tokens, k = image
        for layer in layers { (q, k) = layer(queries: q, keys: k, queryPE: tokens, keyPE: imagePE) }
        q = finalNorm(add(q, finalAttention(q: add(q, tokens), k: add(k, imagePE), v: k)))
        return (q, k)
    }
}

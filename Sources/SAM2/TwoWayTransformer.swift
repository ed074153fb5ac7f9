// SAM's two-way transformer (`transformer.py TwoWayTransformer`): prompt/output tokens and image tokens attend to each
// other.
// Per layer: token self-attention, tokens->image cross-attention, token MLP, image->tokens cross-attention;
// then a final tokens->image attention. Post-norm (LayerNorm eps 1e-5 after every residual).
import TensorCore

/// SAM's multi-head `Attention` with an internal width (embedding / downsample rate).
struct DecoderAttention: Sendable {
    let query: Linear, key: Linear, value: Linear, output: Linear
    let heads: Int

    init(_ scope: WeightScope, dim: Int, heads: Int) throws {
        let internalDim = scope.shape("q_proj.weight")?.first ?? dim
        query = try Linear(scope["q_proj"], input: dim, output: internalDim)
        key = try Linear(scope["k_proj"], input: dim, output: internalDim)
        value = try Linear(scope["v_proj"], input: dim, output: internalDim)
        output = try Linear(scope["out_proj"], input: internalDim, output: dim)
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
    let norm1: LayerNorm, norm2: LayerNorm, norm3: LayerNorm, norm4: LayerNorm
    /// The first layer replaces the tokens by their self-attention (no residual, no PE).
    let skipFirstLayerPE: Bool

    init(_ scope: WeightScope, dim: Int, heads: Int, skipFirstLayerPE: Bool) throws {
        selfAttention = try DecoderAttention(scope["self_attn"], dim: dim, heads: heads)
        tokenToImage = try DecoderAttention(scope["cross_attn_token_to_image"], dim: dim, heads: heads)
        imageToToken = try DecoderAttention(scope["cross_attn_image_to_token"], dim: dim, heads: heads)
        let hidden = scope.shape("mlp.layers.0.weight")?.first ?? 2048
        mlp = try MLP(scope["mlp"], dims: [dim, hidden, dim])
        norm1 = try LayerNorm(scope["norm1"], dim: dim, eps: 1e-5)
        norm2 = try LayerNorm(scope["norm2"], dim: dim, eps: 1e-5)
        norm3 = try LayerNorm(scope["norm3"], dim: dim, eps: 1e-5)
        norm4 = try LayerNorm(scope["norm4"], dim: dim, eps: 1e-5)
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
    let finalNorm: LayerNorm

    /// `scope`: `sam_mask_decoder.transformer`.
    init(_ scope: WeightScope, dim: Int, heads: Int = 8) throws {
        let layerScopes = scope["layers"]
        layers = try (0..<layerScopes.moduleCount(probe: "norm1.weight")).map { i in
            try TwoWayAttentionBlock(layerScopes[i], dim: dim, heads: heads, skipFirstLayerPE: i == 0)
        }
        finalAttention = try DecoderAttention(scope["final_attn_token_to_image"], dim: dim, heads: heads)
        finalNorm = try LayerNorm(scope["norm_final_attn"], dim: dim, eps: 1e-5)
    }

    /// tokens [T, d] (also their PE); image [N, d] with PE [N, d]. Returns (tokens, image) after the transformer.
    func callAsFunction(tokens: Tensor, image: Tensor, imagePE: Tensor) -> (tokens: Tensor, image: Tensor) {
        var q = tokens, k = image
        for layer in layers { (q, k) = layer(queries: q, keys: k, queryPE: tokens, keyPE: imagePE) }
        q = finalNorm(add(q, finalAttention(q: add(q, tokens), k: add(k, imagePE), v: k)))
        return (q, k)
    }
}

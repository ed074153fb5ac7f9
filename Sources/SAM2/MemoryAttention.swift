// SAM 2 memory attention (`memory_attention.py MemoryAttention`): 4 pre-norm layers over the target's tokens, each with
// RoPE
// self-attention, RoPE cross-attention to the memory bank (spatial memories rotated, pointer tokens not),
// and a ReLU FFN; then a final LayerNorm. Attention itself is TensorCore's query-blocked `attention`,
// so the score matrix is never materialized and memory stays bounded for large k.
import TensorCore

/// Single-head attention with axial rotary position encoding on queries and (some) keys.
struct RoPEAttention: Sendable {
    let queryProjection: Linear
    let keyProjection: Linear
    let valueProjection: Linear
    let outputProjection: Linear

    init(_ scope: WeightScope, dim: Int, keyValueInput: Int) throws {
        queryProjection = try Linear(scope["q_proj"], input: dim, output: dim)
        keyProjection = try Linear(scope["k_proj"], input: keyValueInput, output: dim)
        valueProjection = try Linear(scope["v_proj"], input: keyValueInput, output: dim)
        outputProjection = try Linear(scope["out_proj"], input: dim, output: dim)
    }

    /// residual += attention output. query [Nq, dim] (one token per grid cell); key/value inputs [Nk, kvIn].
    /// The first Nk − unrotatedKeys keys must be whole copies of the grid (RoPE angles repeat per memory frame).
    /// With bf16 activations (`MemoryAttention.carriesBFloat16Activations`) the inputs come rounded, q and k are
    /// rotated in fp32 and rounded as they are stored, and v and the attention output are bf16: the same
    /// roundings of the same values as with fp32 activations under bf16.
    func add<Activation: BlockActivation>(
        query: Activation, key: Activation, value: Activation, unrotatedKeys: Int, rope: AxialRoPE,
        into residual: inout Tensor
    ) {
        let q = query.projectedToFP32(by: queryProjection), k = key.projectedToFP32(by: keyProjection)
        let rotatedQ = Activation(rotating: q, rotatedRows: q.dim(0), rope: rope)
        let rotatedK = Activation(rotating: k, rotatedRows: k.dim(0) - unrotatedKeys, rope: rope)
        if valueProjection.inputDim < valueProjection.outputDim {
            // Cross-attention to the memories: values come in 64 wide and are projected to 256. With one head,
            // softmax(S)·(V·Wᵀ + 1·bᵀ) = (softmax(S)·V)·Wᵀ + 1·bᵀ, since every row of softmax(S) sums to 1;
            // projecting after the attention makes the P·V product, half of this layer's FLOPs, 4x cheaper.
            // (Not valid with several heads: the projection mixes channels across heads.)
            Activation.attention(query: rotatedQ, key: rotatedK, value: value, heads: 1).projected(by: valueProjection)
                .addProjection(by: outputProjection, into: &residual)
        } else {
            Activation.attention(query: rotatedQ, key: rotatedK, value: value.projected(by: valueProjection), heads: 1)
                .addProjection(by: outputProjection, into: &residual)
        }
    }
}

/// Precomputed axial RoPE tables for one grid; token row r uses angles of grid cell r mod (h·w).
struct AxialRoPE: Sendable {
    let cells: Int
    let pairs: Int
    let cosines: [Float]
    let sines: [Float]

    init(dim: Int, gridWidth: Int, gridHeight: Int) {
        cells = gridWidth * gridHeight
        pairs = dim / 2
        (cosines, sines) = SinePositionEncoding.axialRoPE(dim: dim, width: gridWidth, height: gridHeight)
    }

    /// x [N, dim] with its first `rotatedRows` rows rotated as `rotate` rotates them, every row then rounded to
    /// bf16 from a scratch row: the rotated fp32 values are never stored.
    func rotatedBFloat16(_ x: Tensor, rotatedRows: Int) -> BFloat16Tensor {
        precondition(
            rotatedRows % cells == 0,
            "RoPE: \(rotatedRows) rotated tokens are not a whole number of \(cells)-token grids")
        let dim = x.dim(1), pairs = pairs
        precondition(dim == 2 * pairs, "RoPE: tokens have \(dim) channels, tables are for \(2 * pairs)")
        return x.withUnsafeBufferPointer { xb in
            cosines.withUnsafeBufferPointer { cb in
                sines.withUnsafeBufferPointer { sb in
                    let base = xb.baseAddress!, cp = cb.baseAddress!, sp = sb.baseAddress!
                    return BFloat16Tensor(shape: x.shape) { r, out in
                        let row = base + r * dim
                        guard r < rotatedRows else {
                            out.update(from: row, count: dim)
                            return
                        }
                        AxialRoPE.rotate(
                            row, into: out, pairs: pairs, cosines: cp + (r % cells) * pairs,
                            sines: sp + (r % cells) * pairs)
                    }
                }
            }
        }
    }

    /// One token's channel pairs (2m, 2m+1) rotated as complex numbers by its cell's angles, written to `out`
    /// (which may be `row` itself).
    @inline(__always)
    static func rotate(
        _ row: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, pairs: Int, cosines: UnsafePointer<Float>,
        sines: UnsafePointer<Float>
    ) {
        for m in 0..<pairs {
            let a = row[2 * m], b = row[2 * m + 1]
            let c = cosines[m], s = sines[m]
            out[2 * m] = a * c - b * s
            out[2 * m + 1] = a * s + b * c
        }
    }

    /// Rotates channel pairs (2m, 2m+1) of x [N, dim] in place as complex numbers.
    func rotate(_ x: inout Tensor, rows: Range<Int>) {
        precondition(
            rows.count % cells == 0, "RoPE: \(rows.count) rotated tokens are not a whole number of \(cells)-token grids"
        )
        let dim = x.dim(1), pairs = pairs
        precondition(dim == 2 * pairs, "RoPE: tokens have \(dim) channels, tables are for \(2 * pairs)")
        x.withUnsafeMutableBufferPointer { xb in
            cosines.withUnsafeBufferPointer { cb in
                sines.withUnsafeBufferPointer { sb in
                    let base = xb.baseAddress!, cp = cb.baseAddress!, sp = sb.baseAddress!
                    parallelFor(rows.count) { i in
                        let r = rows.lowerBound + i
                        let row = base + r * dim, t = (i % cells) * pairs
                        AxialRoPE.rotate(row, into: row, pairs: pairs, cosines: cp + t, sines: sp + t)
                    }
                }
            }
        }
    }
}

struct MemoryAttentionLayer: Sendable {
    let selfAttention: RoPEAttention
    let crossAttention: RoPEAttention
    let norm1: LayerNorm, norm2: LayerNorm, norm3: LayerNorm
    let linear1: Linear, linear2: Linear

    /// `scope`: one `memory_attention.layers.i`.
    init(_ scope: WeightScope, config: SAM2Config) throws {
        let d = config.hiddenDim
        selfAttention = try RoPEAttention(scope["self_attn"], dim: d, keyValueInput: d)
        crossAttention = try RoPEAttention(scope["cross_attn_image"], dim: d, keyValueInput: config.memoryDim)
        norm1 = try LayerNorm(scope["norm1"], dim: d, eps: 1e-5)
        norm2 = try LayerNorm(scope["norm2"], dim: d, eps: 1e-5)
        norm3 = try LayerNorm(scope["norm3"], dim: d, eps: 1e-5)
        let ffn = scope.shape("linear1.weight")?.first ?? 2048
        linear1 = try Linear(scope["linear1"], input: d, output: ffn)
        linear2 = try Linear(scope["linear2"], input: ffn, output: d)
    }

    /// x [N, d]; memoryKeys = memory + memory PE, memoryValues = memory, both [T, memDim].
    func callAsFunction(_ x: Tensor, memoryKeys: Tensor, memoryValues: Tensor, pointerTokens: Int, rope: AxialRoPE)
        -> Tensor
    {
        run(x, memoryKeys: memoryKeys, memoryValues: memoryValues, pointerTokens: pointerTokens, rope: rope)
    }

    /// The layer with bf16 activations: the norms' outputs rounded as they are written, the memory keys and
    /// values rounded once for all layers by the caller. Same arithmetic as `callAsFunction` under bf16.
    func forwardBFloat16(
        _ x: Tensor, memoryKeys: BFloat16Tensor, memoryValues: BFloat16Tensor, pointerTokens: Int, rope: AxialRoPE
    ) -> Tensor {
        run(x, memoryKeys: memoryKeys, memoryValues: memoryValues, pointerTokens: pointerTokens, rope: rope)
    }

    private func run<Activation: BlockActivation>(
        _ x: Tensor, memoryKeys: Activation, memoryValues: Activation, pointerTokens: Int, rope: AxialRoPE
    ) -> Tensor {
        var x = x
        let y = Activation(normalizing: x, with: norm1)
        selfAttention.add(query: y, key: y, value: y, unrotatedKeys: 0, rope: rope, into: &x)
        crossAttention.add(
            query: Activation(normalizing: x, with: norm2), key: memoryKeys, value: memoryValues,
            unrotatedKeys: pointerTokens, rope: rope, into: &x)
        // x += linear2(relu(linear1(norm3(x)))), a chunk of tokens at a time.
        Activation.addFeedForward(
            into: &x, input: Activation(normalizing: x, with: norm3), hidden: linear1, output: linear2,
            activation: .relu)
        return x
    }
}

public struct MemoryAttention: Sendable {
    let layers: [MemoryAttentionLayer]
    let finalNorm: LayerNorm
    let rope: AxialRoPE
    let config: SAM2Config

    /// `scope`: `memory_attention`.
    init(_ scope: WeightScope, config: SAM2Config) throws {
        let layerScopes = scope["layers"]
        layers = try (0..<layerScopes.moduleCount(probe: "norm1.weight")).map {
            try MemoryAttentionLayer(layerScopes[$0], config: config)
        }
        finalNorm = try LayerNorm(scope["norm"], dim: config.hiddenDim, eps: 1e-5)
        rope = AxialRoPE(dim: config.hiddenDim, gridWidth: config.featureSize, gridHeight: config.featureSize)
        self.config = config
    }

    /// features: target top-level features [hidden, h, w]; positionEncoding: their sine PE (same shape);
    /// memory/memoryPosition: [T, memDim] as assembled by `MemoryBank`; the last `pointerTokens` rows are
    /// object-pointer tokens (not rotated). Returns pix_feat_with_mem [hidden, h, w].
    public func callAsFunction(
        features: Tensor, positionEncoding: Tensor, memory: Tensor, memoryPosition: Tensor,
        pointerTokens: Int
    ) -> Tensor {
        let h = features.dim(1), w = features.dim(2)
        precondition(h * w == rope.cells, "memory attention built for a \(config.featureSize)² grid, got \(h)x\(w)")
        var x = tokenRows(features)
        addInPlace(&x, scaled(tokenRows(positionEncoding), by: 0.1))
        let keys = add(memory, memoryPosition)
        if MemoryAttention.carriesBFloat16Activations(config, tokens: x.dim(0), memoryTokens: memory.dim(0)) {
            // Every layer's key and value products round the same memory: done once here.
            let keys16 = BFloat16Tensor(rounding: keys), values16 = BFloat16Tensor(rounding: memory)
            for layer in layers {
                x = layer.forwardBFloat16(
                    x, memoryKeys: keys16, memoryValues: values16, pointerTokens: pointerTokens, rope: rope)
            }
        } else {
            for layer in layers {
                x = layer(x, memoryKeys: keys, memoryValues: memory, pointerTokens: pointerTokens, rope: rope)
            }
        }
        return featureMap(finalNorm(x), height: h, width: w)
    }

    /// Under `Precision.bf16`, when every product of the layers runs in bf16 at these sizes (the smallest are the
    /// memory-width products over the fewer tokens, and the cross-attention), the layers keep their activations
    /// in bf16 between products (`MemoryAttentionLayer.forwardBFloat16`).
    static func carriesBFloat16Activations(_ config: SAM2Config, tokens: Int, memoryTokens: Int) -> Bool {
        let fewer = min(tokens, memoryTokens)
        return runsInBFloat16(m: fewer, n: config.hiddenDim, k: config.memoryDim)
            && runsInBFloat16(m: tokens, n: fewer, k: config.memoryDim)
    }
}

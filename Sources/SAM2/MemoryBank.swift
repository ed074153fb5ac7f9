// Memory-bank assembly (`sam2_base.py _prepare_memory_conditioned_features`) for the retrieval case:
// supports are conditioning frames 0..k-1, the target is frame k of a (k+1)-frame "video".
// memory = [support memories (h·w tokens each) | k pointers split into hidden/memDim tokens each]
// PE     = [sine PE(memDim) + maskmem_tpos_enc[last] per support | obj_ptr_tpos_proj(sine1D(distance/(M-1)))]
import TensorCore

/// Memory-attention inputs: memory tokens and their PE [T, memDim], with the pointer-token count.
public struct MemoryBankInputs: Sendable {
    public var memory: Tensor
    public var position: Tensor
    public var pointerTokens: Int
}

public struct MemoryBank: Sendable {
    let config: SAM2Config
    /// Sine PE of one memory + the conditioning-frame temporal row, as tokens [h·w, memDim].
    let spatialPosition: Tensor
    /// `obj_ptr_tpos_proj` (hidden -> memDim); nil for SAM 2.0 (pointer PE = 0).
    let pointerTemporalProjection: Linear?

    /// `model`: the whole model's parameters (`maskmem_tpos_enc` and `obj_ptr_tpos_proj` are top-level).
    init(_ model: WeightScope, config: SAM2Config) throws {
        self.config = config
        let m = config.memoryDim, g = config.featureSize
        let tpos = try model.tensor("maskmem_tpos_enc", shape: [config.memorySlots, 1, 1, m])
        // Conditioning frames use t_pos = 0 -> row num_maskmem − 1.
        let row = sliced(
            tpos.reshaped([config.memorySlots, m]), axis: 0, range: (config.memorySlots - 1)..<config.memorySlots)
        var pos = tokenRows(SinePositionEncoding.encoding(channels: m, height: g, width: g))
        pos.withUnsafeMutableBufferPointer { p in
            row.withUnsafeBufferPointer { r in
                for n in 0..<(g * g) { for c in 0..<m { p[n * m + c] += r[c] } }
            }
        }
        spatialPosition = pos
        pointerTemporalProjection =
            config.pointerTemporalEncoding
            ? try Linear(model["obj_ptr_tpos_proj"], input: config.hiddenDim, output: m) : nil
    }

    /// The positional encodings of the pointer tokens for `count` supports at frames 0..count-1 and the
    /// target at frame `count`: [count · tokensPerPointer, memDim].
    func pointerPositions(count k: Int) -> Tensor {
        let m = config.memoryDim, per = config.tokensPerPointer
        guard let projection = pointerTemporalProjection else { return Tensor(zeros: [k * per, m]) }
        // M = min(num_frames, max_obj_ptrs_in_encoder); distances are normalized by M − 1 (fp32, as PyTorch).
        let maxPointers = min(k + 1, config.maxObjectPointers)
        let denominator = Float(maxPointers - 1)
        let distances = (0..<k).map { Float(k - $0) / denominator }
        let perPointer = projection(SinePositionEncoding.sine1D(distances, dim: config.hiddenDim))  // [k, m]
        return Tensor(shape: [k * per, m]) { out in
            perPointer.withUnsafeBufferPointer { src in
                for i in 0..<k { for t in 0..<per { for c in 0..<m { out[(i * per + t) * m + c] = src[i * m + c] } } }
            }
        }
    }

    /// Assembles memory + PE for supports in frame order (frame 0 first). Throws on shape mismatches.
    public func assemble(_ supports: [SupportMemory]) throws -> MemoryBankInputs {
        let m = config.memoryDim, g = config.featureSize, d = config.hiddenDim, hw = g * g
        guard !supports.isEmpty else {
            throw SupportMemoryError(name: "memory bank", message: "at least one support is needed")
        }
        for (i, s) in supports.enumerated()
        where s.channels != m || s.height != g || s.width != g || s.pointer.count != d {
            throw SupportMemoryError(
                name: "support \(i)",
                message:
                    """
                    memory \(s.channels)x\(s.height)x\(s.width) with a \(s.pointer.count)-d pointer does not fit this \
                    model (\(m)x\(g)x\(g), \(d)-d)
                    """
            )
        }
        let k = supports.count, per = config.tokensPerPointer
        let total = k * hw + k * per
        // Pointer i contributes tokens p[0:m], p[m:2m], ... in that order.
        let memory = Tensor(shape: [total, m]) { out in
            for (i, s) in supports.enumerated() {
                let base = i * hw * m
                s.memoryBits.withUnsafeBufferPointer { bits in
                    for c in 0..<m { for n in 0..<hw { out[base + n * m + c] = float(fromBFloat16: bits[c * hw + n]) } }
                }
                for j in 0..<d { out[k * hw * m + i * d + j] = s.pointer[j] }
            }
        }
        let position = concatenated(Array(repeating: spatialPosition, count: k) + [pointerPositions(count: k)], axis: 0)
        return MemoryBankInputs(memory: memory, position: position, pointerTokens: k * per)
    }
}

import CDNNL

// Residual products fused into their destination: x += Linear(input), and x += FFN(input) a chunk of rows
// at a time. Both save a full pass over x (the separate residual add) and a fresh output allocation, and the
// FFN never materializes its wide hidden activations for all rows at once.

/// Rows per chunk of `addFeedForward`: large enough that re-packing the weights per chunk is cheap next to the
/// chunk's products (2,048 measured no faster in bf16).
let feedForwardChunkRows = 512

/// The activation between the two products of a feed-forward block.
public enum FeedForwardActivation: Sendable {
    case gelu
    case relu

    func apply(_ p: UnsafeMutablePointer<Float>, count: Int) {
        switch self {
        case .gelu: geluInPlace(p, count: count)
        case .relu: reluInPlace(p, count: count)
        }
    }
}

/// x[r] += input[r] · weightᵀ + bias: a linear layer whose result is added to x (a residual), through
/// `linearRows(accumulate:)`: no temporary output, no separate add. `weightBF16` as in `linear`.
public func addLinear(into x: inout Tensor, _ input: Tensor, weight: Tensor, bias: Tensor?, weightBF16: [UInt16]? = nil)
{
    precondition(weight.rank == 2, "linear weight must be [out, in], got \(weight.shape)")
    let inFeatures = weight.shape[1], outFeatures = weight.shape[0]
    precondition(
        input.rank >= 1 && input.dim(-1) == inFeatures, "addLinear: input \(input.shape) does not end in \(inFeatures)")
    precondition(
        x.dim(-1) == outFeatures && x.count / max(outFeatures, 1) == input.count / max(inFeatures, 1),
        "addLinear: x \(x.shape) does not take \(input.shape) · [\(inFeatures) -> \(outFeatures)]")
    if let bias { precondition(bias.count == outFeatures, "linear bias has \(bias.count) values, want \(outFeatures)") }
    let rows = input.count / max(inFeatures, 1)
    guard rows > 0, outFeatures > 0 else { return }
    x.withUnsafeMutableBufferPointer { px in
        input.withUnsafeBufferPointer { pi in
            weight.withUnsafeBufferPointer { pw in
                withOptionalPointers(bias, weightBF16) { pb, pw16 in
                    linearRows(
                        pi.baseAddress!, rows: rows, inFeatures: inFeatures, weight: pw.baseAddress!,
                        outFeatures: outFeatures, bias: pb, out: px.baseAddress!, accumulate: true,
                        weightBF16: pw16)
                }
            }
        }
    }
}

/// `addFeedForward` for two `Linear` layers (both with bias): under `Precision.bf16` their cached bf16
/// weights are used for the large chunks.
public func addFeedForward(
    into x: inout Tensor, input: Tensor, hidden: Linear, output: Linear, activation: FeedForwardActivation
) {
    let bf16 = Precision.current == .bf16
    addFeedForward(
        into: &x, input: input, hiddenWeight: hidden.weight, hiddenBias: hidden.bias!, outputWeight: output.weight,
        outputBias: output.bias!, activation: activation,
        hiddenWeightBF16: bf16 ? hidden.packed.bits(of: hidden.weight) : nil,
        outputWeightBF16: bf16 ? output.packed.bits(of: output.weight) : nil)
}

/// x += Linear2(activation(Linear1(input))), the feed-forward block of a transformer layer with its
/// residual (input is usually the normalized x). Runs over chunks of rows, each chunk start to finish on
/// one worker: the wide hidden activations (100 MB for the first Hiera-T block if materialized at once)
/// exist only a chunk at a time, stay in the cache of the core that made them, and the workers never wait
/// for each other between the two GEMMs and the activation. The second GEMM accumulates straight into x.
public func addFeedForward(
    into x: inout Tensor, input: Tensor,
    hiddenWeight: Tensor, hiddenBias: Tensor, outputWeight: Tensor, outputBias: Tensor,
    activation: FeedForwardActivation, hiddenWeightBF16: [UInt16]? = nil, outputWeightBF16: [UInt16]? = nil
) {
    let width = input.dim(-1), hiddenWidth = hiddenWeight.shape[0]
    precondition(
        hiddenWeight.shape == [hiddenWidth, width] && hiddenBias.count == hiddenWidth,
        "feed-forward: first layer \(hiddenWeight.shape) does not take \(width) features")
    precondition(
        outputWeight.shape == [x.dim(-1), hiddenWidth] && outputBias.count == x.dim(-1),
        "feed-forward: second layer \(outputWeight.shape) does not give x's \(x.dim(-1)) features")
    let tokens = input.count / max(width, 1), outWidth = x.dim(-1)
    precondition(x.count == tokens * outWidth, "feed-forward: x \(x.shape) and input \(input.shape) differ in rows")
    let chunkRows = feedForwardChunkRows
    let chunks = (tokens + chunkRows - 1) / chunkRows
    x.withUnsafeMutableBufferPointer { px in
        input.withUnsafeBufferPointer { pn in
            hiddenWeight.withUnsafeBufferPointer { w1 in
                hiddenBias.withUnsafeBufferPointer { b1 in
                    outputWeight.withUnsafeBufferPointer { w2 in
                        outputBias.withUnsafeBufferPointer { b2 in
                            let out = px.baseAddress!, source = pn.baseAddress!
                            withOptionalPointers(nil, hiddenWeightBF16) { _, h16 in
                                withOptionalPointers(nil, outputWeightBF16) { _, o16 in
                                    // In bf16 when the whole block is large enough, tail chunk included.
                                    let bf16 = runsInBFloat16(m: tokens, n: hiddenWidth, k: width)
                                    parallelFor(chunks) { chunk in
                                        let start = chunk * chunkRows, rows = min(chunkRows, tokens - start)
                                        if bf16, let h16, let o16 {
                                            let input = UnsafeMutablePointer<UInt16>.allocate(capacity: rows * width)
                                            defer { input.deallocate() }
                                            ragseg_to_bf16(source + start * width, input, rows * width)
                                            feedForwardRowsBFloat16(
                                                input, rows: rows, width: width,
                                                hiddenWidth: hiddenWidth, outWidth: outWidth, hiddenWeight: h16,
                                                hiddenBias: b1.baseAddress!, outputWeight: o16,
                                                outputBias: b2.baseAddress!, activation: activation,
                                                out: out + start * outWidth)
                                            return
                                        }
                                        let hidden = UnsafeMutablePointer<Float>.allocate(capacity: rows * hiddenWidth)
                                        defer { hidden.deallocate() }
                                        linearRows(
                                            source + start * width, rows: rows, inFeatures: width,
                                            weight: w1.baseAddress!,
                                            outFeatures: hiddenWidth, bias: b1.baseAddress!, out: hidden,
                                            weightBF16: h16)
                                        activation.apply(hidden, count: rows * hiddenWidth)
                                        // x += hidden · W2ᵀ + bias2 (inline: this is one worker's chunk).
                                        linearRows(
                                            hidden, rows: rows, inFeatures: hiddenWidth, weight: w2.baseAddress!,
                                            outFeatures: outWidth, bias: b2.baseAddress!, out: out + start * outWidth,
                                            accumulate: true, weightBF16: o16)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

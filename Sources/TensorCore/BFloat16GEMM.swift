import CDNNL
import Synchronization

// The bf16 side of the products (Precision.bf16): operands rounded to bf16 (round to nearest even, as
// PyTorch's autocast casts), oneDNN matmul with fp32 accumulation and fp32 output.

/// A layer's weight rounded to bf16 once, on its first bf16 product, and kept for the layer's lifetime
/// (the fp32 weight stays: fp32 products and parity need it).
public final class BFloat16Weight: Sendable {
    private let cache = Mutex<[UInt16]?>(nil)

    public init() {}

    /// `weight` as bf16 bits, same layout; converted on the first call (callers always pass the same weight).
    public func bits(of weight: Tensor) -> [UInt16] {
        cache.withLock { cached in
            if let cached { return cached }
            let made = bfloat16Array(weight)
            cached = made
            return made
        }
    }
}

/// Every element of `x` as bf16 bits.
public func bfloat16Array(_ x: Tensor) -> [UInt16] {
    [UInt16](unsafeUninitializedCapacity: x.count) { buffer, initialized in
        x.withUnsafeBufferPointer { ragseg_to_bf16($0.baseAddress!, buffer.baseAddress!, x.count) }
        initialized = x.count
    }
}

/// Products smaller than this (multiply-adds) stay fp32 sgemm in bf16 mode: a oneDNN call costs a few
/// microseconds of set-up, and these (prompt tokens, small heads) are a negligible share of the time.
let bfloat16MinimumProduct = 1 << 20

/// True when a product of this size runs in bf16 under the current precision.
@inline(__always) func runsInBFloat16(m: Int, n: Int, k: Int) -> Bool {
    Precision.current == .bf16 && m * n * k >= bfloat16MinimumProduct
}

/// out[r] = x[r] · weightᵀ + bias, or with `accumulate` out[r] += x[r] · weightᵀ + bias, for rows of x in
/// fp32, weight [outFeatures, inFeatures] in bf16: the rows are rounded to bf16 into a scratch block, then one
/// oneDNN product whose bias and sum are post-ops, so `out` is written once (and read once to accumulate)
/// with no pass of its own for the bias. Runs on the calling thread.
func linearRowsBFloat16(
    _ x: UnsafePointer<Float>, rows: Int, inFeatures: Int, weight: UnsafePointer<UInt16>, outFeatures: Int,
    bias: UnsafePointer<Float>?, out: UnsafeMutablePointer<Float>, accumulate: Bool
) {
    let scratch = UnsafeMutablePointer<UInt16>.allocate(capacity: rows * inFeatures)
    defer { scratch.deallocate() }
    ragseg_to_bf16(x, scratch, rows * inFeatures)
    OneDNN.matmul(
        .bf16, transA: false, transB: true, m: rows, n: outFeatures, k: inFeatures,
        a: scratch, lda: inFeatures, b: weight, ldb: inFeatures, bias: bias, beta: accumulate ? 1 : 0, c: out,
        ldc: outFeatures)
}

/// `layers.map { $0(x) }` for layers that read the same input (an attention's q, k and v), except that
/// under `Precision.bf16` the input is rounded to bf16 once for all of them instead of once per layer.
public func linears(_ layers: [Linear], sharing x: Tensor) -> [Tensor] {
    guard let inFeatures = layers.first?.inputDim, layers.count > 1, Precision.current == .bf16,
        x.rank >= 1, x.dim(-1) == inFeatures, layers.allSatisfy({ $0.inputDim == inFeatures })
    else { return layers.map { $0(x) } }
    let rows = x.count / max(inFeatures, 1)
    guard rows > 0, layers.allSatisfy({ runsInBFloat16(m: rows, n: $0.outputDim, k: inFeatures) }) else {
        return layers.map { $0(x) }
    }
    let input = [UInt16](unsafeUninitializedCapacity: x.count) { buffer, initialized in
        x.withUnsafeBufferPointer { px in
            let source = px.baseAddress!, bits = buffer.baseAddress!
            parallelRanges(rows, grain: max(1, (1 << 15) / inFeatures)) { range in
                ragseg_to_bf16(
                    source + range.lowerBound * inFeatures, bits + range.lowerBound * inFeatures,
                    range.count * inFeatures)
            }
        }
        initialized = x.count
    }
    return layers.map { layer in
        var shape = x.shape
        shape[shape.count - 1] = layer.outputDim
        let outFeatures = layer.outputDim, weight = layer.packed.bits(of: layer.weight)
        return Tensor(shape: shape) { out in
            input.withUnsafeBufferPointer { pi in
                withOptionalPointers(layer.bias, weight) { bias, pw in
                    forRowBlocks(rows, product: rows * outFeatures * inFeatures) { range in
                        OneDNN.matmul(
                            .bf16, transA: false, transB: true, m: range.count, n: outFeatures, k: inFeatures,
                            a: pi.baseAddress! + range.lowerBound * inFeatures, lda: inFeatures, b: pw!,
                            ldb: inFeatures, bias: bias, c: out.baseAddress! + range.lowerBound * outFeatures,
                            ldc: outFeatures)
                    }
                }
            }
        }
    }
}

/// One chunk of `addFeedForward` in bf16: out[r] += activation(x[r] · W1ᵀ + b1) · W2ᵀ + b2. The first
/// product's bias and activation run inside oneDNN on its fp32 accumulator, which is then rounded once to the
/// bf16 hidden block the second product reads: the wide hidden activations are written once, at half the
/// width of fp32, and never converted or activated in a pass of their own. Runs on the calling thread.
func feedForwardRowsBFloat16(
    _ x: UnsafePointer<Float>, rows: Int, width: Int, hiddenWidth: Int, outWidth: Int,
    hiddenWeight: UnsafePointer<UInt16>, hiddenBias: UnsafePointer<Float>, outputWeight: UnsafePointer<UInt16>,
    outputBias: UnsafePointer<Float>, activation: FeedForwardActivation, out: UnsafeMutablePointer<Float>
) {
    let input = UnsafeMutablePointer<UInt16>.allocate(capacity: rows * width)
    let hidden = UnsafeMutablePointer<UInt16>.allocate(capacity: rows * hiddenWidth)
    defer {
        input.deallocate()
        hidden.deallocate()
    }
    ragseg_to_bf16(x, input, rows * width)
    OneDNN.matmul(
        .bf16, transA: false, transB: true, m: rows, n: hiddenWidth, k: width, a: input, lda: width,
        b: hiddenWeight, ldb: width, bias: hiddenBias, activation: activation.oneDNN, c: hidden, output: .bf16,
        ldc: hiddenWidth)
    OneDNN.matmul(
        .bf16, transA: false, transB: true, m: rows, n: outWidth, k: hiddenWidth, a: hidden, lda: hiddenWidth,
        b: outputWeight, ldb: hiddenWidth, bias: outputBias, beta: 1, c: out, ldc: outWidth)
}

extension FeedForwardActivation {
    var oneDNN: OneDNN.Activation {
        switch self {
        case .gelu: .gelu
        case .relu: .relu
        }
    }
}

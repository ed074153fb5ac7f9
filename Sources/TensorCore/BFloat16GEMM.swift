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

/// True when a product of this size (m·n·k multiply-adds) runs in bf16 under the current precision.
@inline(__always) public func runsInBFloat16(m: Int, n: Int, k: Int) -> Bool {
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
    let input = BFloat16Tensor(rounding: x)
    return layers.map { $0(input) }
}

extension Linear {
    /// self(x) for bf16 input: oneDNN products with fp32 accumulation, a block of rows per worker, fp32
    /// output. The input is bf16 already, so this runs in bf16 whatever its size (on a CPU where
    /// `Precision.use(.bf16)` succeeded).
    public func callAsFunction(_ x: BFloat16Tensor) -> Tensor {
        Tensor(shape: outputShape(of: x)) { out in
            product(x, output: .f32, into: UnsafeMutableRawPointer(out.baseAddress))
        }
    }

    /// self(x) with the output rounded to bf16 inside oneDNN, for a consumer that would round it anyway (the
    /// q, k and v of an attention): the same numbers as rounding the fp32 output, at half the bytes.
    public func bfloat16(_ x: BFloat16Tensor) -> BFloat16Tensor {
        BFloat16Tensor(shape: outputShape(of: x)) { out in
            product(x, output: .bf16, into: UnsafeMutableRawPointer(out.baseAddress))
        }
    }

    /// residual += self(x) for bf16 input, the sum a post-op of the product (no temporary output).
    public func add(_ x: BFloat16Tensor, into residual: inout Tensor) {
        precondition(
            residual.shape == outputShape(of: x), "linear: residual \(residual.shape) does not take \(x.shape)")
        residual.withUnsafeMutableBufferPointer { out in
            product(x, output: .f32, into: UnsafeMutableRawPointer(out.baseAddress), accumulate: true)
        }
    }

    private func outputShape(of x: BFloat16Tensor) -> [Int] {
        precondition(x.rank >= 1 && x.dim(-1) == inputDim, "linear: input \(x.shape) does not end in \(inputDim)")
        var shape = x.shape
        shape[shape.count - 1] = outputDim
        return shape
    }

    private func product(
        _ x: BFloat16Tensor, output: OneDNN.ElementType, into out: UnsafeMutableRawPointer?, accumulate: Bool = false
    ) {
        let inFeatures = inputDim, outFeatures = outputDim, rows = x.count / max(inFeatures, 1)
        guard let out, rows > 0, outFeatures > 0 else { return }
        let elementBytes = output == .bf16 ? 2 : 4
        let weight = packed.bits(of: self.weight)
        x.withUnsafeBufferPointer { px in
            withOptionalPointers(bias, weight) { bias, pw in
                forRowBlocks(rows, product: rows * outFeatures * inFeatures) { range in
                    OneDNN.matmul(
                        .bf16, transA: false, transB: true, m: range.count, n: outFeatures, k: inFeatures,
                        a: px.baseAddress! + range.lowerBound * inFeatures, lda: inFeatures, b: pw!, ldb: inFeatures,
                        bias: bias, beta: accumulate ? 1 : 0, c: out + range.lowerBound * outFeatures * elementBytes,
                        output: output,
                        ldc: outFeatures)
                }
            }
        }
    }
}

/// One chunk of `addFeedForward` in bf16: out[r] += activation(x[r] · W1ᵀ + b1) · W2ᵀ + b2, x already bf16.
/// The first product's bias and activation run inside oneDNN on its fp32 accumulator, which is then rounded
/// once to the bf16 hidden block the second product reads: the wide hidden activations are written once, at
/// half the width of fp32, and never converted or activated in a pass of their own. Runs on the calling thread.
func feedForwardRowsBFloat16(
    _ x: UnsafePointer<UInt16>, rows: Int, width: Int, hiddenWidth: Int, outWidth: Int,
    hiddenWeight: UnsafePointer<UInt16>, hiddenBias: UnsafePointer<Float>, outputWeight: UnsafePointer<UInt16>,
    outputBias: UnsafePointer<Float>, activation: FeedForwardActivation, out: UnsafeMutablePointer<Float>
) {
    let hidden = UnsafeMutablePointer<UInt16>.allocate(capacity: rows * hiddenWidth)
    defer { hidden.deallocate() }
    OneDNN.matmul(
        .bf16, transA: false, transB: true, m: rows, n: hiddenWidth, k: width, a: x, lda: width,
        b: hiddenWeight, ldb: width, bias: hiddenBias, activation: activation.oneDNN, c: hidden, output: .bf16,
        ldc: hiddenWidth)
    OneDNN.matmul(
        .bf16, transA: false, transB: true, m: rows, n: outWidth, k: hiddenWidth, a: hidden, lda: hiddenWidth,
        b: outputWeight, ldb: hiddenWidth, bias: outputBias, beta: 1, c: out, ldc: outWidth)
}

/// `addFeedForward` for an input that is bf16 already (a layer norm's output stored as bf16): every chunk runs
/// `feedForwardRowsBFloat16` on it as is (on a CPU where `Precision.use(.bf16)` succeeded).
public func addFeedForward(
    into x: inout Tensor, input: BFloat16Tensor, hidden: Linear, output: Linear, activation: FeedForwardActivation
) {
    let width = input.dim(-1), hiddenWidth = hidden.outputDim, outWidth = x.dim(-1)
    precondition(
        hidden.inputDim == width && output.inputDim == hiddenWidth && output.outputDim == outWidth,
        "feed-forward: layers \(hidden.weight.shape), \(output.weight.shape) do not take \(input.shape) to \(x.shape)")
    let tokens = input.count / max(width, 1)
    precondition(x.count == tokens * outWidth, "feed-forward: x \(x.shape) and input \(input.shape) differ in rows")
    guard let hiddenBias = hidden.bias, let outputBias = output.bias else {
        preconditionFailure("feed-forward layers need biases")
    }
    let w1 = hidden.packed.bits(of: hidden.weight), w2 = output.packed.bits(of: output.weight)
    let chunks = (tokens + feedForwardChunkRows - 1) / feedForwardChunkRows
    x.withUnsafeMutableBufferPointer { px in
        input.withUnsafeBufferPointer { pi in
            withOptionalPointers(hiddenBias, w1) { b1, h16 in
                withOptionalPointers(outputBias, w2) { b2, o16 in
                    parallelFor(chunks) { chunk in
                        let start = chunk * feedForwardChunkRows, rows = min(feedForwardChunkRows, tokens - start)
                        feedForwardRowsBFloat16(
                            pi.baseAddress! + start * width, rows: rows, width: width, hiddenWidth: hiddenWidth,
                            outWidth: outWidth, hiddenWeight: h16!, hiddenBias: b1!, outputWeight: o16!,
                            outputBias: b2!, activation: activation, out: px.baseAddress! + start * outWidth)
                    }
                }
            }
        }
    }
}

extension FeedForwardActivation {
    var oneDNN: OneDNN.Activation {
        switch self {
        case .gelu: .gelu
        case .relu: .relu
        }
    }
}

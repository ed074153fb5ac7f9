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

/// out[r] (+)= x[r] · weightᵀ for rows of x in fp32, weight [outFeatures, inFeatures] in bf16: the rows are
/// rounded to bf16 into a scratch block, then one oneDNN product with beta = 1 onto what `out` holds.
/// Runs on the calling thread.
func linearRowsBFloat16(
    _ x: UnsafePointer<Float>, rows: Int, inFeatures: Int, weight: UnsafePointer<UInt16>, outFeatures: Int,
    out: UnsafeMutablePointer<Float>
) {
    let scratch = UnsafeMutablePointer<UInt16>.allocate(capacity: rows * inFeatures)
    defer { scratch.deallocate() }
    ragseg_to_bf16(x, scratch, rows * inFeatures)
    OneDNN.matmul(
        .bf16, transA: false, transB: true, m: rows, n: outFeatures, k: inFeatures,
        a: scratch, lda: inFeatures, b: weight, ldb: inFeatures, beta: 1, c: out, ldc: outFeatures)
}

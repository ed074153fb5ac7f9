import CKernels

/// Replaces a contiguous row by exp(x - max(row)) and returns the sum of the new values.
/// (Callers divide by the sum; attention does so on its much smaller output rows instead.)
/// The exponential is Cephes' expf scheme (~1 ulp) in the CKernels target, vectorized at the CPU's
/// widest level: scalar `expf` per score would cost as much as the attention GEMMs themselves. Scores
/// far under the row max (or -inf) give ~1e-38 instead of 0, negligible in a sum whose largest term is 1;
/// a row of all -inf gives uniform weights rather than NaN.
@inline(__always)
func softmaxRowUnnormalized(_ p: UnsafeMutablePointer<Float>, _ n: Int) -> Float {
    ragseg_exp_shifted_sum(p, n)
}

/// `softmaxRowUnnormalized` on each of `rows` rows of n values stored one after another, the sums into `sums`.
/// Rows shorter than a vector (attention to a handful of prompt tokens) run as one stream of exponentials
/// instead of a mostly padded call each; the values and sums are the same.
@inline(__always)
func softmaxRowsUnnormalized(
    _ p: UnsafeMutablePointer<Float>, rows: Int, _ n: Int, sums: UnsafeMutablePointer<Float>
) {
    ragseg_exp_shifted_sum_rows(p, rows, n, sums)
}

/// Softmax over the last axis (max-subtracted, as PyTorch).
public func softmax(_ x: Tensor) -> Tensor {
    precondition(x.rank >= 1, "softmax needs at least one axis")
    let n = x.dim(-1)
    let rows = n == 0 ? 0 : x.count / n
    var out = x
    out.withUnsafeMutableBufferPointer { po in
        guard let base = po.baseAddress else { return }
        parallelRanges(rows, grain: max(1, (1 << 14) / max(n, 1))) { range in
            for r in range {
                let p = base + r * n
                let inv = 1 / softmaxRowUnnormalized(p, n)
                for j in 0..<n { p[j] *= inv }
            }
        }
    }
    return out
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Softmax of one contiguous row in place: subtract the max (no overflow), exponentiate, normalize.
/// Returns nothing; `normalize: false` leaves the unnormalized exponentials and returns their sum
/// through `softmaxRowUnnormalized` (attention folds 1/sum into its much smaller output instead).
@inline(__always)
func softmaxRowUnnormalized(_ p: UnsafeMutablePointer<Float>, _ n: Int) -> Float {
    var maxValue = -Float.infinity
    for j in 0..<n { maxValue = max(maxValue, p[j]) }
    // A row of -inf (fully masked) would give NaN from inf - inf; treat it as all-zero weights.
    if maxValue == -Float.infinity { maxValue = 0 }
    var sum: Float = 0
    for j in 0..<n {
        let e = expf(p[j] - maxValue)
        p[j] = e
        sum += e
    }
    return sum
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

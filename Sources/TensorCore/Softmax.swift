#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Lane-wise max/min as compare + select. The standard library's `pointwiseMax`/`pointwiseMin` are
/// generic, IEEE-minimum/maximum-exact and were neither inlined nor vectorized: they made GELU 12x
/// slower (15 vs 1.2 ns per element) and took 10% of the SAM 2 image encoder. NaN in `a` is kept.
@inline(__always) func lanewiseMax(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> { a.replacing(with: b, where: a .< b) }
@inline(__always) func lanewiseMin(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> { a.replacing(with: b, where: b .< a) }

/// e^x for 8 lanes at once (Cephes `expf` scheme, ~1 ulp): x = n·ln2 + r with |r| ≤ ln2/2,
/// e^r as 1 + r + r²·(degree-5 polynomial), 2^n put straight into the exponent bits. Inputs below -87.3
/// (softmax scores far under the row max, or -inf) give ~1e-38 instead of 0 — negligible in a sum of
/// terms whose largest is 1. Scalar `expf` per score costs as much as the attention GEMMs themselves.
@inline(__always)
func exp8(_ x: SIMD8<Float>) -> SIMD8<Float> {
    let clamped = lanewiseMin(lanewiseMax(x, SIMD8(repeating: -87.3)), SIMD8(repeating: 88.3))
    // Round to nearest by the 1.5·2²³ trick: after the add, the low mantissa bits hold the integer n.
    // (Plain SIMD `rounded` / int conversions are not vectorized by the compiler; these bit ops are.)
    let magic = SIMD8<Float>(repeating: 12582912)
    let shifted = clamped * 1.44269504088896341 + magic
    let n = shifted - magic
    // ln 2 split in two so n·ln2 is exact in the high part (Cody–Waite reduction).
    let r = clamped - n * 0.693359375 + n * 2.12194440e-4
    var p = SIMD8<Float>(repeating: 1.9875691500e-4)
    p = p * r + 1.3981999507e-3
    p = p * r + 8.3334519073e-3
    p = p * r + 4.1665795894e-2
    p = p * r + 1.6666665459e-1
    p = p * r + 5.0000001201e-1
    let er = p * r * r + r + 1
    let integer = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- unsafeBitCast(magic, to: SIMD8<Int32>.self)
    let bits = (integer &+ 127) &<< 23
    return er * unsafeBitCast(bits, to: SIMD8<Float>.self)
}

/// Replaces a contiguous row by exp(x - max(row)) and returns the sum of the new values.
/// (Callers divide by the sum; attention does so on its much smaller output rows instead.)
@inline(__always)
func softmaxRowUnnormalized(_ p: UnsafeMutablePointer<Float>, _ n: Int) -> Float {
    let raw = UnsafeMutableRawPointer(p)
    let vectorEnd = n & ~7
    var maxVector = SIMD8<Float>(repeating: -.infinity)
    var j = 0
    while j < vectorEnd {
        maxVector = lanewiseMax(maxVector, raw.loadUnaligned(fromByteOffset: j * 4, as: SIMD8<Float>.self))
        j += 8
    }
    var maxValue = maxVector.max()
    for t in vectorEnd..<n { maxValue = max(maxValue, p[t]) }
    // A row of -inf (fully masked) would give NaN from inf - inf; treat it as all-zero weights.
    if maxValue == -Float.infinity { maxValue = 0 }
    var sumVector = SIMD8<Float>(repeating: 0)
    j = 0
    while j < vectorEnd {
        let e = exp8(raw.loadUnaligned(fromByteOffset: j * 4, as: SIMD8<Float>.self) - maxValue)
        raw.storeBytes(of: e, toByteOffset: j * 4, as: SIMD8<Float>.self)
        sumVector += e
        j += 8
    }
    var sum = sumVector.sum()
    for t in vectorEnd..<n {
        let e = expf(p[t] - maxValue)
        p[t] = e
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

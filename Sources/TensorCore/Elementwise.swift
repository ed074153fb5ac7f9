#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Pointwise maps. Each has a copying form and an InPlace form; large tensors are split over
// `Threads.count` workers in contiguous chunks (see `parallelRanges`).

@inline(__always)
private func mapInPlace(_ x: inout Tensor, _ f: (Float) -> Float) {
    let n = x.count
    x.withUnsafeMutableBufferPointer { buffer in
        let p = buffer.baseAddress
        parallelRanges(n) { range in
            guard let p else { return }
            for i in range { p[i] = f(p[i]) }
        }
    }
}

/// Like `mapInPlace`, eight lanes at a time through `vector`, the tail through `scalar`
/// (transcendental maps: scalar libm calls would dominate GELU-heavy MLPs).
@inline(__always)
private func mapInPlace8(_ x: inout Tensor, _ vector: (SIMD8<Float>) -> SIMD8<Float>, _ scalar: (Float) -> Float) {
    let n = x.count
    x.withUnsafeMutableBufferPointer { buffer in
        guard let p = buffer.baseAddress else { return }
        let raw = UnsafeMutableRawPointer(p)
        parallelRanges(n / 8, grain: 1 << 12) { range in
            for v in range {
                raw.storeBytes(of: vector(raw.loadUnaligned(fromByteOffset: v * 32, as: SIMD8<Float>.self)),
                               toByteOffset: v * 32, as: SIMD8<Float>.self)
            }
        }
        for i in (n & ~7)..<n { p[i] = scalar(p[i]) }
    }
}

/// Exact GELU, x·Φ(x) = 0.5·x·(1 + erf(x/√2)) (PyTorch `approximate='none'`).
@inline(__always) func geluScalar(_ x: Float) -> Float { 0.5 * x * (1 + erff(x * 0.70710678118654752440)) }
@inline(__always) func sigmoidScalar(_ x: Float) -> Float { 1 / (1 + expf(-x)) }

/// erf for 8 lanes: Abramowitz & Stegun 7.1.26, |error| ≤ 1.5e-7 (below fp32 resolution of 1 + erf
/// for the GELU use), with e^(-x²) from `exp8`.
@inline(__always) func erf8(_ x: SIMD8<Float>) -> SIMD8<Float> {
    let magnitudeBits = unsafeBitCast(x, to: SIMD8<UInt32>.self) & 0x7FFF_FFFF
    let ax = lanewiseMin(unsafeBitCast(magnitudeBits, to: SIMD8<Float>.self), SIMD8(repeating: 10))
    let t = 1 / (1 + 0.3275911 * ax)
    var poly = SIMD8<Float>(repeating: 1.061405429)
    poly = poly * t - 1.453152027
    poly = poly * t + 1.421413741
    poly = poly * t - 0.284496736
    poly = poly * t + 0.254829592
    let magnitude = 1 - poly * t * exp8(-ax * ax)
    // Copy the sign of x onto the magnitude (erf is odd).
    let sign = unsafeBitCast(x, to: SIMD8<UInt32>.self) & 0x8000_0000
    return unsafeBitCast(unsafeBitCast(magnitude, to: SIMD8<UInt32>.self) | sign, to: SIMD8<Float>.self)
}

@inline(__always) func gelu8(_ x: SIMD8<Float>) -> SIMD8<Float> { 0.5 * x * (1 + erf8(x * 0.70710678118654752440)) }
@inline(__always) func sigmoid8(_ x: SIMD8<Float>) -> SIMD8<Float> { 1 / (1 + exp8(-x)) }

public func geluInPlace(_ x: inout Tensor) { mapInPlace8(&x, gelu8, geluScalar) }
public func reluInPlace(_ x: inout Tensor) { mapInPlace(&x) { $0 > 0 ? $0 : 0 } }
public func siluInPlace(_ x: inout Tensor) { mapInPlace8(&x, { $0 * sigmoid8($0) }, { $0 * sigmoidScalar($0) }) }
public func sigmoidInPlace(_ x: inout Tensor) { mapInPlace8(&x, sigmoid8, sigmoidScalar) }

public func gelu(_ x: Tensor) -> Tensor { var y = x; geluInPlace(&y); return y }
public func relu(_ x: Tensor) -> Tensor { var y = x; reluInPlace(&y); return y }
public func silu(_ x: Tensor) -> Tensor { var y = x; siluInPlace(&y); return y }
public func sigmoid(_ x: Tensor) -> Tensor { var y = x; sigmoidInPlace(&y); return y }

/// Multiplies every element by `factor`.
public func scaleInPlace(_ x: inout Tensor, by factor: Float) { mapInPlace(&x) { $0 * factor } }
public func scaled(_ x: Tensor, by factor: Float) -> Tensor { var y = x; scaleInPlace(&y, by: factor); return y }

@inline(__always)
private func zipInPlace(_ a: inout Tensor, _ b: Tensor, _ name: String, _ f: (Float, Float) -> Float) {
    precondition(a.shape == b.shape, "\(name): shapes differ, \(a.shape) vs \(b.shape)")
    let n = a.count
    a.withUnsafeMutableBufferPointer { pa in
        b.withUnsafeBufferPointer { pb in
            let x = pa.baseAddress, y = pb.baseAddress
            parallelRanges(n) { range in
                guard let x, let y else { return }
                for i in range { x[i] = f(x[i], y[i]) }
            }
        }
    }
}

/// Elementwise a + b (same shapes; no broadcasting, so shape mistakes fail loudly).
public func addInPlace(_ a: inout Tensor, _ b: Tensor) { zipInPlace(&a, b, "add", +) }
public func add(_ a: Tensor, _ b: Tensor) -> Tensor { var y = a; addInPlace(&y, b); return y }
/// Elementwise a · b (same shapes).
public func mulInPlace(_ a: inout Tensor, _ b: Tensor) { zipInPlace(&a, b, "mul", *) }
public func mul(_ a: Tensor, _ b: Tensor) -> Tensor { var y = a; mulInPlace(&y, b); return y }

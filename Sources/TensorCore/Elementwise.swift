import CKernels

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

/// Applies a CKernels array kernel (vectorized at the CPU's widest level) in parallel chunks.
@inline(__always)
private func kernelInPlace(_ x: inout Tensor, _ kernel: (UnsafeMutablePointer<Float>, Int) -> Void) {
    let n = x.count
    x.withUnsafeMutableBufferPointer { buffer in
        guard let p = buffer.baseAddress else { return }
        parallelRanges(n, grain: 1 << 15) { range in kernel(p + range.lowerBound, range.count) }
    }
}

/// Exact GELU, x·Φ(x) = 0.5·x·(1 + erf(x/√2)) (PyTorch `approximate='none'`); erf by Abramowitz &
/// Stegun 7.1.26, |error| ≤ 1.5e-7, below fp32 resolution of 1 + erf.
public func geluInPlace(_ x: inout Tensor) { kernelInPlace(&x) { ragseg_gelu($0, $1) } }
/// GELU of `count` floats at `p`, on the calling thread (for loops that already run one chunk per worker).
public func geluInPlace(_ p: UnsafeMutablePointer<Float>, count: Int) { ragseg_gelu(p, count) }
public func reluInPlace(_ x: inout Tensor) { kernelInPlace(&x) { ragseg_relu($0, $1) } }
public func reluInPlace(_ p: UnsafeMutablePointer<Float>, count: Int) { ragseg_relu(p, count) }
public func siluInPlace(_ x: inout Tensor) { kernelInPlace(&x) { ragseg_silu($0, $1) } }
public func sigmoidInPlace(_ x: inout Tensor) { kernelInPlace(&x) { ragseg_sigmoid($0, $1) } }

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

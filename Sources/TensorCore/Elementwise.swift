import CKernels

// Pointwise maps. Each has a copying form and an InPlace form; large tensors are split over
// `Threads.count` workers in contiguous chunks (see `parallelRanges`).

/// Runs `kernel(pointer, count)` over contiguous chunks of x in parallel: a CKernels array kernel (vectorized at
/// the CPU's widest level) or a loop written inline. The kernel gets a whole chunk, so its loop compiles as a loop;
/// a closure per element costs a call per element, which made the residual adds several times slower than the
/// memory traffic they need.
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
public func scaleInPlace(_ x: inout Tensor, by factor: Float) {
    kernelInPlace(&x) { p, n in for i in 0..<n { p[i] *= factor } }
}
public func scaled(_ x: Tensor, by factor: Float) -> Tensor { var y = x; scaleInPlace(&y, by: factor); return y }

/// Runs `kernel(a, b, count)` over matching contiguous chunks of a and b, in parallel (a chunk per call, as in
/// `kernelInPlace`).
@inline(__always)
private func zipInPlace(
    _ a: inout Tensor, _ b: Tensor, _ name: String,
    _ kernel: (UnsafeMutablePointer<Float>, UnsafePointer<Float>, Int) -> Void
) {
    precondition(a.shape == b.shape, "\(name): shapes differ, \(a.shape) vs \(b.shape)")
    let n = a.count
    a.withUnsafeMutableBufferPointer { pa in
        b.withUnsafeBufferPointer { pb in
            guard let x = pa.baseAddress, let y = pb.baseAddress else { return }
            parallelRanges(n) { range in kernel(x + range.lowerBound, y + range.lowerBound, range.count) }
        }
    }
}

/// Elementwise a + b (same shapes; no broadcasting, so shape mistakes fail loudly).
public func addInPlace(_ a: inout Tensor, _ b: Tensor) {
    zipInPlace(&a, b, "add") { x, y, n in for i in 0..<n { x[i] += y[i] } }
}
public func add(_ a: Tensor, _ b: Tensor) -> Tensor { var y = a; addInPlace(&y, b); return y }
/// Elementwise a · b (same shapes).
public func mulInPlace(_ a: inout Tensor, _ b: Tensor) {
    zipInPlace(&a, b, "mul") { x, y, n in for i in 0..<n { x[i] *= y[i] } }
}
public func mul(_ a: Tensor, _ b: Tensor) -> Tensor { var y = a; mulInPlace(&y, b); return y }

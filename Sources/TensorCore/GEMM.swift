import CBLAS
import CKernels

/// Row-major single-precision GEMM, C = alpha * op(A) * op(B) + beta * C, through `cblas_sgemm`.
/// op(A) is m x k, op(B) is k x n; transposes are BLAS flags, never copies.
///
/// OpenBLAS runs single-threaded (Parallel.swift); a product worth splitting is cut into one block of
/// rows (or columns) of C per worker, each a single-threaded `cblas_sgemm` on its own core. Rows when
/// m >= n: each worker then re-packs only the smaller operand B. Inside a parallel loop it runs inline.
public func gemm(
    transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
    a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
    beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
) {
    guard m > 0, n > 0 else { return }
    if k == 0 {
        // An empty sum: BLAS implementations disagree on degenerate leading dimensions here.
        for i in 0..<m {
            let row = c + i * ldc
            for j in 0..<n { row[j] = beta == 0 ? 0 : beta * row[j] }
        }
        return
    }
    let workers = Threads.count
    // ~2 MFLOP (10 µs at this machine's per-core rate) before a split pays for the hand-off.
    guard workers > 1, ragseg_parallel_depth() == 0, m * n * k >= 1 << 20, max(m, n) >= 2 * gemmSplitAlignment else {
        sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
        return
    }
    let splitRows = m >= n
    let extent = splitRows ? m : n
    // Block edges on multiples of the kernels' register tile, so no worker gets a ragged edge twice.
    let units = (extent + gemmSplitAlignment - 1) / gemmSplitAlignment
    let parts = min(workers, units)
    parallelFor(parts) { part in
        let start = min(extent, part * units / parts * gemmSplitAlignment)
        let end = min(extent, (part + 1) * units / parts * gemmSplitAlignment)
        guard end > start else { return }
        if splitRows {
            // Rows start..<end of op(A): row i of op(A) is row i of A, or column i of Aᵀ.
            let aPart = transA ? a + start : a + start * lda
            sgemm(transA, transB, end - start, n, k, alpha, aPart, lda, b, ldb, beta, c + start * ldc, ldc)
        } else {
            let bPart = transB ? b + start * ldb : b + start
            sgemm(transA, transB, m, end - start, k, alpha, a, lda, bPart, ldb, beta, c + start, ldc)
        }
    }
}

/// Block edges of a split GEMM fall on multiples of this (OpenBLAS's AVX-512 sgemm register tile is 16 wide).
let gemmSplitAlignment = 16

@inline(__always)
private func sgemm(
    _ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
    _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
    _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int
) {
    cblas_sgemm(
        CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
        blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb),
        beta, c, blasint(ldc))
}

/// 2-D matrix product op(a) · op(b); `transposeA` / `transposeB` read the stored matrix transposed.
public func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
    precondition(a.rank == 2 && b.rank == 2, "matmul needs 2-D tensors, got \(a.shape) and \(b.shape)")
    let m = transposeA ? a.shape[1] : a.shape[0]
    let k = transposeA ? a.shape[0] : a.shape[1]
    let kb = transposeB ? b.shape[1] : b.shape[0]
    let n = transposeB ? b.shape[0] : b.shape[1]
    precondition(
        k == kb,
        "matmul inner dimensions differ: \(a.shape)\(transposeA ? "ᵀ" : "") x \(b.shape)\(transposeB ? "ᵀ" : "")")
    if m == 0 || n == 0 { return Tensor(zeros: [m, n]) }
    return Tensor(shape: [m, n]) { out in
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                gemm(
                    transA: transposeA, transB: transposeB, m: m, n: n, k: k,
                    a: pa.baseAddress!, lda: a.shape[1], b: pb.baseAddress!, ldb: b.shape[1],
                    c: out.baseAddress!, ldc: n)
            }
        }
    }
}

/// PyTorch `nn.Linear`: x [..., in] · weightᵀ + bias, weight [out, in]. One GEMM over all leading rows;
/// with `weightBF16` (the same weight as bf16 bits) a large product runs in bf16 under `Precision.bf16`.
public func linear(_ x: Tensor, weight: Tensor, bias: Tensor?, weightBF16: [UInt16]? = nil) -> Tensor {
    precondition(weight.rank == 2, "linear weight must be [out, in], got \(weight.shape)")
    let inFeatures = weight.shape[1], outFeatures = weight.shape[0]
    precondition(x.rank >= 1 && x.dim(-1) == inFeatures, "linear: input \(x.shape) does not end in \(inFeatures)")
    if let bias { precondition(bias.count == outFeatures, "linear bias has \(bias.count) values, want \(outFeatures)") }
    let rows = x.count / max(inFeatures, 1)
    var shape = x.shape
    shape[shape.count - 1] = outFeatures
    if rows == 0 || outFeatures == 0 { return Tensor(zeros: shape) }
    return Tensor(shape: shape) { out in
        x.withUnsafeBufferPointer { px in
            weight.withUnsafeBufferPointer { pw in
                withOptionalPointers(bias, weightBF16) { pb, pw16 in
                    linearRows(
                        px.baseAddress!, rows: rows, inFeatures: inFeatures, weight: pw.baseAddress!,
                        outFeatures: outFeatures, bias: pb, out: out.baseAddress!, weightBF16: pw16)
                }
            }
        }
    }
}

/// Calls `body` with pointers into an optional bias and an optional bf16 weight (nil for nil).
func withOptionalPointers<R>(
    _ bias: Tensor?, _ bits: [UInt16]?, _ body: (UnsafePointer<Float>?, UnsafePointer<UInt16>?) -> R
) -> R {
    func withBits(_ pb: UnsafePointer<Float>?) -> R {
        guard let bits else { return body(pb, nil) }
        return bits.withUnsafeBufferPointer { body(pb, $0.baseAddress!) }
    }
    guard let bias else { return withBits(nil) }
    return bias.withUnsafeBufferPointer { withBits($0.baseAddress!) }
}

/// out[r] = x[r] · weightᵀ + bias for `rows` rows, or with `accumulate` out[r] += x[r] · weightᵀ + bias (a
/// residual added in place). Large products are split by rows over the workers, each preparing its own rows
/// (bias copied in, or added on) and running its own GEMM with beta = 1, so that pass over the output is
/// parallel and in cache for the GEMM. Also callable from inside a parallel loop, where it runs inline.
/// `weightBF16` (the same weight as bf16 bits): a large product runs in bf16 under `Precision.bf16`.
public func linearRows(
    _ x: UnsafePointer<Float>, rows: Int, inFeatures: Int, weight: UnsafePointer<Float>,
    outFeatures: Int, bias: UnsafePointer<Float>?, out: UnsafeMutablePointer<Float>,
    accumulate: Bool = false, weightBF16: UnsafePointer<UInt16>? = nil
) {
    let bf16 = weightBF16 != nil && runsInBFloat16(m: rows, n: outFeatures, k: inFeatures)
    forRowBlocks(rows, product: rows * outFeatures * inFeatures) { range in
        let start = range.lowerBound, end = range.upperBound
        let c = out + start * outFeatures
        if bf16, let weightBF16 {
            linearRowsBFloat16(
                x + start * inFeatures, rows: end - start, inFeatures: inFeatures, weight: weightBF16,
                outFeatures: outFeatures, bias: bias, out: c, accumulate: accumulate)
            return
        }
        if accumulate {
            if let bias {
                for r in 0..<(end - start) {
                    let row = c + r * outFeatures
                    for j in 0..<outFeatures { row[j] += bias[j] }
                }
            }
        } else if let bias {
            for r in 0..<(end - start) { (c + r * outFeatures).update(from: bias, count: outFeatures) }
        } else {
            c.update(repeating: 0, count: (end - start) * outFeatures)
        }
        gemm(
            transA: false, transB: true, m: end - start, n: outFeatures, k: inFeatures,
            a: x + start * inFeatures, lda: inFeatures, b: weight, ldb: inFeatures,
            beta: 1, c: c, ldc: outFeatures)
    }
}

/// Runs `body` on one block of rows per worker (block edges on multiples of `gemmSplitAlignment`) when the
/// product (`product` multiply-adds) is worth splitting, else on all rows inline. Each block's product then
/// runs on its own core, with whatever per-row preparation it needs done in cache by the same core.
func forRowBlocks(_ rows: Int, product: Int, _ body: (Range<Int>) -> Void) {
    let units = (rows + gemmSplitAlignment - 1) / gemmSplitAlignment
    let parts = product >= 1 << 20 ? min(Threads.count, units) : 1
    parallelFor(parts) { part in
        let start = min(rows, part * units / parts * gemmSplitAlignment)
        let end = min(rows, (part + 1) * units / parts * gemmSplitAlignment)
        if end > start { body(start..<end) }
    }
}

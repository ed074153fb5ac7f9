import CBLAS

/// Row-major single-precision GEMM, C = alpha * op(A) * op(B) + beta * C, straight to `cblas_sgemm`.
/// op(A) is m x k, op(B) is k x n; transposes are BLAS flags, never copies.
public func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                 a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                 beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
    guard m > 0, n > 0 else { return }
    if k == 0 {
        // An empty sum: BLAS implementations disagree on degenerate leading dimensions here.
        for i in 0..<m {
            let row = c + i * ldc
            for j in 0..<n { row[j] = beta == 0 ? 0 : beta * row[j] }
        }
        return
    }
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
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
    precondition(k == kb, "matmul inner dimensions differ: \(a.shape)\(transposeA ? "ᵀ" : "") x \(b.shape)\(transposeB ? "ᵀ" : "")")
    if m == 0 || n == 0 { return Tensor(zeros: [m, n]) }
    return Tensor(shape: [m, n]) { out in
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                gemm(transA: transposeA, transB: transposeB, m: m, n: n, k: k,
                     a: pa.baseAddress!, lda: a.shape[1], b: pb.baseAddress!, ldb: b.shape[1],
                     c: out.baseAddress!, ldc: n)
            }
        }
    }
}

/// PyTorch `nn.Linear`: x [..., in] · weightᵀ + bias, weight [out, in]. One GEMM over all leading rows.
public func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
    precondition(weight.rank == 2, "linear weight must be [out, in], got \(weight.shape)")
    let inFeatures = weight.shape[1], outFeatures = weight.shape[0]
    precondition(x.rank >= 1 && x.dim(-1) == inFeatures, "linear: input \(x.shape) does not end in \(inFeatures)")
    if let bias { precondition(bias.count == outFeatures, "linear bias has \(bias.count) values, want \(outFeatures)") }
    let rows = x.count / max(inFeatures, 1)
    var shape = x.shape
    shape[shape.count - 1] = outFeatures
    if rows == 0 || outFeatures == 0 { return Tensor(zeros: shape) }
    return Tensor(shape: shape) { out in
        let c = out.baseAddress!
        // Start from the bias (or zero) and let the GEMM accumulate into it (beta = 1).
        if let bias {
            bias.withUnsafeBufferPointer { pb in
                for r in 0..<rows { (c + r * outFeatures).update(from: pb.baseAddress!, count: outFeatures) }
            }
        } else {
            out.initialize(repeating: 0)
        }
        x.withUnsafeBufferPointer { px in
            weight.withUnsafeBufferPointer { pw in
                gemm(transA: false, transB: true, m: rows, n: outFeatures, k: inFeatures,
                     a: px.baseAddress!, lda: inFeatures, b: pw.baseAddress!, ldb: inFeatures,
                     beta: 1, c: c, ldc: outFeatures)
            }
        }
    }
}

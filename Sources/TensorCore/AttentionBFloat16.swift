import CDNNL

/// `attention` under `Precision.bf16`: the same query blocks, with Q, K, V rounded to bf16 once and laid out
/// head by head ([B, heads, N, d], dense: oneDNN's bf16 kernels take no strided operands), QKᵀ and PV in bf16
/// with fp32 accumulation, scores, softmax and the final division in fp32. The unnormalized exponentials
/// (all in (0, 1]) are rounded to bf16 for PV, as autocast rounds the probabilities.
func attentionBFloat16(
    query: Tensor, key: Tensor, value: Tensor, batch: Int, heads: Int, alpha: Float, outShape: [Int]
) -> Tensor {
    let nq = query.dim(-2), nk = key.dim(-2)
    let cq = query.dim(-1), cv = value.dim(-1)
    let dq = cq / heads, dv = cv / heads
    let q16 = headMajorBFloat16(query, batch: batch, heads: heads)
    let k16 = headMajorBFloat16(key, batch: batch, heads: heads)
    let v16 = headMajorBFloat16(value, batch: batch, heads: heads)

    let (block, blocks, items, workers) = attentionWorkPlan(queries: nq, keys: nk, batch: batch, heads: heads)

    return Tensor(shape: outShape) { out in
        q16.withUnsafeBufferPointer { pq in
            k16.withUnsafeBufferPointer { pk in
                v16.withUnsafeBufferPointer { pv in
                    let q = pq.baseAddress!, k = pk.baseAddress!, v = pv.baseAddress!, o = out.baseAddress!
                    let run = { (worker: Int, workerCount: Int) in
                        let rowsMax = min(block, nq)
                        let scores = UnsafeMutablePointer<Float>.allocate(capacity: rowsMax * nk)
                        let probabilities = UnsafeMutablePointer<UInt16>.allocate(capacity: rowsMax * nk)
                        let products = UnsafeMutablePointer<Float>.allocate(capacity: rowsMax * dv)
                        let sums = UnsafeMutablePointer<Float>.allocate(capacity: rowsMax)
                        defer {
                            scores.deallocate()
                            probabilities.deallocate()
                            products.deallocate()
                            sums.deallocate()
                        }
                        var item = worker
                        while item < items {
                            let head = item / blocks  // b * heads + h
                            let b = head / heads, h = head % heads
                            let row0 = (item % blocks) * block
                            let rows = min(block, nq - row0)
                            let qBlock = q + (head * nq + row0) * dq
                            let kHead = k + head * nk * dq
                            let vHead = v + head * nk * dv
                            OneDNN.matmul(
                                .bf16, transA: false, transB: true, m: rows, n: nk, k: dq, alpha: alpha,
                                a: qBlock, lda: dq, b: kHead, ldb: dq, c: scores, ldc: nk)
                            // Each row rounded right after its exponentials, while it is still in cache.
                            for r in 0..<rows {
                                sums[r] = softmaxRowUnnormalized(scores + r * nk, nk)
                                ragseg_to_bf16(scores + r * nk, probabilities + r * nk, nk)
                            }
                            OneDNN.matmul(
                                .bf16, transA: false, transB: false, m: rows, n: dv, k: nk,
                                a: probabilities, lda: nk, b: vHead, ldb: dv, c: products, ldc: dv)
                            let oBlock = o + (b * nq + row0) * cv + h * dv
                            for r in 0..<rows {
                                let inv = 1 / sums[r]
                                let p = oBlock + r * cv, s = products + r * dv
                                for j in 0..<dv { p[j] = s[j] * inv }
                            }
                            item += workerCount
                        }
                    }
                    if workers <= 1 {
                        run(0, 1)
                    } else {
                        parallelFor(workers) { w in run(w, workers) }
                    }
                }
            }
        }
    }
}

/// x [B?, N, heads·d] as bf16 bits in [B, heads, N, d] order.
private func headMajorBFloat16(_ x: Tensor, batch: Int, heads: Int) -> [UInt16] {
    let n = x.dim(-2), c = x.dim(-1), d = c / heads
    return [UInt16](unsafeUninitializedCapacity: x.count) { buffer, initialized in
        x.withUnsafeBufferPointer { px in
            let src = px.baseAddress!, dst = buffer.baseAddress!
            parallelFor(batch * heads) { head in
                let b = head / heads, h = head % heads
                ragseg_to_bf16_rows(src + b * n * c + h * d, c, dst + head * n * d, d, n, d)
            }
        }
        initialized = x.count
    }
}

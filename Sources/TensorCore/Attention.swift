/// Scaled dot-product attention, softmax(Q Kᵀ · scale) V, per head, computed in query blocks.
///
/// q [B?, Nq, heads·dq], k [B?, Nk, heads·dq], v [B?, Nk, heads·dv]; head h owns channels
/// h·d ..< (h+1)·d (PyTorch's `view(B, N, heads, d)` split). Returns [B?, Nq, heads·dv].
///
/// Memory stays bounded: for each (batch, head, block of `attentionQueryBlockRows` queries) the scores of
/// that block only ([block, Nk]) are formed by one GEMM reading Q and K in place (leading dimension =
/// full channel count, K transposed by flag), exponentiated max-subtracted, multiplied by V with a
/// second GEMM written straight into the output columns of that head, and the rows are then divided by
/// their exponential sums (cheaper on [block, dv] than on [block, Nk]). The full Nq x Nk matrix is
/// never allocated. Work items are spread over the cores, each running its GEMMs on its own core.
public func attention(query: Tensor, key: Tensor, value: Tensor, heads: Int, scale: Float? = nil) -> Tensor {
    let shape = AttentionShape(query: query.shape, key: key.shape, value: value.shape, heads: heads)
    let batch = shape.batch, nq = shape.queries, nk = shape.keys, dq = shape.queryWidth, dv = shape.valueWidth
    let cq = dq * heads, cv = dv * heads
    let alpha = scale ?? 1 / Float(dq).squareRoot()
    let outShape = shape.output
    if nq == 0 || cv == 0 || nk == 0 { return Tensor(zeros: outShape) }
    if runsInBFloat16(m: batch * heads * nq, n: nk, k: dq) {
        return attentionBFloat16(
            query: query, key: key, value: value, batch: batch, heads: heads, alpha: alpha, outShape: outShape,
            manySmallItems: !runsInBFloat16(m: nq, n: nk, k: dq))
    }

    let (block, blocks, items, workers) = attentionWorkPlan(queries: nq, keys: nk, batch: batch, heads: heads)

    return Tensor(shape: outShape) { out in
        query.withUnsafeBufferPointer { pq in
            key.withUnsafeBufferPointer { pk in
                value.withUnsafeBufferPointer { pv in
                    let q = pq.baseAddress!, k = pk.baseAddress!, v = pv.baseAddress!, o = out.baseAddress!
                    let run = { (worker: Int, workerCount: Int) in
                        // One scores buffer per worker, reused for all its blocks.
                        let scores = UnsafeMutablePointer<Float>.allocate(capacity: min(block, nq) * nk)
                        let sums = UnsafeMutablePointer<Float>.allocate(capacity: min(block, nq))
                        defer { scores.deallocate(); sums.deallocate() }
                        var item = worker
                        while item < items {
                            let b = item / (heads * blocks)
                            let h = (item / blocks) % heads
                            let row0 = (item % blocks) * block
                            let rows = min(block, nq - row0)
                            let qBlock = q + (b * nq + row0) * cq + h * dq
                            let kHead = k + b * nk * cq + h * dq
                            let vHead = v + b * nk * cv + h * dv
                            let oBlock = o + (b * nq + row0) * cv + h * dv
                            gemm(
                                transA: false, transB: true, m: rows, n: nk, k: dq, alpha: alpha,
                                a: qBlock, lda: cq, b: kHead, ldb: cq, c: scores, ldc: nk)
                            softmaxRowsUnnormalized(scores, rows: rows, nk, sums: sums)
                            gemm(
                                transA: false, transB: false, m: rows, n: dv, k: nk,
                                a: scores, lda: nk, b: vHead, ldb: cv, c: oBlock, ldc: cv)
                            for r in 0..<rows {
                                let inv = 1 / sums[r]
                                let p = oBlock + r * cv
                                for j in 0..<dv { p[j] *= inv }
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

/// The sizes of one attention, checked: q [B?, Nq, heads·dq], k [B?, Nk, heads·dq], v [B?, Nk, heads·dv].
struct AttentionShape {
    let batch: Int, queries: Int, keys: Int, queryWidth: Int, valueWidth: Int
    /// [B?, Nq, heads·dv].
    let output: [Int]

    init(query: [Int], key: [Int], value: [Int], heads: Int) {
        let rank = query.count
        precondition(rank == 2 || rank == 3, "attention query must be [B?, N, C], got \(query)")
        precondition(
            key.count == rank && value.count == rank, "attention q/k/v ranks differ: \(query), \(key), \(value)")
        batch = rank == 3 ? query[0] : 1
        if rank == 3 { precondition(key[0] == batch && value[0] == batch, "attention batch sizes differ") }
        queries = query[rank - 2]
        keys = key[rank - 2]
        let cq = query[rank - 1], cv = value[rank - 1]
        precondition(
            heads > 0 && cq % heads == 0 && cv % heads == 0,
            "attention: channels \(cq)/\(cv) not divisible by \(heads) heads")
        precondition(key[rank - 1] == cq, "attention key channels \(key[rank - 1]) != query channels \(cq)")
        precondition(value[rank - 2] == keys, "attention: \(keys) keys but \(value[rank - 2]) values")
        queryWidth = cq / heads
        valueWidth = cv / heads
        var output = query
        output[rank - 1] = cv
        self.output = output
    }
}

/// How `attention` splits its work: `block` queries per block, `blocks` blocks per (batch, head), `items`
/// work items in all, on `workers` workers. Evenly sized blocks: 257 queries become 129 + 128 rather than
/// 256 + 1. When there are few work items, their count is rounded up to a multiple of the workers so that
/// every core gets the same number.
func attentionWorkPlan(queries nq: Int, keys nk: Int, batch: Int, heads: Int) -> (
    block: Int, blocks: Int, items: Int, workers: Int
) {
    let maxRows = attentionQueryBlockRows(keys: nk)
    var blocks = (nq + maxRows - 1) / maxRows
    let workerCount = Threads.count
    if batch * heads * blocks < 16 * workerCount, workerCount > 1 {
        while (batch * heads * blocks) % workerCount != 0 && blocks < nq { blocks += 1 }
    }
    let block = (nq + blocks - 1) / blocks
    blocks = (nq + block - 1) / block
    let items = batch * heads * blocks
    return (block, blocks, items, min(workerCount, items))
}

/// Queries per block in `attention` for `keys` keys: 256, or fewer when 256 rows of scores would pass
/// 32 MiB per worker (over 32768 keys, i.e. memory attention with k > 8). Larger blocks would re-pack each
/// head's keys and values less often, but measured slower: at 1024 x 4096 the scores (16 MiB per worker)
/// no longer stay in the last-level cache between the two GEMMs and the exponentials.
public func attentionQueryBlockRows(keys: Int) -> Int {
    min(256, max(16, attentionScoreBudget / max(keys, 1)))
}

/// Floats in one worker's scores buffer at most (32 MiB), which bounds attention's memory for any length.
public let attentionScoreBudget = 1 << 23

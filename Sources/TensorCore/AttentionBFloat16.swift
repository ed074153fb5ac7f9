import CDNNL
import CKernels
import Foundation

/// `attention` under `Precision.bf16`: Q, K, V rounded to bf16 once and laid out head by head ([B, heads, N, d],
/// dense: oneDNN's bf16 kernels take no strided operands), QKᵀ and PV in bf16 with fp32 accumulation, scores,
/// softmax and the final division in fp32. The unnormalized exponentials (all in (0, 1]) are rounded to bf16 for
/// PV, as autocast rounds the probabilities. Large (batch, head) items run in query blocks and key tiles
/// (`tiledAttentionBFloat16`); `manySmallItems` (each under the size where a oneDNN call pays) run as batched
/// products (`batchedAttentionBFloat16`).
func attentionBFloat16(
    query: Tensor, key: Tensor, value: Tensor, batch: Int, heads: Int, alpha: Float, outShape: [Int],
    manySmallItems: Bool
) -> Tensor {
    let q16 = headMajorBFloat16(query, batch: batch, heads: heads)
    let k16 = headMajorBFloat16(key, batch: batch, heads: heads)
    let v16 = headMajorBFloat16(value, batch: batch, heads: heads)
    return Tensor(shape: outShape) { out in
        runAttentionBFloat16(
            q: q16, k: k16, v: v16, out: UnsafeMutableRawPointer(out.baseAddress!), output: .f32, batch: batch,
            heads: heads, queries: query.dim(-2), keys: key.dim(-2), queryWidth: query.dim(-1) / heads,
            valueWidth: value.dim(-1) / heads, alpha: alpha, manySmallItems: manySmallItems)
    }
}

/// Scaled dot-product attention over bf16 q [B?, Nq, heads·dq], k [B?, Nk, heads·dq], v [B?, Nk, heads·dv]
/// (head h owns channels h·d ..< (h+1)·d, as in `attention`), computed as `attentionBFloat16` computes it. The
/// output [B?, Nq, heads·dv] is rounded to bf16, for an output projection that would round it anyway. With one
/// head the operands are already head-major and are read in place. Runs in bf16 whatever the size (the inputs
/// are bf16 already), on a CPU where `Precision.use(.bf16)` succeeded.
public func attention(
    query: BFloat16Tensor, key: BFloat16Tensor, value: BFloat16Tensor, heads: Int, scale: Float? = nil
) -> BFloat16Tensor {
    let shape = AttentionShape(query: query.shape, key: key.shape, value: value.shape, heads: heads)
    guard shape.queries > 0, shape.keys > 0, shape.valueWidth > 0 else { return BFloat16Tensor(zeros: shape.output) }
    let q16 = headMajor(query, batch: shape.batch, heads: heads)
    let k16 = headMajor(key, batch: shape.batch, heads: heads)
    let v16 = headMajor(value, batch: shape.batch, heads: heads)
    return BFloat16Tensor(shape: shape.output) { out in
        runAttentionBFloat16(
            q: q16, k: k16, v: v16, out: UnsafeMutableRawPointer(out.baseAddress!), output: .bf16,
            batch: shape.batch, heads: heads, queries: shape.queries, keys: shape.keys, queryWidth: shape.queryWidth,
            valueWidth: shape.valueWidth, alpha: scale ?? 1 / Float(shape.queryWidth).squareRoot(),
            manySmallItems: shape.queries * shape.keys * shape.queryWidth < bfloat16MinimumProduct)
    }
}

/// Runs one bf16 attention over head-major operands into `out` ([B, Nq, heads·dv] of `output` type).
private func runAttentionBFloat16(
    q: [UInt16], k: [UInt16], v: [UInt16], out: UnsafeMutableRawPointer, output: OneDNN.ElementType, batch: Int,
    heads: Int, queries: Int, keys: Int, queryWidth: Int, valueWidth: Int, alpha: Float, manySmallItems: Bool
) {
    q.withUnsafeBufferPointer { pq in
        k.withUnsafeBufferPointer { pk in
            v.withUnsafeBufferPointer { pv in
                let operands = BFloat16AttentionOperands(
                    q: pq.baseAddress!, k: pk.baseAddress!, v: pv.baseAddress!, out: out, output: output,
                    batch: batch, heads: heads, queries: queries, keys: keys, queryWidth: queryWidth,
                    valueWidth: valueWidth, alpha: alpha)
                if manySmallItems {
                    batchedAttentionBFloat16(operands)
                } else {
                    tiledAttentionBFloat16(operands)
                }
            }
        }
    }
}

/// One bf16 attention's head-major operands and output, with their sizes. Item i = b · heads + h.
struct BFloat16AttentionOperands {
    let q: UnsafePointer<UInt16>, k: UnsafePointer<UInt16>, v: UnsafePointer<UInt16>
    /// [B, Nq, heads·dv], fp32 or bf16 (`output`).
    let out: UnsafeMutableRawPointer
    let output: OneDNN.ElementType
    let batch: Int, heads: Int, queries: Int, keys: Int, queryWidth: Int, valueWidth: Int
    let alpha: Float

    /// Output rows row0 ..< row0 + rows of item `item` ([B, Nq, heads·dv], that head's columns): the PV
    /// products divided by their exponential sums (in place in `products`, then rounded when the output is bf16).
    @inline(__always)
    func store(item: Int, row0: Int, rows: Int, products: UnsafeMutablePointer<Float>, sums: UnsafePointer<Float>) {
        let b = item / heads, h = item % heads, dv = valueWidth, width = heads * dv
        let offset = (b * queries + row0) * width + h * dv
        for r in 0..<rows {
            let inv = 1 / sums[r]
            let s = products + r * dv
            switch output {
            case .f32:
                let p = out.assumingMemoryBound(to: Float.self) + offset + r * width
                for j in 0..<dv { p[j] = s[j] * inv }
            case .bf16:
                for j in 0..<dv { s[j] *= inv }
                ragseg_to_bf16(s, out.assumingMemoryBound(to: UInt16.self) + offset + r * width, dv)
            }
        }
    }
}

/// Large items in query blocks, keys `attentionKeyTile` at a time, flash-attention style: each tile's scores
/// ([block, tile], 2 MiB) are exponentiated against the row's running maximum, and when a later tile raises the
/// maximum the partial PV sums and exponential sums are rescaled by exp(old − new). The scores of a block then
/// stay in the core's own cache instead of passing through memory five times (GEMM, max, exponentials,
/// rounding, PV): with the memories of k = 8 supports (33,000 keys) a whole block's scores were 32 MiB per
/// worker.
private func tiledAttentionBFloat16(_ x: BFloat16AttentionOperands) {
    let nq = x.queries, nk = x.keys, dq = x.queryWidth, dv = x.valueWidth
    let (block, blocks, items, workers) = attentionWorkPlan(queries: nq, keys: nk, batch: x.batch, heads: x.heads)
    // Even tiles: 4,100 keys become 3 x 1,367 rather than 4 x 1,024 + 4.
    let tileCount = (nk + attentionKeyTile - 1) / attentionKeyTile
    let tile = (nk + tileCount - 1) / tileCount
    let run = { (worker: Int, workerCount: Int) in
        let rowsMax = min(block, nq)
        let scores = UnsafeMutablePointer<Float>.allocate(capacity: rowsMax * tile)
        let probabilities = UnsafeMutablePointer<UInt16>.allocate(capacity: rowsMax * tile)
        let products = UnsafeMutablePointer<Float>.allocate(capacity: rowsMax * dv)
        let sums = UnsafeMutablePointer<Float>.allocate(capacity: rowsMax)
        let maxima = UnsafeMutablePointer<Float>.allocate(capacity: rowsMax)
        defer {
            scores.deallocate()
            probabilities.deallocate()
            products.deallocate()
            sums.deallocate()
            maxima.deallocate()
        }
        var item = worker
        while item < items {
            let head = item / blocks  // b * heads + h
            let row0 = (item % blocks) * block
            let rows = min(block, nq - row0)
            let qBlock = x.q + (head * nq + row0) * dq
            var key0 = 0
            while key0 < nk {
                let keys = min(tile, nk - key0)
                OneDNN.matmul(
                    .bf16, transA: false, transB: true, m: rows, n: keys, k: dq, alpha: x.alpha,
                    a: qBlock, lda: dq, b: x.k + (head * nk + key0) * dq, ldb: dq, c: scores, ldc: keys)
                // Each row's exponentials are rounded to bf16 as they are made (no fp32 row written back).
                for r in 0..<rows {
                    let row = scores + r * keys
                    let tileMax = ragseg_row_max(row, keys)
                    let previous = key0 == 0 ? -Float.infinity : maxima[r]
                    let running = max(previous, tileMax)
                    // A row of -inf so far is shifted by 0, as ragseg_exp_shifted_sum does.
                    let shift = running == -.infinity ? 0 : running
                    let sum = ragseg_exp_minus_sum_bf16(row, keys, shift, probabilities + r * keys)
                    let previousShift = previous == -.infinity ? 0 : previous
                    if key0 == 0 {
                        sums[r] = sum
                    } else if shift != previousShift {
                        let rescale = expf(previousShift - shift)
                        sums[r] = sums[r] * rescale + sum
                        let p = products + r * dv
                        for j in 0..<dv { p[j] *= rescale }
                    } else {
                        sums[r] += sum
                    }
                    maxima[r] = running
                }
                OneDNN.matmul(
                    .bf16, transA: false, transB: false, m: rows, n: dv, k: keys,
                    a: probabilities, lda: keys, b: x.v + (head * nk + key0) * dv, ldb: dv,
                    beta: key0 == 0 ? 0 : 1, c: products, ldc: dv)
                key0 += keys
            }
            x.store(item: head, row0: row0, rows: rows, products: products, sums: sums)
            item += workerCount
        }
    }
    if workers <= 1 {
        run(0, 1)
    } else {
        parallelFor(workers) { w in run(w, workers) }
    }
}

/// Many small items (Hiera's 4,096 windows of 64 tokens, the mask decoder's 8 heads of a few prompt tokens),
/// each under the size where one oneDNN call pays: QKᵀ and PV run as batched products, `group` items per call
/// (about 1 MiB of scores), instead of one fp32 sgemm per item.
private func batchedAttentionBFloat16(_ x: BFloat16AttentionOperands) {
    let nq = x.queries, nk = x.keys, dq = x.queryWidth, dv = x.valueWidth
    let items = x.batch * x.heads
    let group = max(1, min(items, (1 << 18) / max(nq * nk, 1)))
    let groups = (items + group - 1) / group
    parallelFor(groups) { g in
        let first = g * group, count = min(group, items - first)
        let scores = UnsafeMutablePointer<Float>.allocate(capacity: count * nq * nk)
        let probabilities = UnsafeMutablePointer<UInt16>.allocate(capacity: count * nq * nk)
        let products = UnsafeMutablePointer<Float>.allocate(capacity: count * nq * dv)
        let sums = UnsafeMutablePointer<Float>.allocate(capacity: count * nq)
        defer {
            scores.deallocate()
            probabilities.deallocate()
            products.deallocate()
            sums.deallocate()
        }
        OneDNN.matmulBatched(
            .bf16, batch: count, transB: true, m: nq, n: nk, k: dq, alpha: x.alpha,
            a: x.q + first * nq * dq, b: x.k + first * nk * dq, c: scores)
        // Each row shifted by its maximum (a row of -inf by 0, as ragseg_exp_shifted_sum does).
        ragseg_exp_minus_max_sum_bf16_rows(scores, count * nq, nk, probabilities, sums)
        OneDNN.matmulBatched(
            .bf16, batch: count, transB: false, m: nq, n: dv, k: nk, a: probabilities,
            b: x.v + first * nk * dv, c: products)
        for i in 0..<count {
            x.store(item: first + i, row0: 0, rows: nq, products: products + i * nq * dv, sums: sums + i * nq)
        }
    }
}

/// Keys per tile in bf16 attention: 256 query rows of 2,048 fp32 scores are 2 MiB, within one core's share of
/// the last-level cache. At k = 8 supports (33,000 keys) memory attention took 6-9 % less time than with whole
/// rows of keys (Zen 5, `ragseg-bench query`); 512 and 1,024 keys per tile measured no better than 2,048.
let attentionKeyTile = 2048

/// x [B?, N, heads·d] in [B, heads, N, d] order; with one head that is x's own order, and x's storage is used.
private func headMajor(_ x: BFloat16Tensor, batch: Int, heads: Int) -> [UInt16] {
    if heads == 1 { return x.bits }
    return x.withUnsafeBufferPointer { px in
        headMajorBits(count: x.count, rows: x.dim(-2), channels: x.dim(-1), batch: batch, heads: heads) {
            from, rows, stride, to, width in
            ragseg_copy_rows_u16(px.baseAddress! + from, stride, to, width, rows, width)
        }
    }
}

/// x [B?, N, heads·d] as bf16 bits in [B, heads, N, d] order.
private func headMajorBFloat16(_ x: Tensor, batch: Int, heads: Int) -> [UInt16] {
    x.withUnsafeBufferPointer { px in
        headMajorBits(count: x.count, rows: x.dim(-2), channels: x.dim(-1), batch: batch, heads: heads) {
            from, rows, stride, to, width in
            ragseg_to_bf16_rows(px.baseAddress! + from, stride, to, width, rows, width)
        }
    }
}

/// The head-major bf16 layout of `count` values [B, N, heads·d], each (b, h) slice written by
/// `move(sourceOffset, rows, sourceStride, destination, width)`, the slices spread over the workers.
private func headMajorBits(
    count: Int, rows n: Int, channels c: Int, batch: Int, heads: Int,
    _ move: (Int, Int, Int, UnsafeMutablePointer<UInt16>, Int) -> Void
) -> [UInt16] {
    let d = c / heads
    return [UInt16](unsafeUninitializedCapacity: count) { buffer, initialized in
        let dst = buffer.baseAddress!
        parallelFor(batch * heads) { head in
            let b = head / heads, h = head % heads
            move(b * n * c + h * d, n, c, dst + head * n * d, d)
        }
        initialized = count
    }
}

import CDNNL

/// LayerNorm over the last axis (biased variance, PyTorch `nn.LayerNorm`), with optional affine
/// weight/bias of the last axis' length. Two passes (mean, then the mean-subtracted squares) in eight
/// fp32 lanes: the lanes keep the partial sums short enough for full fp32 accuracy at any width the
/// models use, and unlike a scalar Double loop they vectorize (this op ran at 4% of the SAM 2 encoder).
public func layerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float) -> Tensor {
    if x.count == 0 { return x }
    let c = x.dim(-1)
    // Out of place: one read and one write per element (a copy first would add a full pass).
    return Tensor(shape: x.shape) { po in
        let out = po.baseAddress!
        forEachLayerNormRange(x, weight: weight, bias: bias, eps: eps) { rows, normalize in
            for r in rows { normalize(r, out + r * c) }
        }
    }
}

/// `layerNorm` with its output rounded to bf16 (ties to even), for a consumer that is a bf16 product and would
/// round it anyway: each row is normalized into a scratch row in L1 and rounded from there, so the fp32 output
/// never reaches memory.
public func layerNormBFloat16(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float) -> BFloat16Tensor {
    if x.count == 0 { return BFloat16Tensor(zeros: x.shape) }
    let c = x.dim(-1)
    return BFloat16Tensor(shape: x.shape) { po in
        let out = po.baseAddress!
        forEachLayerNormRange(x, weight: weight, bias: bias, eps: eps) { rows, normalize in
            let row = UnsafeMutablePointer<Float>.allocate(capacity: c)
            defer { row.deallocate() }
            for r in rows {
                normalize(r, row)
                ragseg_to_bf16(row, out + r * c, c)
            }
        }
    }
}

/// Checks layer norm's operands and calls `body` with ranges of x's rows over the workers, and a function that
/// writes the normalized row r to a destination.
private func forEachLayerNormRange(
    _ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float,
    _ body: (Range<Int>, (Int, UnsafeMutablePointer<Float>) -> Void) -> Void
) {
    precondition(x.rank >= 1, "layerNorm needs at least one axis")
    let c = x.dim(-1)
    if let weight { precondition(weight.count == c, "layerNorm weight has \(weight.count) values, want \(c)") }
    if let bias { precondition(bias.count == c, "layerNorm bias has \(bias.count) values, want \(c)") }
    guard c > 0 else { return }
    let rows = x.count / c
    let ones = weight == nil ? Tensor(repeating: 1, shape: [c]) : nil
    let zeros = bias == nil ? Tensor(zeros: [c]) : nil
    x.withUnsafeBufferPointer { px in
        (weight ?? ones!).withUnsafeBufferPointer { pw in
            (bias ?? zeros!).withUnsafeBufferPointer { pb in
                let input = px.baseAddress!, w = pw.baseAddress!, b = pb.baseAddress!
                parallelRanges(rows, grain: max(1, (1 << 15) / c)) { range in
                    body(range) { r, out in layerNormRow(input + r * c, out, c, w, b, eps) }
                }
            }
        }
    }
}

@inline(__always)
private func layerNormRow(
    _ input: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ c: Int,
    _ w: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ eps: Float
) {
    let raw = UnsafeRawPointer(input), outRaw = UnsafeMutableRawPointer(out)
    let vectorEnd = c & ~7
    var sum8 = SIMD8<Float>(repeating: 0)
    var j = 0
    while j < vectorEnd { sum8 += raw.loadUnaligned(fromByteOffset: j * 4, as: SIMD8<Float>.self); j += 8 }
    var sum = sum8.sum()
    for t in vectorEnd..<c { sum += input[t] }
    let mean = sum / Float(c)
    var sq8 = SIMD8<Float>(repeating: 0)
    j = 0
    while j < vectorEnd {
        let d = raw.loadUnaligned(fromByteOffset: j * 4, as: SIMD8<Float>.self) - mean
        sq8 += d * d
        j += 8
    }
    var sq = sq8.sum()
    for t in vectorEnd..<c { let d = input[t] - mean; sq += d * d }
    let inv = 1 / (sq / Float(c) + eps).squareRoot()
    let wRaw = UnsafeRawPointer(w), bRaw = UnsafeRawPointer(b)
    j = 0
    while j < vectorEnd {
        let v = (raw.loadUnaligned(fromByteOffset: j * 4, as: SIMD8<Float>.self) - mean) * inv
        let y =
            v * wRaw.loadUnaligned(fromByteOffset: j * 4, as: SIMD8<Float>.self)
            + bRaw.loadUnaligned(fromByteOffset: j * 4, as: SIMD8<Float>.self)
        outRaw.storeBytes(of: y, toByteOffset: j * 4, as: SIMD8<Float>.self)
        j += 8
    }
    for t in vectorEnd..<c { out[t] = (input[t] - mean) * inv * w[t] + b[t] }
}

/// SAM's `LayerNorm2d`: normalizes over the channel axis of [C, H, W] or [N, C, H, W] at every pixel,
/// then applies per-channel weight/bias. Channels are strided by H·W, so statistics are
/// accumulated a channel plane at a time into per-pixel accumulators (contiguous, vectorizable).
public func layerNorm2d(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float) -> Tensor {
    precondition(x.rank == 3 || x.rank == 4, "layerNorm2d needs [C,H,W] or [N,C,H,W], got \(x.shape)")
    let batch = x.rank == 4 ? x.shape[0] : 1
    let c = x.dim(-3), hw = x.dim(-2) * x.dim(-1)
    if let weight { precondition(weight.count == c, "layerNorm2d weight has \(weight.count) values, want \(c)") }
    if let bias { precondition(bias.count == c, "layerNorm2d bias has \(bias.count) values, want \(c)") }
    var out = x
    let w = weight?.data, b = bias?.data
    out.withUnsafeMutableBufferPointer { po in
        guard let base = po.baseAddress, c > 0, hw > 0 else { return }
        // Work items are (image, column block of pixels) so both cores stay busy on one image.
        let block = 1024
        let blocksPerImage = (hw + block - 1) / block
        parallelFor(batch * blocksPerImage) { item in
            let n = item / blocksPerImage
            let start = (item % blocksPerImage) * block
            let len = min(block, hw - start)
            let img = base + n * c * hw + start
            var mean = [Double](repeating: 0, count: len)
            var sq = [Double](repeating: 0, count: len)
            mean.withUnsafeMutableBufferPointer { mp in
                sq.withUnsafeMutableBufferPointer { sp in
                    let m = mp.baseAddress!, s = sp.baseAddress!
                    for ch in 0..<c {
                        let p = img + ch * hw
                        for i in 0..<len { m[i] += Double(p[i]) }
                    }
                    for i in 0..<len { m[i] /= Double(c) }
                    for ch in 0..<c {
                        let p = img + ch * hw
                        for i in 0..<len { let d = Double(p[i]) - m[i]; s[i] += d * d }
                    }
                    for i in 0..<len { s[i] = 1 / (s[i] / Double(c) + Double(eps)).squareRoot() }
                    for ch in 0..<c {
                        let p = img + ch * hw
                        let wc = w?[ch] ?? 1, bc = b?[ch] ?? 0
                        for i in 0..<len { p[i] = Float((Double(p[i]) - m[i]) * s[i]) * wc + bc }
                    }
                }
            }
        }
    }
    return out
}

/// LayerNorm over the last axis (biased variance, PyTorch `nn.LayerNorm`), with optional affine
/// weight/bias of the last axis' length. Statistics accumulate in Double: rows can be long
/// (up to thousands of channels) and the mean-subtracted two-pass form keeps the variance exact.
public func layerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float) -> Tensor {
    precondition(x.rank >= 1, "layerNorm needs at least one axis")
    let c = x.dim(-1)
    if let weight { precondition(weight.count == c, "layerNorm weight has \(weight.count) values, want \(c)") }
    if let bias { precondition(bias.count == c, "layerNorm bias has \(bias.count) values, want \(c)") }
    let rows = c == 0 ? 0 : x.count / c
    var out = x
    let w = weight?.data, b = bias?.data
    out.withUnsafeMutableBufferPointer { po in
        guard let base = po.baseAddress else { return }
        parallelRanges(rows, grain: max(1, (1 << 15) / max(c, 1))) { range in
            for r in range {
                let p = base + r * c
                var sum: Double = 0
                for j in 0..<c { sum += Double(p[j]) }
                let mean = sum / Double(c)
                var sq: Double = 0
                for j in 0..<c { let d = Double(p[j]) - mean; sq += d * d }
                let inv = Float(1 / (sq / Double(c) + Double(eps)).squareRoot())
                let m = Float(mean)
                for j in 0..<c {
                    var v = (p[j] - m) * inv
                    if let w { v *= w[j] }
                    if let b { v += b[j] }
                    p[j] = v
                }
            }
        }
    }
    return out
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

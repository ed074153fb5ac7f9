/// Resampling kernels of `interpolate`.
public enum ResampleMode: Sendable {
    case nearest, bilinear, bicubic
}

/// PyTorch `F.interpolate(x, size=(height, width), mode=..., align_corners=False, antialias=...)`
/// on the last two axes of x [..., H, W].
public func interpolate(_ x: Tensor, size: (height: Int, width: Int), mode: ResampleMode, antialias: Bool = false)
    -> Tensor
{
    resample(x, outHeight: size.height, outWidth: size.width, scales: (nil, nil), mode: mode, antialias: antialias)
}

/// PyTorch `F.interpolate(x, scale_factor=(sh, sw), ...)` (recompute_scale_factor unset): the output is
/// floor(in · factor), and — unlike the size form — the coordinate mapping uses 1/factor itself, not in/out.
/// (DINOv2's position-embedding resize depends on exactly this.)
public func interpolate(
    _ x: Tensor, scaleFactor: (height: Double, width: Double), mode: ResampleMode, antialias: Bool = false
) -> Tensor {
    precondition(x.rank >= 2, "interpolate needs [..., H, W], got \(x.shape)")
    precondition(scaleFactor.height > 0 && scaleFactor.width > 0, "interpolate: scale factors must be positive")
    let outHeight = Int((Double(x.dim(-2)) * scaleFactor.height).rounded(.down))
    let outWidth = Int((Double(x.dim(-1)) * scaleFactor.width).rounded(.down))
    return resample(
        x, outHeight: outHeight, outWidth: outWidth, scales: (scaleFactor.height, scaleFactor.width),
        mode: mode, antialias: antialias)
}

/// One axis' resampling as a fixed number of taps per output: output o reads
/// input[index[o·taps + t]] with weight[o·taps + t]. Unused taps carry weight 0.
struct ResampleTaps {
    var taps: Int
    var index: [Int]
    var weight: [Float]
}

/// PyTorch's `area_pixel_compute_scale` for align_corners = False: 1/factor when a factor was given,
/// else in/out, as a float.
private func sourceScale(input: Int, output: Int, factor: Double?) -> Float {
    if let factor, factor > 0 { return Float(1.0 / factor) }
    return Float(input) / Float(output)
}

/// Keys cubic convolution weights for |x| ≤ 1 and 1 < |x| < 2 (PyTorch's cubic_convolution1/2).
@inline(__always) private func cubic1(_ x: Float, _ a: Float) -> Float { ((a + 2) * x - (a + 3)) * x * x + 1 }
@inline(__always) private func cubic2(_ x: Float, _ a: Float) -> Float { ((a * x - 5 * a) * x + 8 * a) * x - 4 * a }

func resampleTaps(input: Int, output: Int, factor: Double?, mode: ResampleMode, antialias: Bool) -> ResampleTaps {
    let scale = sourceScale(input: input, output: output, factor: factor)
    switch (mode, antialias) {
    case (.nearest, _):
        var index = [Int](repeating: 0, count: output)
        for o in 0..<output {
            if output == input {
                index[o] = o
            } else if output == 2 * input {
                index[o] = o >> 1
            } else {
                index[o] = min(Int((Float(o) * scale).rounded(.down)), input - 1)
            }
        }
        return ResampleTaps(taps: 1, index: index, weight: [Float](repeating: 1, count: output))
    case (.bilinear, false):
        var t = ResampleTaps(
            taps: 2, index: [Int](repeating: 0, count: 2 * output), weight: [Float](repeating: 0, count: 2 * output))
        for o in 0..<output {
            // Source coordinate of the output pixel centre, clamped at 0 for linear modes.
            let src = max(scale * (Float(o) + 0.5) - 0.5, 0)
            let i0 = min(Int(src.rounded(.down)), input - 1)
            let lambda = min(max(src - Float(i0), 0), 1)
            t.index[2 * o] = i0
            t.index[2 * o + 1] = i0 < input - 1 ? i0 + 1 : i0
            t.weight[2 * o] = 1 - lambda
            t.weight[2 * o + 1] = lambda
        }
        return t
    case (.bicubic, false):
        let a: Float = -0.75
        var t = ResampleTaps(
            taps: 4, index: [Int](repeating: 0, count: 4 * output), weight: [Float](repeating: 0, count: 4 * output))
        for o in 0..<output {
            // No clamp of the source coordinate for cubic; the tap indices are clamped instead.
            let src = scale * (Float(o) + 0.5) - 0.5
            let i0 = min(Int(src.rounded(.down)), input - 1)
            let frac = min(max(src - Float(i0), 0), 1)
            let w: [Float] = [cubic2(frac + 1, a), cubic1(frac, a), cubic1(1 - frac, a), cubic2(2 - frac, a)]
            for j in 0..<4 {
                t.index[4 * o + j] = max(0, min(i0 - 1 + j, input - 1))
                t.weight[4 * o + j] = w[j]
            }
        }
        return t
    case (.bilinear, true), (.bicubic, true):
        // PIL-style antialiasing (PyTorch `_upsample_*_aa`): the filter is stretched by the scale when
        // downsampling, its window truncated at the borders and the weights renormalized.
        let interpSize: Float = mode == .bilinear ? 2 : 4
        let support: Float = scale >= 1 ? interpSize * 0.5 * scale : interpSize * 0.5
        let invScale: Float = scale >= 1 ? 1 / scale : 1
        let filter: (Float) -> Float =
            mode == .bilinear
            ? { x in
                let ax = abs(x); return ax < 1 ? 1 - ax : 0
            }
            : { x in
                let ax = abs(x); return ax < 1 ? cubic1(ax, -0.5) : (ax < 2 ? cubic2(ax, -0.5) : 0)
            }
        let taps = Int(support.rounded(.up)) * 2 + 1
        var t = ResampleTaps(
            taps: taps, index: [Int](repeating: 0, count: taps * output),
            weight: [Float](repeating: 0, count: taps * output))
        for o in 0..<output {
            // C++ promotes these expressions through double before truncating; mirror that.
            let center = Float(Double(scale) * (Double(o) + 0.5))
            let xmin = max(Int(Double(center) - Double(support) + 0.5), 0)
            let xsize = min(Int(Double(center) + Double(support) + 0.5), input) - xmin
            var total: Float = 0
            var w = [Float](repeating: 0, count: taps)
            for j in 0..<min(xsize, taps) {
                w[j] = filter(Float((Double(Float(j + xmin) - center) + 0.5) * Double(invScale)))
                total += w[j]
            }
            for j in 0..<min(xsize, taps) {
                t.index[taps * o + j] = xmin + j
                t.weight[taps * o + j] = total != 0 ? w[j] / total : 0
            }
        }
        return t
    }
}

func resample(
    _ x: Tensor, outHeight: Int, outWidth: Int, scales: (Double?, Double?), mode: ResampleMode, antialias: Bool
) -> Tensor {
    precondition(x.rank >= 2, "interpolate needs [..., H, W], got \(x.shape)")
    precondition(!(antialias && mode == .nearest), "interpolate: antialias needs bilinear or bicubic mode")
    precondition(
        outHeight > 0 && outWidth > 0, "interpolate: output size must be positive, got \(outHeight)x\(outWidth)")
    let h = x.dim(-2), w = x.dim(-1)
    precondition(h > 0 && w > 0, "interpolate: empty input \(x.shape)")
    let planes = x.count / (h * w)
    var shape = x.shape
    shape[shape.count - 2] = outHeight
    shape[shape.count - 1] = outWidth
    if planes == 0 { return Tensor(zeros: shape) }
    let across = resampleTaps(input: w, output: outWidth, factor: scales.1, mode: mode, antialias: antialias)
    let down = resampleTaps(input: h, output: outHeight, factor: scales.0, mode: mode, antialias: antialias)

    // Pass 1, along W: [planes·H, W] -> [planes·H, outW].
    let rowsIn = planes * h
    var tmp = [Float](repeating: 0, count: rowsIn * outWidth)
    x.withUnsafeBufferPointer { px in
        tmp.withUnsafeMutableBufferPointer { pt in
            across.index.withUnsafeBufferPointer { idx in
                across.weight.withUnsafeBufferPointer { wt in
                    let src = px.baseAddress!, dst = pt.baseAddress!, taps = across.taps
                    parallelRanges(rowsIn, grain: max(1, 8192 / max(outWidth * taps, 1))) { range in
                        for r in range {
                            let s = src + r * w, d = dst + r * outWidth
                            for o in 0..<outWidth {
                                var acc: Float = 0
                                for t in 0..<taps { acc += wt[o * taps + t] * s[idx[o * taps + t]] }
                                d[o] = acc
                            }
                        }
                    }
                }
            }
        }
    }
    // Pass 2, along H: for each output row, a weighted sum of whole input rows (contiguous, vectorizable).
    return Tensor(shape: shape) { out in
        let po = out.baseAddress!
        tmp.withUnsafeBufferPointer { pt in
            down.index.withUnsafeBufferPointer { idx in
                down.weight.withUnsafeBufferPointer { wt in
                    let src = pt.baseAddress!, taps = down.taps
                    parallelRanges(planes * outHeight, grain: max(1, 8192 / max(outWidth * taps, 1))) { range in
                        for r in range {
                            let p = r / outHeight, o = r % outHeight
                            let d = po + r * outWidth
                            d.initialize(repeating: 0, count: outWidth)
                            for t in 0..<taps {
                                let weight = wt[o * taps + t]
                                if weight == 0 { continue }
                                let s = src + (p * h + idx[o * taps + t]) * outWidth
                                for j in 0..<outWidth { d[j] += weight * s[j] }
                            }
                        }
                    }
                }
            }
        }
    }
}

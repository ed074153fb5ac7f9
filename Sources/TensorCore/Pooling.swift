/// 2x2 max pooling, stride 2, floor mode (odd trailing rows/columns dropped, as PyTorch).
/// x [C, H, W] or [N, C, H, W].
public func maxPool2x2(_ x: Tensor) -> Tensor {
    precondition(x.rank == 3 || x.rank == 4, "maxPool2x2 input must be [C,H,W] or [N,C,H,W], got \(x.shape)")
    let h = x.dim(-2), w = x.dim(-1)
    let planes = x.count / max(h * w, 1)
    let ho = h / 2, wo = w / 2
    var shape = x.shape
    shape[shape.count - 2] = ho
    shape[shape.count - 1] = wo
    if planes == 0 || ho == 0 || wo == 0 { return Tensor(zeros: shape) }
    return Tensor(shape: shape) { out in
        let po = out.baseAddress!
        x.withUnsafeBufferPointer { px in
            let xs = px.baseAddress!
            parallelFor(planes) { p in
                let src = xs + p * h * w, dst = po + p * ho * wo
                for oy in 0..<ho {
                    let r0 = src + 2 * oy * w, r1 = r0 + w
                    for ox in 0..<wo {
                        dst[oy * wo + ox] = max(max(r0[2 * ox], r0[2 * ox + 1]), max(r1[2 * ox], r1[2 * ox + 1]))
                    }
                }
            }
        }
    }
}

/// 2x2 max pooling, stride 2, floor mode, on a channels-last [H, W, C] tensor (Hiera's layout).
public func maxPool2x2ChannelsLast(_ x: Tensor) -> Tensor {
    precondition(x.rank == 3, "maxPool2x2ChannelsLast input must be [H,W,C], got \(x.shape)")
    let h = x.shape[0], w = x.shape[1], c = x.shape[2]
    let ho = h / 2, wo = w / 2
    if ho == 0 || wo == 0 || c == 0 { return Tensor(zeros: [ho, wo, c]) }
    return Tensor(shape: [ho, wo, c]) { out in
        let po = out.baseAddress!
        x.withUnsafeBufferPointer { px in
            let xs = px.baseAddress!
            parallelFor(ho) { oy in
                for ox in 0..<wo {
                    let a = xs + ((2 * oy) * w + 2 * ox) * c, b = a + c
                    let d = a + w * c, e = d + c
                    let dst = po + (oy * wo + ox) * c
                    for k in 0..<c { dst[k] = max(max(a[k], b[k]), max(d[k], e[k])) }
                }
            }
        }
    }
}

/// 2-D convolution (PyTorch `nn.Conv2d`, cross-correlation, zero padding).
/// x [C, H, W] or [N, C, H, W]; weight [O, C/groups, kh, kw]; bias [O].
///
/// Three paths: depthwise (groups == C == O) runs direct loops per channel (a GEMM with k = kh·kw
/// per channel would be all overhead); 1x1 stride-1 unpadded convs are a single GEMM on the input
/// as is; everything else unfolds tiles of output rows into im2col columns [C/groups·kh·kw, rows·Wo]
/// and multiplies each tile by the group's weight [O/groups, C/groups·kh·kw] with one GEMM. Tiles keep
/// the column buffer cache-sized (and memory bounded for large images) and are spread over the cores,
/// each worker with its own buffer and single-threaded BLAS.
public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int = 1, padding: Int = 0, groups: Int = 1)
    -> Tensor
{
    precondition(x.rank == 3 || x.rank == 4, "conv2d input must be [C,H,W] or [N,C,H,W], got \(x.shape)")
    precondition(weight.rank == 4, "conv2d weight must be [O, C/groups, kh, kw], got \(weight.shape)")
    precondition(stride >= 1 && padding >= 0 && groups >= 1, "conv2d: bad stride/padding/groups")
    let batch = x.rank == 4 ? x.shape[0] : 1
    let c = x.dim(-3), h = x.dim(-2), w = x.dim(-1)
    let o = weight.shape[0], cg = weight.shape[1], kh = weight.shape[2], kw = weight.shape[3]
    precondition(
        c % groups == 0 && o % groups == 0 && cg == c / groups,
        "conv2d: input has \(c) channels, weight \(weight.shape) with \(groups) groups")
    if let bias { precondition(bias.count == o, "conv2d bias has \(bias.count) values, want \(o)") }
    let ho = (h + 2 * padding - kh) / stride + 1, wo = (w + 2 * padding - kw) / stride + 1
    precondition(ho > 0 && wo > 0, "conv2d: kernel \(kh)x\(kw) larger than padded input \(h)x\(w)")
    let outShape = x.rank == 4 ? [batch, o, ho, wo] : [o, ho, wo]
    let og = o / groups
    let plane = ho * wo
    let geometry = ConvGeometry(c: cg, h: h, w: w, kh: kh, kw: kw, stride: stride, padding: padding, ho: ho, wo: wo)

    return Tensor(shape: outShape) { out in
        let po = out.baseAddress!
        // Bias first: the GEMMs accumulate onto it (beta = 1), the depthwise loops start from it.
        for n in 0..<batch {
            for oc in 0..<o {
                let value = bias?.data[oc] ?? 0
                (po + (n * o + oc) * plane).initialize(repeating: value, count: plane)
            }
        }
        x.withUnsafeBufferPointer { px in
            weight.withUnsafeBufferPointer { pw in
                let xs = px.baseAddress!, ws = pw.baseAddress!
                if groups == c && cg == 1 && og == 1 {
                    depthwise(xs, ws, po, batch: batch, channels: c, geometry)
                    return
                }
                let kdim = cg * kh * kw
                if kh == 1 && kw == 1 && stride == 1 && padding == 0 {
                    for n in 0..<batch {
                        for g in 0..<groups {
                            gemm(
                                transA: false, transB: false, m: og, n: plane, k: kdim,
                                a: ws + g * og * kdim, lda: kdim, b: xs + (n * c + g * cg) * h * w, ldb: plane,
                                beta: 1, c: po + (n * o + g * og) * plane, ldc: plane)
                        }
                    }
                    return
                }
                // About 1 Mi floats (4 MiB) of columns per tile, whole output rows.
                let tileRows = max(1, min(ho, (1 << 20) / max(kdim * wo, 1)))
                let tiles = (ho + tileRows - 1) / tileRows
                let items = batch * groups * tiles
                let workers = min(Threads.count, items)
                let work = { (worker: Int) in
                    let columns = UnsafeMutablePointer<Float>.allocate(capacity: kdim * tileRows * wo)
                    defer { columns.deallocate() }
                    var item = worker
                    while item < items {
                        let n = item / (groups * tiles), g = (item / tiles) % groups
                        let row0 = (item % tiles) * tileRows, rows = min(tileRows, ho - row0)
                        im2col(xs + (n * c + g * cg) * h * w, columns, geometry, outputRows: row0..<(row0 + rows))
                        gemm(
                            transA: false, transB: false, m: og, n: rows * wo, k: kdim,
                            a: ws + g * og * kdim, lda: kdim, b: columns, ldb: rows * wo,
                            beta: 1, c: po + (n * o + g * og) * plane + row0 * wo, ldc: plane)
                        item += workers
                    }
                }
                if workers <= 1 {
                    work(0)
                } else {
                    parallelFor(workers) { work($0) }
                }
            }
        }
    }
}

struct ConvGeometry {
    var c, h, w, kh, kw, stride, padding, ho, wo: Int
}

/// Unfolds output rows `outputRows` of one group's input [c, h, w] into columns
/// [c·kh·kw, rows·wo] (row = (channel, ky, kx)), zero where the window hangs over the padding.
func im2col(
    _ x: UnsafePointer<Float>, _ columns: UnsafeMutablePointer<Float>, _ g: ConvGeometry, outputRows: Range<Int>
) {
    let rows = g.c * g.kh * g.kw
    let plane = outputRows.count * g.wo
    for row in 0..<rows {
        let ch = row / (g.kh * g.kw), ky = (row / g.kw) % g.kh, kx = row % g.kw
        let src = x + ch * g.h * g.w
        let dst = columns + row * plane
        for oy in outputRows {
            let iy = oy * g.stride - g.padding + ky
            let d = dst + (oy - outputRows.lowerBound) * g.wo
            if iy < 0 || iy >= g.h {
                d.initialize(repeating: 0, count: g.wo)
                continue
            }
            let line = src + iy * g.w
            if g.stride == 1 {
                // Contiguous run: zero the overhang, copy the inside.
                let ix0 = kx - g.padding
                let lo = max(0, -ix0), hi = min(g.wo, g.w - ix0)
                if lo > 0 { d.initialize(repeating: 0, count: min(lo, g.wo)) }
                if hi > lo { (d + lo).initialize(from: line + ix0 + lo, count: hi - lo) }
                if hi < g.wo { (d + max(hi, lo)).initialize(repeating: 0, count: g.wo - max(hi, lo)) }
            } else {
                // Strided: valid ox satisfy 0 <= ox·stride + kx - padding < w; the rest is padding.
                let offset = kx - g.padding
                let lo = min(g.wo, offset >= 0 ? 0 : (-offset + g.stride - 1) / g.stride)
                let hi = max(lo, min(g.wo, g.w - offset > 0 ? (g.w - offset - 1) / g.stride + 1 : 0))
                for ox in 0..<lo { d[ox] = 0 }
                var ix = lo * g.stride + offset
                for ox in lo..<hi { d[ox] = line[ix]; ix += g.stride }
                for ox in hi..<g.wo { d[ox] = 0 }
            }
        }
    }
}

/// Depthwise convolution (one filter per channel), direct loops; the output already holds the bias.
/// For each kernel tap the valid output column range is computed once, leaving a branch-free inner loop.
func depthwise(
    _ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
    batch: Int, channels: Int, _ g: ConvGeometry
) {
    if g.stride == 1 {
        depthwiseStride1(x, weight, out, batch: batch, channels: channels, g)
        return
    }
    parallelFor(batch * channels) { item in
        let ch = item % channels
        let src = x + item * g.h * g.w
        let dst = out + item * g.ho * g.wo
        let filter = weight + ch * g.kh * g.kw
        for oy in 0..<g.ho {
            let row = dst + oy * g.wo
            for ky in 0..<g.kh {
                let iy = oy * g.stride - g.padding + ky
                if iy < 0 || iy >= g.h { continue }
                let line = src + iy * g.w
                for kx in 0..<g.kw {
                    let wv = filter[ky * g.kw + kx]
                    let offset = kx - g.padding
                    // Valid ox: 0 <= ox·stride + offset < w.
                    let lo = offset >= 0 ? 0 : (-offset + g.stride - 1) / g.stride
                    let hi = min(g.wo, g.w - offset > 0 ? (g.w - offset - 1) / g.stride + 1 : 0)
                    if lo >= hi { continue }
                    for ox in lo..<hi { row[ox] += wv * line[ox * g.stride + offset] }
                }
            }
        }
    }
}

/// Stride-1 depthwise conv: each channel is copied once into a zero-padded plane, then every run of
/// 8 outputs accumulates all kh·kw taps in one SIMD register (no bounds checks, one store per run).
private func depthwiseStride1(
    _ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
    batch: Int, channels: Int, _ g: ConvGeometry
) {
    let ph = g.h + 2 * g.padding, pw = g.w + 2 * g.padding
    let workers = min(Threads.count, batch * channels)
    parallelFor(workers) { worker in
        let padded = UnsafeMutablePointer<Float>.allocate(capacity: ph * pw)
        defer { padded.deallocate() }
        padded.initialize(repeating: 0, count: ph * pw)
        let raw = UnsafeRawPointer(padded)
        var item = worker * (batch * channels) / workers
        let end = (worker + 1) * (batch * channels) / workers
        while item < end {
            let ch = item % channels
            let src = x + item * g.h * g.w
            for y in 0..<g.h {
                (padded + (y + g.padding) * pw + g.padding).update(from: src + y * g.w, count: g.w)
            }
            let dst = out + item * g.ho * g.wo
            let filter = weight + ch * g.kh * g.kw
            let vectorEnd = g.wo & ~7
            for oy in 0..<g.ho {
                let row = dst + oy * g.wo
                var ox = 0
                while ox < vectorEnd {
                    var acc = UnsafeRawPointer(row).loadUnaligned(fromByteOffset: ox * 4, as: SIMD8<Float>.self)
                    for ky in 0..<g.kh {
                        let lineOffset = ((oy + ky) * pw + ox) * 4
                        for kx in 0..<g.kw {
                            let v = raw.loadUnaligned(fromByteOffset: lineOffset + kx * 4, as: SIMD8<Float>.self)
                            acc += filter[ky * g.kw + kx] * v
                        }
                    }
                    UnsafeMutableRawPointer(row).storeBytes(of: acc, toByteOffset: ox * 4, as: SIMD8<Float>.self)
                    ox += 8
                }
                while ox < g.wo {
                    var acc = row[ox]
                    for ky in 0..<g.kh {
                        let line = padded + (oy + ky) * pw + ox
                        for kx in 0..<g.kw { acc += filter[ky * g.kw + kx] * line[kx] }
                    }
                    row[ox] = acc
                    ox += 1
                }
            }
            item += 1
        }
    }
}

/// Transposed convolution with kernel 2 and stride 2 (SAM's mask-decoder upscaling), no padding:
/// out[co, 2i+dy, 2j+dx] = Σ_ci x[ci, i, j] · w[ci, co, dy, dx] + b[co].
/// x [Cin, H, W] or [N, Cin, H, W]; weight [Cin, Cout, 2, 2]. One GEMM per image,
/// [Cout·4, Cin] (the weight read transposed by flag) x [Cin, H·W], then a scatter into the 2x grid.
public func convTranspose2x2(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
    precondition(x.rank == 3 || x.rank == 4, "convTranspose2x2 input must be [C,H,W] or [N,C,H,W], got \(x.shape)")
    precondition(
        weight.rank == 4 && weight.shape[2] == 2 && weight.shape[3] == 2,
        "convTranspose2x2 weight must be [Cin, Cout, 2, 2], got \(weight.shape)")
    let batch = x.rank == 4 ? x.shape[0] : 1
    let cin = x.dim(-3), h = x.dim(-2), w = x.dim(-1)
    precondition(weight.shape[0] == cin, "convTranspose2x2: input has \(cin) channels, weight \(weight.shape)")
    let cout = weight.shape[1]
    if let bias { precondition(bias.count == cout, "convTranspose2x2 bias has \(bias.count) values, want \(cout)") }
    let hw = h * w
    let outShape = x.rank == 4 ? [batch, cout, 2 * h, 2 * w] : [cout, 2 * h, 2 * w]
    if hw == 0 || cout == 0 { return Tensor(zeros: outShape) }
    let products = UnsafeMutablePointer<Float>.allocate(capacity: cout * 4 * hw)
    defer { products.deallocate() }
    return Tensor(shape: outShape) { out in
        let po = out.baseAddress!
        x.withUnsafeBufferPointer { px in
            weight.withUnsafeBufferPointer { pw in
                for n in 0..<batch {
                    gemm(
                        transA: true, transB: false, m: cout * 4, n: hw, k: cin,
                        a: pw.baseAddress!, lda: cout * 4, b: px.baseAddress! + n * cin * hw, ldb: hw,
                        c: products, ldc: hw)
                    parallelFor(cout) { co in
                        let b = bias?.data[co] ?? 0
                        let dst = po + (n * cout + co) * 4 * hw
                        for tap in 0..<4 {
                            let dy = tap / 2, dx = tap % 2
                            let src = products + (co * 4 + tap) * hw
                            for i in 0..<h {
                                let d = dst + (2 * i + dy) * 2 * w + dx
                                let s = src + i * w
                                for j in 0..<w { d[2 * j] = s[j] + b }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The patches of a [C, H, W] map as rows, [Ho·Wo, C·k·k]: row p holds the input values under output
/// position p in the weight's order (channel, kernel row, kernel column), zero outside the map. With a
/// convolution's weight read as [O, C·k·k], a `Linear` over these rows is that convolution in channels-last
/// layout ([Ho·Wo, O]): one product (bf16 under `Precision.bf16`) and no CHW -> HWC permute afterwards.
public func convolutionPatchRows(_ x: Tensor, kernel: Int, stride: Int, padding: Int) -> Tensor {
    precondition(x.rank == 3, "convolutionPatchRows expects [C, H, W], got \(x.shape)")
    let c = x.dim(0), h = x.dim(1), w = x.dim(2)
    let ho = (h + 2 * padding - kernel) / stride + 1, wo = (w + 2 * padding - kernel) / stride + 1
    let width = c * kernel * kernel
    precondition(
        ho > 0 && wo > 0, "convolutionPatchRows: kernel \(kernel) does not fit \(x.shape) with padding \(padding)")
    return Tensor(shape: [ho * wo, width]) { out in
        x.withUnsafeBufferPointer { px in
            let source = px.baseAddress!, rows = out.baseAddress!
            parallelRanges(ho, grain: max(1, (1 << 15) / max(wo * width, 1))) { outputRows in
                for oy in outputRows {
                    for ox in 0..<wo {
                        var p = rows + (oy * wo + ox) * width
                        let x0 = ox * stride - padding
                        for channel in 0..<c {
                            for ky in 0..<kernel {
                                let iy = oy * stride - padding + ky
                                if iy < 0 || iy >= h {
                                    p.update(repeating: 0, count: kernel)
                                } else {
                                    let line = source + (channel * h + iy) * w
                                    for kx in 0..<kernel {
                                        let ix = x0 + kx
                                        p[kx] = ix >= 0 && ix < w ? line[ix] : 0
                                    }
                                }
                                p += kernel
                            }
                        }
                    }
                }
            }
        }
    }
}

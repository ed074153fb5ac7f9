// Hiera ("HieraDet") trunk of the SAM 2 image encoder (`sam2/modeling/backbones/hieradet.py Hiera`).
// Tokens stay channels-last, [H, W, C], so every Linear is one GEMM over all tokens and windows are
// plain row copies. Windowed attention runs all windows as one batch through `attention`.
import TensorCore

/// One MultiScaleBlock: pre-norm windowed (or global) attention with optional query pooling, then an MLP.
struct HieraBlock: Sendable {
    let layout: SAM2Config.Block
    let norm1: LayerNorm, norm2: LayerNorm
    // The fused qkv Linear is split at load time into three Linears so q, k and v come out contiguous.
    let query: Linear, key: Linear, value: Linear
    let attentionOutput: Linear
    /// MLP = Linear(d -> 4d), GELU, Linear(4d -> d), added to x a chunk of tokens at a time (`addFeedForward`).
    let mlpIn: Linear, mlpOut: Linear
    /// Shortcut projection of the first block of a stage (width change).
    let shortcutProjection: Linear?

    /// `scope`: this block's parameters (`image_encoder.trunk.blocks.i`).
    init(_ scope: WeightScope, layout: SAM2Config.Block) throws {
        self.layout = layout
        let dIn = layout.dimIn, dOut = layout.dimOut
        norm1 = try LayerNorm(scope["norm1"], dim: dIn, eps: 1e-6)
        let qkv = try Linear(scope["attn.qkv"], input: dIn, output: 3 * dOut)
        query = qkv.outputs(0..<dOut)
        key = qkv.outputs(dOut..<(2 * dOut))
        value = qkv.outputs((2 * dOut)..<(3 * dOut))
        attentionOutput = try Linear(scope["attn.proj"], input: dOut, output: dOut)
        norm2 = try LayerNorm(scope["norm2"], dim: dOut, eps: 1e-6)
        mlpIn = try Linear(scope["mlp.layers.0"], input: dOut, output: 4 * dOut)
        mlpOut = try Linear(scope["mlp.layers.1"], input: 4 * dOut, output: dOut)
        shortcutProjection = dIn != dOut ? try Linear(scope["proj"], input: dIn, output: dOut) : nil
    }

    /// x: [H, W, dimIn] -> [H', W', dimOut] (H' = H/2 with query pooling).
    func callAsFunction(_ x: Tensor) -> Tensor {
        carriesBFloat16Activations(height: x.dim(0), width: x.dim(1)) ? forwardBFloat16(x) : forward(x)
    }

    /// Under `Precision.bf16`, when every product of the block runs in bf16 at this size (the smallest are the
    /// output projection over the pooled tokens and the attention itself), the activations between products are
    /// stored as bf16 (`forwardBFloat16`).
    func carriesBFloat16Activations(height: Int, width: Int) -> Bool {
        let outTokens = layout.qPool ? (height / 2) * (width / 2) : height * width
        let keysPerQuery = layout.window > 0 ? layout.window * layout.window : height * width
        return runsInBFloat16(m: outTokens, n: layout.dimOut, k: layout.dimOut)
            && runsInBFloat16(m: outTokens, n: keysPerQuery, k: layout.dimOut)
    }

    /// The block with fp32 activations; its products run in the current precision.
    func forward(_ x: Tensor) -> Tensor { run(x, storing: Tensor.self) }

    /// `forward` with the same arithmetic, but every activation that only a bf16 product reads is stored as
    /// bf16, rounded once by whoever writes it: both layer norms' outputs, q, k and v (rounded by the q/k/v
    /// products, cut into windows and pooled as bf16), and the attention output. The residual stream, the
    /// shortcut and every sum stay fp32. Each value is the same rounding of the same fp32 number as in `forward`
    /// under bf16, so the two agree; this moves about half the bytes in the memory-bound first stages.
    func forwardBFloat16(_ x: Tensor) -> Tensor { run(x, storing: BFloat16Tensor.self) }

    /// The block, its activations between products stored as `Activation`.
    private func run<Activation: BlockActivation>(_ x: Tensor, storing: Activation.Type) -> Tensor {
        let height = x.dim(0), width = x.dim(1)
        let window = layout.window
        let normed = Activation(normalizing: x, with: norm1)

        // The shortcut of a width-changing block is the projected *normalized* input, max-pooled.
        var shortcut = x
        if let projection = shortcutProjection {
            shortcut = normed.projectedToFP32(by: projection)
            if layout.qPool { shortcut = maxPool2x2ChannelsLast(shortcut) }
        }

        // Windows are cut from the normalized map, zero-padded at the bottom/right: padded tokens
        // become q/k/v = bias and take part in attention as keys/values, as in the reference.
        let tokens =
            window > 0
            ? normed.windowPartitioned(window)
            : normed.reshaped([1, height * width, layout.dimIn])
        let qkv = tokens.projected(by: [query, key, value])
        var q = qkv[0]
        if layout.qPool {
            // Pool the queries on each window's own grid (or the whole map for a global block).
            q = window > 0 ? q.maxPooled(rows: window, columns: window) : q.maxPooled(rows: height, columns: width)
        }
        let attended = Activation.attention(query: q, key: qkv[1], value: qkv[2], heads: layout.heads)
        var out = backOnTheGrid(attended.projectedToFP32(by: attentionOutput), adding: shortcut)
        Activation.addFeedForward(
            into: &out, input: Activation(normalizing: out, with: norm2), hidden: mlpIn, output: mlpOut,
            activation: .gelu)
        return out
    }

    /// The projected attention output [windows or 1, tokens, dimOut] back on the (pooled) token grid of the
    /// shortcut, plus the shortcut.
    private func backOnTheGrid(_ projected: Tensor, adding shortcut: Tensor) -> Tensor {
        let outHeight = shortcut.dim(0), outWidth = shortcut.dim(1)
        if layout.window > 0 {
            // After pooling the windows are half as wide and the padded grid follows the pooled map.
            let effective = layout.qPool ? layout.window / 2 : layout.window
            return windowUnpartition(
                projected, window: effective, height: outHeight, width: outWidth, adding: shortcut)
        }
        var out = projected.reshaped([outHeight, outWidth, layout.dimOut])
        addInPlace(&out, shortcut)
        return out
    }
}

/// What the trunk produces: the four stage outputs, channels-last, finest first.
public struct HieraOutput: Sendable {
    /// Patch embedding plus position embedding, [H/4, W/4, C0] (kept only when asked).
    public var embedded: Tensor?
    /// Every block's output, [h, w, c] (kept only when asked).
    public var blocks: [Tensor]
    /// Stage outputs S0..S3, [h, w, c], finest first.
    public var stages: [Tensor]
}

public struct Hiera: Sendable {
    public let config: SAM2Config
    /// `patch_embed.proj`, a 7x7 stride-4 convolution, read as the Linear [C0, 3·7·7] it is over
    /// `convolutionPatchRows`: its output comes out channels-last.
    let patchEmbed: Linear
    let backgroundEmbedding: Tensor  // [1, C0, bh, bw]
    let windowEmbedding: Tensor  // [1, C0, w0, w0]
    let blocks: [HieraBlock]
    /// Position embedding for the configured image size, [h, w, C0] (input-independent, built at load).
    let positionEmbedding: Tensor

    /// `scope`: the trunk's parameters (`image_encoder.trunk`).
    init(_ scope: WeightScope, config: SAM2Config) throws {
        self.config = config
        let c0 = config.embedDim
        let convolution = try Conv2d(
            scope["patch_embed.proj"], input: 3, output: c0, kernel: 7, stride: 4, padding: 3)
        patchEmbed = Linear(weight: convolution.weight.reshaped([c0, 3 * 7 * 7]), bias: convolution.bias)
        let bkg = config.positionEmbeddingBackgroundSize
        backgroundEmbedding = try scope.tensor("pos_embed", shape: [1, c0, bkg[0], bkg[1]])
        let w0 = config.windowSpec[0]
        windowEmbedding = try scope.tensor("pos_embed_window", shape: [1, c0, w0, w0])
        blocks = try config.blocks.enumerated().map { i, layout in
            try HieraBlock(scope["blocks"][i], layout: layout)
        }
        let grid = config.imageSize / 4
        positionEmbedding = Hiera.positionEmbedding(
            background: backgroundEmbedding, window: windowEmbedding,
            height: grid, width: grid)
    }

    /// bicubic_resize(pos_embed -> h x w) + pos_embed_window tiled, as [h, w, C0].
    static func positionEmbedding(background: Tensor, window: Tensor, height: Int, width: Int) -> Tensor {
        var pe = interpolate(background, size: (height: height, width: width), mode: .bicubic)
        let channels = window.dim(1), tile = window.dim(2)
        precondition(
            height % tile == 0 && width % tile == 0,
            "token grid \(height)x\(width) is not a multiple of the \(tile)x\(tile) window position table")
        window.withUnsafeBufferPointer { win in
            pe.withUnsafeMutableBufferPointer { out in
                for c in 0..<channels {
                    for y in 0..<height {
                        let row = out.baseAddress! + (c * height + y) * width
                        let source = win.baseAddress! + (c * tile + y % tile) * tile
                        for x in 0..<width { row[x] += source[x % tile] }
                    }
                }
            }
        }
        return permuted(pe.reshaped([channels, height, width]), [1, 2, 0])
    }

    /// image: [3, H, W] normalized. Returns the stage outputs (and, when asked, the intermediates).
    public func callAsFunction(_ image: Tensor, keepIntermediates: Bool = false) -> HieraOutput {
        let h = (image.dim(1) + 2 * 3 - 7) / 4 + 1, w = (image.dim(2) + 2 * 3 - 7) / 4 + 1
        let patches = convolutionPatchRows(image, kernel: 7, stride: 4, padding: 3)
        var x = patchEmbed(patches).reshaped([h, w, config.embedDim])
        if h == config.imageSize / 4 && w == config.imageSize / 4 {
            addInPlace(&x, positionEmbedding)
        } else {
            addInPlace(
                &x,
                Hiera.positionEmbedding(
                    background: backgroundEmbedding, window: windowEmbedding,
                    height: h, width: w))
        }
        var output = HieraOutput(embedded: keepIntermediates ? x : nil, blocks: [], stages: [])
        let ends = Set(config.stageEnds)
        for (i, block) in blocks.enumerated() {
            x = block(x)
            if keepIntermediates { output.blocks.append(x) }
            if ends.contains(i) { output.stages.append(x) }
        }
        return output
    }
}

// MARK: Windowing helpers (channels-last)

/// [H, W, C] -> [numWindows, window*window, C], zero-padded at the bottom/right to multiples of the
/// window; windows in row-major order over the padded grid.
func windowPartition(_ x: Tensor, window: Int) -> Tensor {
    let (shape, count) = windowPartitionShape(x.shape, window: window)
    var out = Tensor(zeros: shape)
    out.withUnsafeMutableBufferPointer { dst in
        x.withUnsafeBufferPointer { src in copyWindows(src, into: dst, shape: x.shape, window: window) }
    }
    precondition(out.count == count)
    return out
}

/// `windowPartition` of bf16 tokens (the normalized input of a bf16 block).
func windowPartition(_ x: BFloat16Tensor, window: Int) -> BFloat16Tensor {
    let (shape, _) = windowPartitionShape(x.shape, window: window)
    var bits = [UInt16](repeating: 0, count: Tensor.count(of: shape))
    bits.withUnsafeMutableBufferPointer { dst in
        x.withUnsafeBufferPointer { src in copyWindows(src, into: dst, shape: x.shape, window: window) }
    }
    return BFloat16Tensor(shape: shape, bits: bits)
}

private func windowPartitionShape(_ shape: [Int], window: Int) -> (shape: [Int], count: Int) {
    precondition(shape.count == 3 && window > 0, "windowPartition needs [H, W, C] and a window, got \(shape)")
    let rows = (shape[0] + window - 1) / window, columns = (shape[1] + window - 1) / window
    let out = [rows * columns, window * window, shape[2]]
    return (out, Tensor.count(of: out))
}

/// The row copies of `windowPartition`, for elements of any type; `dst` is zero-filled (the padding).
private func copyWindows<Element>(
    _ src: UnsafeBufferPointer<Element>, into dst: UnsafeMutableBufferPointer<Element>, shape: [Int], window: Int
) {
    let height = shape[0], width = shape[1], channels = shape[2]
    let rows = (height + window - 1) / window, columns = (width + window - 1) / window
    guard let from = src.baseAddress, let to = dst.baseAddress else { return }
    parallelFor(rows) { wy in
        for wx in 0..<columns {
            let windowBase = ((wy * columns + wx) * window * window) * channels
            for dy in 0..<window {
                let y = wy * window + dy
                if y >= height { break }
                let x0 = wx * window
                let n = min(window, width - x0)
                guard n > 0 else { continue }
                (to + windowBase + dy * window * channels)
                    .update(from: from + (y * width + x0) * channels, count: n * channels)
            }
        }
    }
}

/// Inverse of `windowPartition`: [numWindows, window*window, C] -> [height, width, C], dropping the
/// padded rows/columns, plus `residual` [height, width, C] (the block's shortcut, added in the same pass).
/// The padded grid is recomputed from height/width.
func windowUnpartition(_ windows: Tensor, window: Int, height: Int, width: Int, adding residual: Tensor) -> Tensor {
    let channels = windows.dim(2)
    let columns = (width + window - 1) / window
    precondition(
        windows.dim(0) == ((height + window - 1) / window) * columns && windows.dim(1) == window * window,
        "window grid mismatch: \(windows.shape) for \(height)x\(width) with window \(window)")
    precondition(
        residual.shape == [height, width, channels], "residual \(residual.shape) for \(height)x\(width)x\(channels)")
    return Tensor(shape: [height, width, channels]) { dst in
        windows.withUnsafeBufferPointer { src in
            residual.withUnsafeBufferPointer { res in
                parallelFor(height) { y in
                    let wy = y / window, dy = y % window
                    var x0 = 0
                    while x0 < width {
                        let wx = x0 / window
                        let n = min(window, width - x0) * channels
                        let from = src.baseAddress! + (((wy * columns + wx) * window + dy) * window) * channels
                        let offset = (y * width + x0) * channels
                        let to = dst.baseAddress! + offset, shortcut = res.baseAddress! + offset
                        for i in 0..<n { to[i] = from[i] + shortcut[i] }
                        x0 += window
                    }
                }
            }
        }
    }
}

/// 2x2 stride-2 max pool of every batch entry's rows x columns token grid:
/// [B, rows*columns, C] -> [B, (rows/2)*(columns/2), C] (floor mode, like nn.MaxPool2d).
func maxPool2x2Grid(_ x: Tensor, rows: Int, columns: Int) -> Tensor {
    let shape = pooledGridShape(x.shape, rows: rows, columns: columns)
    return Tensor(shape: shape) { dst in
        x.withUnsafeBufferPointer { src in
            poolGrid(src, into: dst, shape: x.shape, rows: rows, columns: columns) { a, b, c, d, o, n in
                for i in 0..<n { o[i] = max(max(a[i], b[i]), max(c[i], d[i])) }
            }
        }
    }
}

/// `maxPool2x2Grid` of bf16 tokens (pooled queries of a bf16 block). Rounding to bf16 never reverses an order,
/// so the pooled bf16 values are exactly the rounded maxima of the fp32 values.
func maxPool2x2Grid(_ x: BFloat16Tensor, rows: Int, columns: Int) -> BFloat16Tensor {
    let shape = pooledGridShape(x.shape, rows: rows, columns: columns)
    return BFloat16Tensor(shape: shape) { dst in
        x.withUnsafeBufferPointer { src in
            poolGrid(src, into: dst, shape: x.shape, rows: rows, columns: columns) { a, b, c, d, o, n in
                // Compared as fp32 (exact); the maximum's top half is its bf16 bits again.
                for i in 0..<n {
                    let m = max(
                        max(float(fromBFloat16: a[i]), float(fromBFloat16: b[i])),
                        max(float(fromBFloat16: c[i]), float(fromBFloat16: d[i])))
                    o[i] = UInt16(truncatingIfNeeded: m.bitPattern >> 16)
                }
            }
        }
    }
}

private func pooledGridShape(_ shape: [Int], rows: Int, columns: Int) -> [Int] {
    precondition(
        shape.count == 3 && shape[1] == rows * columns, "pooling grid \(rows)x\(columns) does not match \(shape)")
    return [shape[0], (rows / 2) * (columns / 2), shape[2]]
}

/// The loops of `maxPool2x2Grid` for elements of any type; `pool(a, b, c, d, out, n)` writes the elementwise
/// maximum of four rows of n channels.
@inline(__always)
private func poolGrid<Element>(
    _ src: UnsafeBufferPointer<Element>, into dst: UnsafeMutableBufferPointer<Element>, shape: [Int], rows: Int,
    columns: Int,
    pool: (
        UnsafePointer<Element>, UnsafePointer<Element>, UnsafePointer<Element>, UnsafePointer<Element>,
        UnsafeMutablePointer<Element>, Int
    ) -> Void
) {
    let batch = shape[0], channels = shape[2]
    let outRows = rows / 2, outColumns = columns / 2
    guard let from = src.baseAddress, let to = dst.baseAddress else { return }
    parallelFor(batch * outRows) { item in
        let b = item / outRows, oy = item % outRows
        for ox in 0..<outColumns {
            let o = to + ((b * outRows + oy) * outColumns + ox) * channels
            let p00 = from + ((b * rows + 2 * oy) * columns + 2 * ox) * channels
            let p01 = p00 + channels
            let p10 = p00 + columns * channels
            let p11 = p10 + channels
            pool(p00, p01, p10, p11, o, channels)
        }
    }
}

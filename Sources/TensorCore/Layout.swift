import CKernels
/// Axis permutation (PyTorch `x.permute(axes).contiguous()`): out.shape[i] = x.shape[axes[i]].
/// Copies the innermost run of axes that stay in order with `update(from:)`; only the outer
/// index is decoded per run.
public func permuted(_ x: Tensor, _ axes: [Int]) -> Tensor {
    let rank = x.rank
    precondition(
        axes.count == rank && Set(axes) == Set(0..<rank),
        "permuted: \(axes) is not a permutation of the \(rank) axes of \(x.shape)")
    let outShape = axes.map { x.shape[$0] }
    if x.count == 0 { return Tensor(zeros: outShape) }
    if axes == Array(0..<rank) { return x }
    // A rotation of the axes (CHW <-> HWC, a matrix transpose) is the transpose of x seen as a matrix.
    if let split = (1..<rank).first(where: { axes == Array($0..<rank) + Array(0..<$0) }) {
        let rows = x.shape[0..<split].reduce(1, *), columns = x.count / rows
        return Tensor(shape: outShape) { out in
            x.withUnsafeBufferPointer {
                transposed($0.baseAddress!, rows: rows, columns: columns, into: out.baseAddress!)
            }
        }
    }
    var inStrides = [Int](repeating: 1, count: rank)
    for i in stride(from: rank - 2, through: 0, by: -1) { inStrides[i] = inStrides[i + 1] * x.shape[i + 1] }
    // Trailing output axes that are also the trailing input axes, in order, form one contiguous run.
    var run = 1, tail = rank
    while tail > 0 && axes[tail - 1] == tail - 1 && (tail == rank || axes[tail] == tail) {
        run *= x.shape[tail - 1]
        tail -= 1
    }
    let outerShape = Array(outShape[0..<tail])
    let outerStrides = (0..<tail).map { inStrides[axes[$0]] }
    let outerCount = x.count / run
    return Tensor(shape: outShape) { out in
        let po = out.baseAddress!
        x.withUnsafeBufferPointer { px in
            let xs = px.baseAddress!
            // Chunks of the outer index space, each decoding its start index once and counting up.
            let chunkCount = min(Threads.count, max(1, x.count / (1 << 16)))
            parallelFor(chunkCount) { chunk in
                let start = chunk * outerCount / chunkCount, end = (chunk + 1) * outerCount / chunkCount
                if start >= end { return }
                var index = [Int](repeating: 0, count: tail)
                var rest = start, offset = 0
                for a in stride(from: tail - 1, through: 0, by: -1) {
                    index[a] = rest % outerShape[a]
                    rest /= outerShape[a]
                    offset += index[a] * outerStrides[a]
                }
                for i in start..<end {
                    if run == 1 { po[i] = xs[offset] } else { (po + i * run).initialize(from: xs + offset, count: run) }
                    // Increment the mixed-radix index, updating the source offset incrementally.
                    var a = tail - 1
                    while a >= 0 {
                        index[a] += 1
                        offset += outerStrides[a]
                        if index[a] < outerShape[a] { break }
                        offset -= outerStrides[a] * outerShape[a]
                        index[a] = 0
                        a -= 1
                    }
                }
            }
        }
    }
}

/// out [columns, rows] = xᵀ for x [rows, columns], row-major: 8 x 8 blocks transposed in registers within
/// 64 x 64 tiles (`ragseg_transpose_rows`), row tiles split over the workers. Element by element, the image
/// encoder's four CHW/HWC permutes (2-6 M values each) took 25 ms of a 530 ms bf16 encoding.
func transposed(_ x: UnsafePointer<Float>, rows: Int, columns: Int, into out: UnsafeMutablePointer<Float>) {
    let tile = 64
    let rowTiles = (rows + tile - 1) / tile
    let parts = rows * columns >= 1 << 16 ? min(Threads.count, rowTiles) : 1
    parallelFor(parts) { part in
        let begin = min(rows, part * rowTiles / parts * tile), end = min(rows, (part + 1) * rowTiles / parts * tile)
        if end > begin { ragseg_transpose_rows(x, rows, columns, out, begin, end) }
    }
}

/// Joins tensors along `axis` (negative counts from the end); all other axes must match.
public func concatenated(_ xs: [Tensor], axis: Int) -> Tensor {
    precondition(!xs.isEmpty, "concatenated: no tensors")
    let rank = xs[0].rank
    let ax = axis < 0 ? axis + rank : axis
    precondition(ax >= 0 && ax < rank, "concatenated: axis \(axis) out of range for rank \(rank)")
    for t in xs {
        precondition(
            t.rank == rank && (0..<rank).allSatisfy { $0 == ax || t.shape[$0] == xs[0].shape[$0] },
            "concatenated: shape \(t.shape) does not match \(xs[0].shape) off axis \(ax)")
    }
    var shape = xs[0].shape
    shape[ax] = xs.reduce(0) { $0 + $1.shape[ax] }
    let outer = shape[0..<ax].reduce(1, *)
    let inner = shape[(ax + 1)...].reduce(1, *)
    let total = Tensor.count(of: shape)
    if total == 0 { return Tensor(zeros: shape) }
    return Tensor(shape: shape) { out in
        let po = out.baseAddress!
        let outRow = shape[ax] * inner
        var column = 0
        for t in xs {
            let piece = t.shape[ax] * inner
            if piece > 0 {
                t.withUnsafeBufferPointer { pt in
                    let src = pt.baseAddress!
                    for o in 0..<outer { (po + o * outRow + column).initialize(from: src + o * piece, count: piece) }
                }
            }
            column += piece
        }
    }
}

/// The sub-tensor with `axis` restricted to `range` (PyTorch `x.narrow` / `x[..., a:b, ...]`), copied.
public func sliced(_ x: Tensor, axis: Int, range: Range<Int>) -> Tensor {
    let ax = axis < 0 ? axis + x.rank : axis
    precondition(ax >= 0 && ax < x.rank, "sliced: axis \(axis) out of range for \(x.shape)")
    precondition(
        range.lowerBound >= 0 && range.upperBound <= x.shape[ax],
        "sliced: range \(range) out of bounds for axis \(ax) of \(x.shape)")
    var shape = x.shape
    shape[ax] = range.count
    let outer = x.shape[0..<ax].reduce(1, *)
    let inner = x.shape[(ax + 1)...].reduce(1, *)
    if Tensor.count(of: shape) == 0 { return Tensor(zeros: shape) }
    return Tensor(shape: shape) { out in
        let po = out.baseAddress!
        x.withUnsafeBufferPointer { px in
            let src = px.baseAddress!
            let piece = range.count * inner, row = x.shape[ax] * inner
            for o in 0..<outer {
                (po + o * piece).initialize(from: src + o * row + range.lowerBound * inner, count: piece)
            }
        }
    }
}

// 3-D Dice, IoU and HD95 in millimetres: MedPy's `hd95(result, reference, voxelspacing)` on voxel grids
// with anisotropic spacing, computed exactly (separable Felzenszwalb-Huttenlocher distance transform) and
// only over the bounding box of both masks, so a 512x512xN volume with a small organ stays cheap.

/// A binary mask on a 3-D voxel grid, first axis fastest: voxel (i, j, k) is `voxels[i + n0 * (j + n1 * k)]`
/// (the layout of RAGSegIO's VoxelGrid and of NIfTI files).
public struct BinaryVolume: Sendable, Equatable {
    public let shape: [Int]
    public var voxels: [Bool]

    public init(shape: [Int], voxels: [Bool]) {
        precondition(
            shape.count == 3 && shape.allSatisfy { $0 >= 0 } && shape.reduce(1, *) == voxels.count,
            "volume of shape \(shape) needs \(shape.reduce(1, *)) voxels, got \(voxels.count)")
        self.shape = shape
        self.voxels = voxels
    }

    public var foregroundCount: Int { voxels.reduce(0) { $0 + ($1 ? 1 : 0) } }
}

/// Dice, IoU and HD95 of `prediction` against `truth` on the same grid; `spacing` is the voxel size in mm
/// along each index axis (pixdim 1...3), so HD95 is in mm.
///
/// The conventions are the 2-D metrics' (`segmentationScores`): both masks empty -> Dice = IoU = 1 (a
/// correct "nothing here"; MedPy's `dc`/`jc` would say 0); one empty -> Dice = IoU = 0; HD95 nil when either
/// mask is empty (MedPy raises there). HD95 is MedPy's: surface = foreground voxels that binary erosion with
/// the 6-neighbour (connectivity 1) structure removes, voxels outside the volume counting as background;
/// the Euclidean distance in mm from each surface voxel of one mask to the nearest surface voxel of the
/// other, both directions pooled; the 95th percentile with NumPy's linear interpolation.
public func volumeScores(prediction: BinaryVolume, truth: BinaryVolume, spacing: [Double]) -> SegmentationScores {
    precondition(prediction.shape == truth.shape, "prediction \(prediction.shape) vs truth \(truth.shape)")
    let plane = prediction.shape[0] * prediction.shape[1]
    return volumeScores(shape: prediction.shape, spacing: spacing) { k, p, t in
        p.replaceSubrange(0..<plane, with: prediction.voxels[(k * plane)..<((k + 1) * plane)])
        t.replaceSubrange(0..<plane, with: truth.voxels[(k * plane)..<((k + 1) * plane)])
    }
}

/// `volumeScores` of masks read one plane (fixed third index k) at a time, for volumes too large to hold:
/// `plane(k, &prediction, &truth)` fills both `shape[0] * shape[1]` arrays (it is called twice per plane
/// at most). Memory is two planes and the masks' bounding box, not the volume.
public func volumeScores(
    shape: [Int], spacing: [Double], plane: (Int, inout [Bool], inout [Bool]) -> Void
) -> SegmentationScores {
    precondition(shape.count == 3 && shape.allSatisfy { $0 >= 0 }, "shape \(shape)")
    precondition(spacing.count == 3 && spacing.allSatisfy { $0 > 0 && $0.isFinite }, "spacing \(spacing)")
    let (n0, n1) = (shape[0], shape[1])
    var p = [Bool](repeating: false, count: n0 * n1), t = p
    var intersection = 0, predicted = 0, actual = 0
    var low = shape, high = [-1, -1, -1]
    for k in 0..<shape[2] {
        plane(k, &p, &t)
        for index in 0..<(n0 * n1) where p[index] || t[index] {
            if p[index] { predicted += 1 }
            if t[index] { actual += 1 }
            if p[index] && t[index] { intersection += 1 }
            let (i, j) = (index % n0, index / n0)
            low[0] = min(low[0], i); high[0] = max(high[0], i)
            low[1] = min(low[1], j); high[1] = max(high[1], j)
            low[2] = min(low[2], k); high[2] = max(high[2], k)
        }
    }
    let (dice, iou) = diceAndIoU(intersection: intersection, predicted: predicted, actual: actual)
    var hd95: Double? = nil
    if predicted > 0 && actual > 0 {
        // Every foreground voxel of either mask lies in this box, so its faces border background (or the
        // volume's outside): erosion inside the box equals erosion of the whole volume, and distances
        // between voxels in the box do not depend on what lies outside it.
        let box = VoxelBox(lower: low, shape: (0..<3).map { high[$0] - low[$0] + 1 })
        let (m0, m1) = (box.shape[0], box.shape[1])
        var pc = [Bool](repeating: false, count: box.shape.reduce(1, *)), tc = pc
        for k in 0..<box.shape[2] {
            plane(box.lower[2] + k, &p, &t)
            for j in 0..<m1 {
                let source = box.lower[0] + n0 * (box.lower[1] + j)
                let target = m0 * (j + m1 * k)
                for i in 0..<m0 {
                    pc[target + i] = p[source + i]
                    tc[target + i] = t[source + i]
                }
            }
        }
        let predictedSurface = surface(pc, shape: box.shape), trueSurface = surface(tc, shape: box.shape)
        let forward = distances(from: predictedSurface, to: trueSurface, shape: box.shape, spacing: spacing)
        let backward = distances(from: trueSurface, to: predictedSurface, shape: box.shape, spacing: spacing)
        hd95 = percentile(forward + backward, 95)
    }
    return SegmentationScores(dice: dice, iou: iou, hd95: hd95)
}

struct VoxelBox {
    var lower: [Int]
    var shape: [Int]
}

/// Foreground voxels with a background face neighbour or on the grid's faces (`mask ^ erosion(mask)`).
func surface(_ mask: [Bool], shape: [Int]) -> [Bool] {
    let (n0, n1, n2) = (shape[0], shape[1], shape[2])
    let (s1, s2) = (n0, n0 * n1)
    var border = [Bool](repeating: false, count: mask.count)
    for k in 0..<n2 {
        for j in 0..<n1 {
            for i in 0..<n0 {
                let index = i + s1 * j + s2 * k
                guard mask[index] else { continue }
                let interior =
                    i > 0 && i < n0 - 1 && j > 0 && j < n1 - 1 && k > 0 && k < n2 - 1
                    && mask[index - 1] && mask[index + 1] && mask[index - s1] && mask[index + s1]
                    && mask[index - s2] && mask[index + s2]
                border[index] = !interior
            }
        }
    }
    return border
}

/// Distances (mm) from each `source` voxel to the nearest `target` voxel (`target` non-empty).
func distances(from source: [Bool], to target: [Bool], shape: [Int], spacing: [Double]) -> [Double] {
    let squared = squaredDistanceTransform3D(features: target, shape: shape, spacing: spacing)
    var out: [Double] = []
    for index in 0..<source.count where source[index] { out.append(squared[index].squareRoot()) }
    return out
}

/// Exact squared Euclidean distance (mm²) to the nearest `true` voxel: the 1-D lower-envelope transform
/// along axis 0, then 1, then 2, each with its own voxel size. O(voxels); buffers are allocated once.
func squaredDistanceTransform3D(features: [Bool], shape: [Int], spacing: [Double]) -> [Double] {
    let infinity = Double.greatestFiniteMagnitude
    var grid = features.map { $0 ? 0.0 : infinity }
    let strides = [1, shape[0], shape[0] * shape[1]]
    let longest = shape.max() ?? 0
    var envelope = LowerEnvelope(capacity: longest)
    var line = [Double](repeating: 0, count: longest), out = line
    for axis in 0..<3 {
        let n = shape[axis], stride = strides[axis]
        let others = (0..<3).filter { $0 != axis }
        for b in 0..<shape[others[1]] {
            for a in 0..<shape[others[0]] {
                let start = a * strides[others[0]] + b * strides[others[1]]
                for q in 0..<n { line[q] = grid[start + q * stride] }
                envelope.transform(line, count: n, step: spacing[axis], into: &out)
                for q in 0..<n { grid[start + q * stride] = out[q] }
            }
        }
    }
    return grid
}

/// Felzenszwalb & Huttenlocher's 1-D squared distance transform, out[q] = min_p f[p] + (step (q - p))²,
/// with its work arrays kept between lines.
struct LowerEnvelope {
    private var sites: [Int]
    private var bounds: [Double]

    init(capacity: Int) {
        sites = [Int](repeating: 0, count: max(capacity, 1))
        bounds = [Double](repeating: 0, count: max(capacity, 1) + 1)
    }

    mutating func transform(_ f: [Double], count n: Int, step: Double, into out: inout [Double]) {
        let infinity = Double.greatestFiniteMagnitude
        let s2 = step * step
        // Where the parabolas rooted at p and q intersect, in index units.
        func meet(_ p: Int, _ q: Int) -> Double {
            ((f[q] + s2 * Double(q * q)) - (f[p] + s2 * Double(p * p))) / (2 * s2 * Double(q - p))
        }
        var k = -1
        for q in 0..<n where f[q] < infinity {
            while k >= 0 && meet(sites[k], q) <= bounds[k] { k -= 1 }
            k += 1
            sites[k] = q
            bounds[k] = k == 0 ? -infinity : meet(sites[k - 1], q)
            bounds[k + 1] = infinity
        }
        guard k >= 0 else {  // no feature on this line
            for q in 0..<n { out[q] = infinity }
            return
        }
        var j = 0
        for q in 0..<n {
            while bounds[j + 1] < Double(q) { j += 1 }
            let d = step * Double(q - sites[j])
            out[q] = d * d + f[sites[j]]
        }
    }
}

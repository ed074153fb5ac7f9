import Foundation

/// A binary segmentation mask, row-major, `true` = foreground.
public struct BinaryMask: Sendable, Equatable {
    public let width: Int
    public let height: Int
    public var pixels: [Bool]

    public init(width: Int, height: Int, pixels: [Bool]) {
        precondition(
            width >= 0 && height >= 0 && pixels.count == width * height,
            "mask of \(width)x\(height) needs \(width * height) pixels, got \(pixels.count)")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// Foreground = nonzero (0/1 and 0/255 masks alike).
    public init(width: Int, height: Int, values: [UInt8]) {
        self.init(width: width, height: height, pixels: values.map { $0 != 0 })
    }

    public var foregroundCount: Int { pixels.reduce(0) { $0 + ($1 ? 1 : 0) } }
    public var isEmpty: Bool { !pixels.contains(true) }
}

/// Overlap and boundary-distance scores of one predicted mask against its ground truth.
public struct SegmentationScores: Sendable, Equatable {
    public let dice: Double
    public let iou: Double
    /// 95th-percentile symmetric surface distance (MedPy's `hd95`), in units of `spacing`;
    /// nil when either mask is empty (the distance is undefined there).
    public let hd95: Double?
}

/// Dice, IoU and HD95 of `prediction` against `truth`.
///
/// Conventions (stated because tools differ): both masks empty → Dice = IoU = 1 (a correct "nothing
/// here"); HD95 follows MedPy (`medpy.metric.binary.hd95`): surface = foreground pixels with a
/// 4-connected background neighbour or on the image edge, Euclidean distances from each surface pixel
/// of one mask to the nearest surface pixel of the other, both directions pooled, 95th percentile with
/// linear interpolation (NumPy's default). `spacing` is the pixel size (row, column).
public func segmentationScores(
    prediction: BinaryMask, truth: BinaryMask,
    spacing: (row: Double, column: Double) = (1, 1)
) -> SegmentationScores {
    precondition(
        prediction.width == truth.width && prediction.height == truth.height,
        "prediction \(prediction.width)x\(prediction.height) vs truth \(truth.width)x\(truth.height)")
    let (dice, iou, bothNonEmpty) = overlapScores(prediction.pixels, truth.pixels)
    var hd95: Double? = nil
    if bothNonEmpty {
        let forward = surfaceDistances(from: prediction, to: truth, spacing: spacing)
        let backward = surfaceDistances(from: truth, to: prediction, spacing: spacing)
        hd95 = percentile(forward + backward, 95)
    }
    return SegmentationScores(dice: dice, iou: iou, hd95: hd95)
}

/// Dice and IoU of two masks over the same pixels (both 1 when both masks are empty), and whether both have
/// foreground (the distances are defined only then).
func overlapScores(_ prediction: [Bool], _ truth: [Bool]) -> (dice: Double, iou: Double, bothNonEmpty: Bool) {
    var intersection = 0, predicted = 0, actual = 0
    for i in 0..<prediction.count {
        let p = prediction[i], t = truth[i]
        if p { predicted += 1 }
        if t { actual += 1 }
        if p && t { intersection += 1 }
    }
    let (dice, iou) = diceAndIoU(intersection: intersection, predicted: predicted, actual: actual)
    return (dice, iou, predicted > 0 && actual > 0)
}

/// Dice and IoU from the foreground counts (both 1 when both masks are empty: a correct "nothing here").
func diceAndIoU(intersection: Int, predicted: Int, actual: Int) -> (dice: Double, iou: Double) {
    let union = predicted + actual - intersection
    let dice = predicted + actual == 0 ? 1 : 2 * Double(intersection) / Double(predicted + actual)
    let iou = union == 0 ? 1 : Double(intersection) / Double(union)
    return (dice, iou)
}

/// Surface pixels: foreground pixels with a background 4-neighbour, or on the image edge
/// (MedPy's `mask ^ binary_erosion(mask)`, erosion with a cross and zero outside the image).
func surface(of mask: BinaryMask) -> [Bool] {
    let w = mask.width, h = mask.height
    var border = [Bool](repeating: false, count: w * h)
    for y in 0..<h {
        for x in 0..<w where mask.pixels[y * w + x] {
            let interior =
                x > 0 && x < w - 1 && y > 0 && y < h - 1
                && mask.pixels[y * w + x - 1] && mask.pixels[y * w + x + 1]
                && mask.pixels[(y - 1) * w + x] && mask.pixels[(y + 1) * w + x]
            border[y * w + x] = !interior
        }
    }
    return border
}

/// Distances from each surface pixel of `source` to the nearest surface pixel of `target`.
func surfaceDistances(
    from source: BinaryMask, to target: BinaryMask,
    spacing: (row: Double, column: Double)
) -> [Double] {
    let targetSurface = surface(of: target)
    let squared = squaredDistanceTransform(
        features: targetSurface, width: target.width, height: target.height,
        spacing: spacing)
    let sourceSurface = surface(of: source)
    var distances: [Double] = []
    for i in 0..<sourceSurface.count where sourceSurface[i] { distances.append(squared[i].squareRoot()) }
    return distances
}

/// Exact squared Euclidean distance to the nearest `true` pixel (Felzenszwalb & Huttenlocher's
/// separable lower-envelope algorithm: columns, then rows; O(pixels)).
func squaredDistanceTransform(
    features: [Bool], width w: Int, height h: Int,
    spacing: (row: Double, column: Double)
) -> [Double] {
    let infinity = Double.greatestFiniteMagnitude
    var grid = features.map { $0 ? 0.0 : infinity }
    var line = [Double](repeating: 0, count: max(w, h))
    var out = [Double](repeating: 0, count: max(w, h))
    // Along each column (step = row spacing), then along each row (step = column spacing).
    for x in 0..<w {
        for y in 0..<h { line[y] = grid[y * w + x] }
        lowerEnvelope(line, count: h, step: spacing.row, into: &out)
        for y in 0..<h { grid[y * w + x] = out[y] }
    }
    for y in 0..<h {
        for x in 0..<w { line[x] = grid[y * w + x] }
        lowerEnvelope(line, count: w, step: spacing.column, into: &out)
        for x in 0..<w { grid[y * w + x] = out[x] }
    }
    return grid
}

/// 1-D squared distance transform: out[q] = min_p f[p] + (step·(q − p))².
private func lowerEnvelope(_ f: [Double], count n: Int, step: Double, into out: inout [Double]) {
    let infinity = Double.greatestFiniteMagnitude
    var sites = [Int](repeating: 0, count: n)  // parabola apexes in the envelope
    var bounds = [Double](repeating: 0, count: n + 1)  // where each parabola starts
    var k = -1
    let s2 = step * step
    for q in 0..<n where f[q] < infinity {
        while k >= 0 {
            let p = sites[k]
            // Intersection of the parabolas rooted at p and q, in index units.
            let z = ((f[q] + s2 * Double(q * q)) - (f[p] + s2 * Double(p * p))) / (2 * s2 * Double(q - p))
            if z <= bounds[k] { k -= 1 } else { break }
        }
        k += 1
        sites[k] = q
        bounds[k] =
            k == 0
            ? -infinity
            : {
                let p = sites[k - 1]
                return ((f[q] + s2 * Double(q * q)) - (f[p] + s2 * Double(p * p))) / (2 * s2 * Double(q - p))
            }()
        bounds[k + 1] = infinity
    }
    if k < 0 {  // no feature on this line
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

/// NumPy's default percentile (linear interpolation between closest ranks).
public func percentile(_ values: [Double], _ q: Double) -> Double {
    precondition(!values.isEmpty, "percentile of no values")
    let sorted = values.sorted()
    let position = q / 100 * Double(sorted.count - 1)
    let lower = Int(position.rounded(.down)), upper = min(lower + 1, sorted.count - 1)
    let fraction = position - Double(lower)
    return sorted[lower] + (sorted[upper] - sorted[lower]) * fraction
}

/// Summary statistics of per-case scores (the ones `ragseg eval` prints).
public struct Summary: Sendable {
    public let count: Int
    public let mean: Double
    public let median: Double

    public init?(_ values: [Double]) {
        guard !values.isEmpty else { return nil }
        count = values.count
        mean = values.reduce(0, +) / Double(values.count)
        median = percentile(values, 50)
    }
}

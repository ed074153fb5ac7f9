// One frame of a volume read in place as intensities or as labels: the checks run as streaming passes
// over the stored voxels (nothing is copied), and values are computed when a slice or a pass reads them.
// `NIfTIImage.intensities` and `labels` are these, materialised: one rule for both ways.

/// A frame's intensities: stored value times scl_slope plus scl_inter, computed in Double and rounded to
/// Float when read (the same value, bit for bit, every time). Known finite (checked when made).
public struct IntensityVoxels: Sendable {
    public let header: NIfTIHeader
    let stored: StoredVoxels
    let slope: Double
    let inter: Double

    init(header: NIfTIHeader, stored: StoredVoxels, slope: Double, inter: Double) {
        self.header = header
        self.stored = stored
        self.slope = slope
        self.inter = inter
    }

    /// A grid of intensities already computed (the `Volume<Float>` entry points), read as they are.
    public init(_ volume: Volume<Float>) {
        self.init(header: volume.header, stored: StoredVoxels(.float32(volume.grid.values)), slope: 1, inter: 0)
    }

    public var shape: [Int] { header.spatialShape }
    public var affine: Affine { header.affine }
    public var count: Int { stored.count }

    /// `StoredVoxels.walk` with each value as its intensity.
    @inline(__always)
    func walk(
        origin: Int, rowStep: Int, columnStep: Int, rows: Int, columns: Int, _ body: (Int, Float) -> Void
    ) {
        let (slope, inter) = (slope, inter)
        stored.walk(origin: origin, rowStep: rowStep, columnStep: columnStep, rows: rows, columns: columns) { n, v in
            body(n, Float(v * slope + inter))
        }
    }

    /// The intensities of voxels `range` in stored order (a plane, a chunk).
    public func values(_ range: Range<Int>) -> [Float] {
        precondition(range.lowerBound >= 0 && range.upperBound <= count, "voxels \(range) of \(count)")
        return gathered(range.count) {
            walk(origin: range.lowerBound, rowStep: 0, columnStep: 1, rows: 1, columns: range.count, $0)
        }
    }

    /// Every intensity in stored order, `chunk` at a time: `body(firstIndex, values)`.
    func forEachChunk(_ chunk: Int = 1 << 20, _ body: (Int, UnsafeBufferPointer<Float>) -> Void) {
        RAGSegIO.forEachChunk(
            count: count, chunk: chunk, zero: 0,
            walk: { walk(origin: $0, rowStep: 0, columnStep: 1, rows: 1, columns: $1, $2) }, body)
    }

    /// The whole frame as an array (small volumes and tests; the streaming paths never make one).
    public func volume() -> Volume<Float> {
        var values = [Float]()
        values.reserveCapacity(count)
        forEachChunk { _, chunk in values.append(contentsOf: chunk) }
        return Volume(grid: VoxelGrid(shape: shape, values: values), header: header)
    }
}

/// A label map read in place: stored values unscaled, known to be integers in 0...maxLabelValue.
public struct LabelVoxels: Sendable {
    public let header: NIfTIHeader
    let stored: StoredVoxels

    public var shape: [Int] { header.spatialShape }
    public var affine: Affine { header.affine }
    public var count: Int { stored.count }

    @inline(__always)
    func walk(
        origin: Int, rowStep: Int, columnStep: Int, rows: Int, columns: Int, _ body: (Int, UInt16) -> Void
    ) {
        stored.walk(origin: origin, rowStep: rowStep, columnStep: columnStep, rows: rows, columns: columns) { n, v in
            body(n, UInt16(v))
        }
    }

    /// The labels of voxels `range` in stored order (a plane, a chunk).
    public func values(_ range: Range<Int>) -> [UInt16] {
        precondition(range.lowerBound >= 0 && range.upperBound <= count, "voxels \(range) of \(count)")
        return gathered(range.count) {
            walk(origin: range.lowerBound, rowStep: 0, columnStep: 1, rows: 1, columns: range.count, $0)
        }
    }

    /// Every label in stored order, a chunk at a time: `body(firstIndex, values)`.
    public func forEachChunk(_ chunk: Int = 1 << 20, _ body: (Int, [UInt16]) -> Void) {
        for first in stride(from: 0, to: count, by: chunk) { body(first, values(first..<min(count, first + chunk))) }
    }

    public func volume() -> Volume<UInt16> {
        var values = [UInt16]()
        values.reserveCapacity(count)
        forEachChunk { _, chunk in values.append(contentsOf: chunk) }
        return Volume(grid: VoxelGrid(shape: shape, values: values), header: header)
    }
}

extension VolumeVoxels {
    /// Frame `frame` (0-based, over dimensions 4...7 in file order) as intensities: stored values times
    /// scl_slope plus scl_inter (unless scl_slope is 0 or not finite: then unscaled, as nibabel does),
    /// computed in Double and rounded to Float. `frame` may be nil only for a single-frame image.
    /// NaN or infinite intensities are refused (they have no place on a window and would poison percentiles):
    /// one pass over the frame finds them before anything else reads it.
    public func intensities(frame: Int?, name: String) throws -> IntensityVoxels {
        let frameCount = header.frameCount
        let chosen: Int
        if let frame {
            guard (0..<frameCount).contains(frame) else {
                throw RAGSegIOError(
                    path: name,
                    message:
                        """
                        has \(frameCount) frame(s) (dimensions \(describeShape(header.shape))); frame \(frame) does \
                        not exist
                        """
                )
            }
            chosen = frame
        } else {
            guard frameCount == 1 else {
                throw RAGSegIOError(
                    path: name,
                    message: "is \(header.dimensionCount)-D (\(describeShape(header.shape))) with \(frameCount) frames "
                        + "(time points or channels); choose one (--channel N, 0-based)")
            }
            chosen = 0
        }
        let shape = header.spatialShape
        let n = shape.reduce(1, *)
        var slope = header.sclSlope, inter = header.sclInter
        if slope == 0 || !slope.isFinite {
            slope = 1; inter = 0
        } else if !inter.isFinite {
            throw RAGSegIOError(path: name, message: "scl_slope is \(slope) but scl_inter is \(inter)")
        }
        let voxels = IntensityVoxels(
            header: header, stored: stored.part(chosen * n..<(chosen + 1) * n), slope: slope, inter: inter)
        var nonFinite = 0, first = -1
        voxels.forEachChunk { start, values in
            for (i, v) in values.enumerated() where !v.isFinite {
                nonFinite += 1
                if first < 0 { first = start + i }
            }
        }
        if nonFinite > 0 {
            let (i, j, k) = (first % shape[0], first / shape[0] % shape[1], first / (shape[0] * shape[1]))
            throw RAGSegIOError(
                path: name,
                message: "\(nonFinite) voxel(s) are NaN or infinite after scaling (first at voxel (\(i), \(j), \(k))); "
                    + "RAGSeg refuses non-finite intensities")
        }
        return voxels
    }

    /// The image as a label map: stored values without scaling (scl_slope/scl_inter are ignored, as
    /// label maps must be), each an integer in 0...65535. Float storage is accepted when every value
    /// is integral. A label map must have one frame. One pass checks every voxel; the first bad one is named.
    public func labels(name: String) throws -> LabelVoxels {
        guard header.frameCount == 1 else {
            throw RAGSegIOError(
                path: name, message: "a label map must be 3-D, this one is \(describeShape(header.shape))")
        }
        let shape = header.spatialShape
        var bad: (index: Int, value: Double)? = nil
        stored.forEachChunk { start, values in
            guard bad == nil else { return }
            for (offset, v) in values.enumerated() where !(v >= 0 && v <= Double(maxLabelValue) && v == v.rounded()) {
                bad = (start + offset, v)
                return
            }
        }
        if let (index, v) = bad {
            let (i, j, k) = (index % shape[0], index / shape[0] % shape[1], index / (shape[0] * shape[1]))
            let problem =
                v.isNaN ? "NaN" : v < 0 ? "negative" : v != v.rounded() ? "not an integer" : "above \(maxLabelValue)"
            throw RAGSegIOError(
                path: name,
                message:
                    """
                    label value \(v) at voxel (\(i), \(j), \(k)) is \(problem); labels must be integers in \
                    0...\(maxLabelValue)
                    """
            )
        }
        return LabelVoxels(header: header, stored: stored)
    }
}

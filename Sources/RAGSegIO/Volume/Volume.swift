// 3-D volumes taken out of NIfTI images: intensities (scaled, finite, one frame) and label maps
// (unscaled non-negative integers), and label maps written back with the image's exact geometry.

/// Values on a 3-D voxel grid, first axis fastest: voxel (i, j, k) is `values[i + n0 * (j + n1 * k)]`.
public struct VoxelGrid<Element: Sendable & Equatable>: Sendable, Equatable {
    public var shape: [Int]
    public var values: [Element]

    public init(shape: [Int], values: [Element]) {
        precondition(
            shape.count == 3 && shape.reduce(1, *) == values.count,
            "grid shape \(shape) does not hold \(values.count) values")
        self.shape = shape
        self.values = values
    }

    public subscript(i: Int, j: Int, k: Int) -> Element {
        get { values[i + shape[0] * (j + shape[1] * k)] }
        set { values[i + shape[0] * (j + shape[1] * k)] = newValue }
    }
}

/// A grid with the header it came from (its geometry: `header.affine` maps grid indices to world mm).
public struct Volume<Element: Sendable & Equatable>: Sendable, Equatable {
    public var grid: VoxelGrid<Element>
    public var header: NIfTIHeader

    public init(grid: VoxelGrid<Element>, header: NIfTIHeader) {
        self.grid = grid
        self.header = header
    }

    public var affine: Affine { header.affine }
}

/// Largest label a label map may hold (they are stored as UInt16).
public let maxLabelValue = 65535

/// How far a label map's affine may differ from its image's, per entry, relative to max(1, |value|):
/// 1e-4, i.e. 0.1 µm on a 1 mm voxel, 0.01 mm on a 100 mm offset (float32 headers keep about 1e-7).
public let labelAffineTolerance = 1e-4

extension NIfTIImage {
    /// Frame `frame` (0-based, over dimensions 4...7 in file order) as intensities: stored values times
    /// scl_slope plus scl_inter (unless scl_slope is 0 or not finite: then unscaled, as nibabel does),
    /// computed in Double and rounded to Float. `frame` may be nil only for a single-frame image.
    /// NaN or infinite intensities are refused (they have no place on a window and would poison percentiles).
    public func intensities(frame: Int?, name: String) throws -> Volume<Float> {
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
        let stored = voxels.doubles(chosen * n..<(chosen + 1) * n)
        var values = [Float](repeating: 0, count: n)
        var nonFinite = 0, first = -1
        for i in 0..<n {
            let v = Float(stored[i] * slope + inter)
            if !v.isFinite {
                nonFinite += 1
                if first < 0 { first = i }
            }
            values[i] = v
        }
        if nonFinite > 0 {
            let (i, j, k) = (first % shape[0], first / shape[0] % shape[1], first / (shape[0] * shape[1]))
            throw RAGSegIOError(
                path: name,
                message: "\(nonFinite) voxel(s) are NaN or infinite after scaling (first at voxel (\(i), \(j), \(k))); "
                    + "RAGSeg refuses non-finite intensities")
        }
        return Volume(grid: VoxelGrid(shape: shape, values: values), header: header)
    }

    /// The image as a label map: stored values without scaling (scl_slope/scl_inter are ignored, as
    /// label maps must be), each an integer in 0...65535. Float storage is accepted when every value
    /// is integral. A label map must have one frame.
    public func labels(name: String) throws -> Volume<UInt16> {
        guard header.frameCount == 1 else {
            throw RAGSegIOError(
                path: name, message: "a label map must be 3-D, this one is \(describeShape(header.shape))")
        }
        let shape = header.spatialShape
        let stored = voxels.doubles(0..<voxels.count)
        var labels = [UInt16](repeating: 0, count: stored.count)
        for (index, v) in stored.enumerated() {
            guard v >= 0, v <= Double(maxLabelValue), v == v.rounded() else {
                let (i, j, k) = (index % shape[0], index / shape[0] % shape[1], index / (shape[0] * shape[1]))
                let problem =
                    v.isNaN
                    ? "NaN" : v < 0 ? "negative" : v != v.rounded() ? "not an integer" : "above \(maxLabelValue)"
                throw RAGSegIOError(
                    path: name,
                    message:
                        """
                        label value \(v) at voxel (\(i), \(j), \(k)) is \(problem); labels must be integers in \
                        0...\(maxLabelValue)
                        """
                )
            }
            labels[index] = UInt16(v)
        }
        return Volume(grid: VoxelGrid(shape: shape, values: labels), header: header)
    }

    /// A label map for `reference`'s grid: the reference's dimensions (spatial ones), pixdim, qform and
    /// sform (codes and parameters), units, slice and orientation fields, byte order and NIfTI version
    /// unchanged; datatype uint8, or uint16 past label 255; no scaling (slope 1, intercept 0); display
    /// range and intent cleared.
    public static func labelMap(_ labels: VoxelGrid<UInt16>, like reference: NIfTIHeader) -> NIfTIImage {
        precondition(
            labels.shape == reference.spatialShape,
            "label grid \(labels.shape) is not the reference's \(reference.spatialShape)")
        var header = reference
        let spatial = header.dim[0] >= 3 ? 3 : header.dim[0]
        header.dim[0] = spatial
        for i in (spatial + 1)..<8 { header.dim[i] = 1 }
        header.sclSlope = 1; header.sclInter = 0
        header.calMin = 0; header.calMax = 0
        header.intentCode = 0; header.intentP1 = 0; header.intentP2 = 0; header.intentP3 = 0
        header.intentName = Array(repeating: 0, count: 16)
        header.setDescription("RAGSeg label map")
        let wide = labels.values.contains { $0 > 255 }
        return NIfTIImage(
            header: header, voxels: wide ? .uint16(labels.values) : .uint8(labels.values.map { UInt8($0) }))
    }
}

extension Volume {
    /// Checks that `labels` (read from `labelName`) lies on this volume's grid: the same spatial
    /// dimensions and affines agreeing entry-wise within `labelAffineTolerance` (see there).
    public func checkSameGrid<Other: Sendable & Equatable>(as labels: Volume<Other>, labelName: String) throws {
        guard labels.grid.shape == grid.shape else {
            throw RAGSegIOError(
                path: labelName,
                message:
                    """
                    label map dimensions \(describeShape(labels.grid.shape)) differ from the image's \
                    \(describeShape(grid.shape))
                    """
            )
        }
        guard labels.affine.agrees(with: affine, tolerance: labelAffineTolerance) else {
            throw RAGSegIOError(
                path: labelName,
                message: "label map affine differs from the image's by up to \(labels.affine.maxDifference(affine)) "
                    + """
                    (tolerance \(labelAffineTolerance) x max(1, |entry|)); \
                    label:\n\(labels.affine)\nimage:\n\(affine)
                    """
            )
        }
    }
}

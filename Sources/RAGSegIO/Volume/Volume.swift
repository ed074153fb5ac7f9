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
    /// Frame `frame` as intensities (`VolumeVoxels.intensities`, whose rules these are), as an array.
    public func intensities(frame: Int?, name: String) throws -> Volume<Float> {
        try VolumeVoxels(self).intensities(frame: frame, name: name).volume()
    }

    /// The image as a label map (`VolumeVoxels.labels`, whose rules these are), as an array.
    public func labels(name: String) throws -> Volume<UInt16> {
        try VolumeVoxels(self).labels(name: name).volume()
    }

    /// A label map for `reference`'s grid: the reference's dimensions (spatial ones), pixdim, qform and
    /// sform (codes and parameters), units, slice and orientation fields, byte order and NIfTI version
    /// unchanged; datatype uint8, or uint16 past label 255; no scaling (slope 1, intercept 0); display
    /// range and intent cleared.
    public static func labelMap(_ labels: VoxelGrid<UInt16>, like reference: NIfTIHeader) -> NIfTIImage {
        precondition(
            labels.shape == reference.spatialShape,
            "label grid \(labels.shape) is not the reference's \(reference.spatialShape)")
        let wide = labels.values.contains { $0 > 255 }
        return NIfTIImage(
            header: labelMapHeader(like: reference),
            voxels: wide ? .uint16(labels.values) : .uint8(labels.values.map { UInt8($0) }))
    }

    /// The header of a label map for `reference`'s grid (see `labelMap`; the datatype is set by the voxels).
    static func labelMapHeader(like reference: NIfTIHeader) -> NIfTIHeader {
        var header = reference
        let spatial = header.dim[0] >= 3 ? 3 : header.dim[0]
        header.dim[0] = spatial
        for i in (spatial + 1)..<8 { header.dim[i] = 1 }
        header.sclSlope = 1; header.sclInter = 0
        header.calMin = 0; header.calMax = 0
        header.intentCode = 0; header.intentP1 = 0; header.intentP2 = 0; header.intentP3 = 0
        header.intentName = Array(repeating: 0, count: 16)
        header.setDescription("RAGSeg label map")
        return header
    }
}

extension Volume {
    /// Checks that `labels` (read from `labelName`) lies on this volume's grid: the same spatial
    /// dimensions and affines agreeing entry-wise within `labelAffineTolerance` (see there).
    public func checkSameGrid<Other: Sendable & Equatable>(as labels: Volume<Other>, labelName: String) throws {
        try RAGSegIO.checkSameGrid(
            shape: grid.shape, affine: affine, labelShape: labels.grid.shape, labelAffine: labels.affine,
            labelName: labelName)
    }
}

/// Checks that a label map (its shape and affine, read from `labelName`) lies on an image's grid: the same
/// spatial dimensions and affines agreeing entry-wise within `labelAffineTolerance` (see there).
public func checkSameGrid(shape: [Int], affine: Affine, labelShape: [Int], labelAffine: Affine, labelName: String)
    throws
{
    guard labelShape == shape else {
        throw RAGSegIOError(
            path: labelName,
            message:
                """
                label map dimensions \(describeShape(labelShape)) differ from the image's \(describeShape(shape))
                """
        )
    }
    guard labelAffine.agrees(with: affine, tolerance: labelAffineTolerance) else {
        throw RAGSegIOError(
            path: labelName,
            message: "label map affine differs from the image's by up to \(labelAffine.maxDifference(affine)) "
                + """
                (tolerance \(labelAffineTolerance) x max(1, |entry|)); \
                label:\n\(labelAffine)\nimage:\n\(affine)
                """
        )
    }
}

// A volume's slices as the images the models take: cut in display orientation (VolumeSlices), mapped to
// bytes by the one 8-bit rule (eightBit) with bounds taken from the whole volume, and handed over as the
// same 8-bit gray PNGImage a 2-D case is read as. One slice is made at a time, on demand.

/// The slices of one intensity volume along one axis, as 8-bit gray images.
public struct VolumeSliceImages: Sendable {
    public let slices: VolumeSlices<Float>
    public let mapping: IntensityMapping
    /// The clipping range of `mapping` for this volume (percentiles: of the whole volume's nonzero voxels).
    public let lower: Double
    public let upper: Double
    /// Voxel sizes (mm) along the canonical axes x, y, z.
    public let canonicalSpacing: [Double]

    /// `volume` read from `name` (named in errors: an affine without a usable orientation).
    public init(_ volume: Volume<Float>, axis: SliceAxis, mapping: IntensityMapping, name: String) throws {
        slices = try VolumeSlices(volume, axis: axis, name: name)
        self.mapping = mapping
        let bounds = mapping.bounds(volume.grid.values)
        lower = bounds.lower
        upper = bounds.upper
        canonicalSpacing = slices.reorientation.canonicalSpacing(volume.affine)
    }

    public var count: Int { slices.count }
    public var width: Int { slices.width }
    public var height: Int { slices.height }

    /// Millimetres between columns, between rows, and between slices, as a slice is shown.
    public var displaySpacing: [Double] {
        [
            canonicalSpacing[slices.axis.columnAxis], canonicalSpacing[slices.axis.rowAxis],
            canonicalSpacing[slices.axis.normal],
        ]
    }

    /// Slice `index` as bytes, row-major in display orientation.
    public func gray(_ index: Int) -> [UInt8] {
        eightBit(slices.slice(index), lower: lower, upper: upper)
    }

    /// Slice `index` as an 8-bit gray image: what reading the same bytes from a gray PNG gives.
    public func image(_ index: Int) -> PNGImage {
        PNGImage(width: width, height: height, channels: 1, bitDepth: 8, pixels: gray(index).map { UInt16($0) })
    }
}

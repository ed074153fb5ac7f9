// A volume's slices as the 8-bit gray images the models take, by the one rule every volume path uses:
// canonical slicing along the axis (`VolumeSlices`), the intensity mapping's bounds computed once over
// the whole volume, then `eightBit`. The image is a 1-channel 8-bit `PNGImage`: exactly what `PNG.read`
// gives for the same slice exported as an 8-bit gray PNG, so both reach the encoders as the same bytes.

/// The model input images of one intensity volume along one axis. Slices are computed on demand from the
/// stored voxels (a slice's intensities exist only while it is made): memory does not grow with the volume.
public struct VolumeSliceImages: Sendable {
    public let voxels: IntensityVoxels
    public let layout: SliceLayout
    public let mapping: IntensityMapping
    /// The clipping range `mapping` gives for this volume (a CT window, or the volume's percentiles).
    public let bounds: (lower: Double, upper: Double)
    /// Millimetres between columns, between rows and between slices, as the slices are shown.
    public let spacing: [Double]

    /// `volume` (read from `name`, for errors) cut along `axis`, its intensities mapped by `mapping`.
    public init(_ volume: Volume<Float>, axis: SliceAxis, mapping: IntensityMapping, name: String) throws {
        try self.init(IntensityVoxels(volume), axis: axis, mapping: mapping, name: name)
    }

    /// Intensities read in place (`VolumeVoxels.intensities`), cut along `axis` and mapped by `mapping`.
    public init(_ voxels: IntensityVoxels, axis: SliceAxis, mapping: IntensityMapping, name: String) throws {
        let reorientation = CanonicalReorientation(
            orientation: try AxisOrientation.closest(to: voxels.affine, name: name), sourceShape: voxels.shape)
        self.voxels = voxels
        layout = SliceLayout(reorientation: reorientation, axis: axis)
        self.mapping = mapping
        bounds = mapping.bounds(voxels)
        let canonical = reorientation.canonicalSpacing(voxels.affine)
        spacing = [canonical[axis.columnAxis], canonical[axis.rowAxis], canonical[axis.normal]]
    }

    public var reorientation: CanonicalReorientation { layout.reorientation }
    public var axis: SliceAxis { layout.axis }
    public var count: Int { layout.count }
    public var width: Int { layout.width }
    public var height: Int { layout.height }

    /// Slice `index`'s intensities, row-major in display orientation.
    public func intensities(_ index: Int) -> [Float] {
        precondition((0..<count).contains(index), "slice \(index) out of 0..<\(count)")
        let (origin, rowStep, columnStep) = layout.storedLayout(index: index)
        return gathered(width * height) {
            voxels.walk(origin: origin, rowStep: rowStep, columnStep: columnStep, rows: height, columns: width, $0)
        }
    }

    /// Slice `index`'s bytes, row-major in display orientation.
    public func bytes(_ index: Int) -> [UInt8] {
        eightBit(intensities(index), lower: bounds.lower, upper: bounds.upper)
    }

    /// Slice `index` as an 8-bit gray image (what an 8-bit gray PNG of these bytes decodes to).
    public func image(_ index: Int) -> PNGImage {
        PNGImage(width: width, height: height, channels: 1, bitDepth: 8, pixels: bytes(index).map(UInt16.init))
    }
}

/// A label volume's slices along one axis, cut on demand from the stored voxels like `VolumeSliceImages`.
public struct LabelSlices: Sendable {
    public let voxels: LabelVoxels
    public let layout: SliceLayout

    /// `voxels` (read from `name`, for errors) cut along `axis`.
    public init(_ voxels: LabelVoxels, axis: SliceAxis, name: String) throws {
        let reorientation = CanonicalReorientation(
            orientation: try AxisOrientation.closest(to: voxels.affine, name: name), sourceShape: voxels.shape)
        self.voxels = voxels
        layout = SliceLayout(reorientation: reorientation, axis: axis)
    }

    public var count: Int { layout.count }
    public var width: Int { layout.width }
    public var height: Int { layout.height }

    /// Slice `index`'s labels, row-major in display orientation.
    public func slice(_ index: Int) -> [UInt16] {
        precondition((0..<count).contains(index), "slice \(index) out of 0..<\(count)")
        let (origin, rowStep, columnStep) = layout.storedLayout(index: index)
        return gathered(width * height) {
            voxels.walk(origin: origin, rowStep: rowStep, columnStep: columnStep, rows: height, columns: width, $0)
        }
    }
}

extension PNGImage {
    /// A label slice as the gray mask image a PNG export of it decodes to: 8-bit while every value fits,
    /// else 16-bit (the values themselves, unscaled).
    public static func labelSlice(_ labels: [UInt16], width: Int, height: Int) -> PNGImage {
        precondition(labels.count == width * height, "\(labels.count) labels for a \(width)x\(height) slice")
        let wide = labels.contains { $0 > 255 }
        return PNGImage(width: width, height: height, channels: 1, bitDepth: wide ? 16 : 8, pixels: labels)
    }
}

// A volume's slices as the 8-bit gray images the models take, by the one rule every volume path uses:
// canonical slicing along the axis (`VolumeSlices`), the intensity mapping's bounds computed once over
// the whole volume, then `eightBit`. The image is a 1-channel 8-bit `PNGImage`: exactly what `PNG.read`
// gives for the same slice exported as an 8-bit gray PNG, so both reach the encoders as the same bytes.

/// The model input images of one intensity volume along one axis.
public struct VolumeSliceImages: Sendable {
    public let slices: VolumeSlices<Float>
    public let mapping: IntensityMapping
    /// The clipping range `mapping` gives for this volume (a CT window, or the volume's percentiles).
    public let bounds: (lower: Double, upper: Double)
    /// Millimetres between columns, between rows and between slices, as the slices are shown.
    public let spacing: [Double]

    /// `volume` (read from `name`, for errors) cut along `axis`, its intensities mapped by `mapping`.
    public init(_ volume: Volume<Float>, axis: SliceAxis, mapping: IntensityMapping, name: String) throws {
        slices = try VolumeSlices(volume, axis: axis, name: name)
        self.mapping = mapping
        bounds = mapping.bounds(volume.grid.values)
        let canonical = slices.reorientation.canonicalSpacing(volume.affine)
        spacing = [canonical[axis.columnAxis], canonical[axis.rowAxis], canonical[axis.normal]]
    }

    public var count: Int { slices.count }
    public var width: Int { slices.width }
    public var height: Int { slices.height }

    /// Slice `index`'s bytes, row-major in display orientation.
    public func bytes(_ index: Int) -> [UInt8] {
        eightBit(slices.slice(index), lower: bounds.lower, upper: bounds.upper)
    }

    /// Slice `index` as an 8-bit gray image (what an 8-bit gray PNG of these bytes decodes to).
    public func image(_ index: Int) -> PNGImage {
        PNGImage(width: width, height: height, channels: 1, bitDepth: 8, pixels: bytes(index).map(UInt16.init))
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

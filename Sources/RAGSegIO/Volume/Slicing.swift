// 2-D slices of a volume in one fixed display orientation, cut from the canonical (RAS+) voxel order
// without resampling, and label slices put back into the volume's own voxel order exactly.
//
// Display orientation (radiological convention, the way a viewer shows the patient):
//   axial    rows anterior -> posterior, columns patient's right -> left (seen from the feet)
//   coronal  rows superior -> inferior,  columns patient's right -> left (seen from the front)
//   sagittal rows superior -> inferior,  columns anterior -> posterior  (seen from the patient's left)
// Slice index s counts along the canonical axis the slices cut, from its low end: axial slices from
// inferior to superior, coronal from posterior to anterior, sagittal from the patient's left to right.

/// The anatomical axis slices are cut across.
public enum SliceAxis: String, CaseIterable, Sendable {
    case axial, coronal, sagittal

    /// The canonical (world) axis normal to the slices: x 0, y 1, z 2.
    public var normal: Int {
        switch self {
        case .axial: 2
        case .coronal: 1
        case .sagittal: 0
        }
    }

    /// The canonical axis that runs down the image rows, and the one across its columns; both are shown
    /// reversed (toward anterior/superior at the top, the patient's right on the left, anterior on the left).
    var rowAxis: Int { self == .axial ? 1 : 2 }
    var columnAxis: Int { self == .sagittal ? 1 : 0 }
}

/// A volume's slices along one axis, ready for the models, and the way back for their label slices.
public struct VolumeSlices<Element: Sendable & Equatable>: Sendable {
    public let reorientation: CanonicalReorientation
    public let axis: SliceAxis
    /// The volume in canonical voxel order.
    public let canonical: VoxelGrid<Element>

    /// `volume` read from `name` (named in errors), sliced along `axis`.
    public init(_ volume: Volume<Element>, axis: SliceAxis, name: String) throws {
        reorientation = try CanonicalReorientation(volume, name: name)
        self.axis = axis
        canonical = reorientation.toCanonical(volume.grid)
    }

    public var count: Int { canonical.shape[axis.normal] }
    public var width: Int { canonical.shape[axis.columnAxis] }
    public var height: Int { canonical.shape[axis.rowAxis] }

    /// Canonical offset of slice `index`'s top-left display pixel, and the offset steps one row down and
    /// one column right (both axes are shown reversed, so the steps are negative strides).
    func displayLayout(index: Int) -> (origin: Int, rowStep: Int, columnStep: Int) {
        let shape = canonical.shape
        let strides = [1, shape[0], shape[0] * shape[1]]
        let origin =
            index * strides[axis.normal] + (shape[axis.rowAxis] - 1) * strides[axis.rowAxis]
            + (shape[axis.columnAxis] - 1) * strides[axis.columnAxis]
        return (origin, -strides[axis.rowAxis], -strides[axis.columnAxis])
    }

    /// Slice `index` (0..<count) in display orientation, row-major `width * height` values.
    public func slice(_ index: Int) -> [Element] {
        precondition((0..<count).contains(index), "slice \(index) out of 0..<\(count)")
        let (origin, rowStep, columnStep) = displayLayout(index: index)
        var values: [Element] = []
        values.reserveCapacity(width * height)
        for row in 0..<height {
            var offset = origin + row * rowStep
            for _ in 0..<width {
                values.append(canonical.values[offset])
                offset += columnStep
            }
        }
        return values
    }

    /// Per-slice values (display orientation, one array of `width * height` per slice, in slice order)
    /// as a grid in the stored volume's own voxel order: the exact inverse of `slice`.
    public func assemble<Value: Sendable & Equatable>(_ slices: [[Value]]) -> VoxelGrid<Value> {
        precondition(slices.count == count, "\(slices.count) slices for a volume of \(count)")
        guard let fill = slices.first?.first else { return VoxelGrid(shape: reorientation.sourceShape, values: []) }
        var canonicalValues = [Value](repeating: fill, count: canonical.values.count)
        for (index, slice) in slices.enumerated() {
            precondition(
                slice.count == width * height, "slice \(index) has \(slice.count) values, expected \(width * height)")
            let (origin, rowStep, columnStep) = displayLayout(index: index)
            for row in 0..<height {
                var offset = origin + row * rowStep
                for column in 0..<width {
                    canonicalValues[offset] = slice[row * width + column]
                    offset += columnStep
                }
            }
        }
        return reorientation.fromCanonical(VoxelGrid(shape: canonical.shape, values: canonicalValues))
    }
}

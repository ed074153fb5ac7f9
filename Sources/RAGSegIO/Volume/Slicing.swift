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

/// Where the slices along one axis lie in a volume's stored voxel order: the canonical order is never
/// materialised, each display pixel is found in the stored array by the reorientation's permutation and flips.
public struct SliceLayout: Sendable, Equatable {
    public let reorientation: CanonicalReorientation
    public let axis: SliceAxis

    public init(reorientation: CanonicalReorientation, axis: SliceAxis) {
        self.reorientation = reorientation
        self.axis = axis
    }

    public var count: Int { reorientation.canonicalShape[axis.normal] }
    public var width: Int { reorientation.canonicalShape[axis.columnAxis] }
    public var height: Int { reorientation.canonicalShape[axis.rowAxis] }

    /// Stored offset of slice `index`'s top-left display pixel, and the stored offset steps one row down and
    /// one column right. Canonical (x, y, z) is stored at `start + x * step[0] + y * step[1] + z * step[2]`;
    /// the display shows the row and column axes reversed, from their high ends.
    public func storedLayout(index: Int) -> (origin: Int, rowStep: Int, columnStep: Int) {
        let (start, step) = reorientation.storedSteps()
        let origin =
            start + index * step[axis.normal] + (height - 1) * step[axis.rowAxis] + (width - 1) * step[axis.columnAxis]
        return (origin, -step[axis.rowAxis], -step[axis.columnAxis])
    }

    /// Calls `body(pixel, storedOffset)` for every display pixel of slice `index`, row-major.
    @inline(__always)
    public func forEachPixel(of index: Int, _ body: (Int, Int) -> Void) {
        let (origin, rowStep, columnStep) = storedLayout(index: index)
        var pixel = 0
        for row in 0..<height {
            var offset = origin + row * rowStep
            for _ in 0..<width {
                body(pixel, offset)
                offset += columnStep
                pixel += 1
            }
        }
    }
}

/// A volume's slices along one axis, ready for the models, and the way back for their label slices; cut
/// from the stored voxels directly (`SliceLayout`), with no reordered copy of the volume.
public struct VolumeSlices<Element: Sendable & Equatable>: Sendable {
    public let layout: SliceLayout
    /// The volume in its stored voxel order.
    public let stored: VoxelGrid<Element>

    /// `volume` read from `name` (named in errors), sliced along `axis`.
    public init(_ volume: Volume<Element>, axis: SliceAxis, name: String) throws {
        layout = SliceLayout(reorientation: try CanonicalReorientation(volume, name: name), axis: axis)
        stored = volume.grid
    }

    public var reorientation: CanonicalReorientation { layout.reorientation }
    public var axis: SliceAxis { layout.axis }
    public var count: Int { layout.count }
    public var width: Int { layout.width }
    public var height: Int { layout.height }

    /// Slice `index` (0..<count) in display orientation, row-major `width * height` values.
    public func slice(_ index: Int) -> [Element] {
        precondition((0..<count).contains(index), "slice \(index) out of 0..<\(count)")
        let n = width * height
        return [Element](unsafeUninitializedCapacity: n) { out, initialized in
            stored.values.withUnsafeBufferPointer { values in
                layout.forEachPixel(of: index) { pixel, offset in
                    (out.baseAddress! + pixel).initialize(to: values[offset])
                }
            }
            initialized = n
        }
    }

    /// Per-slice values (display orientation, one array of `width * height` per slice, in slice order)
    /// as a grid in the stored volume's own voxel order: the exact inverse of `slice`.
    public func assemble<Value: Sendable & Equatable>(_ slices: [[Value]]) -> VoxelGrid<Value> {
        precondition(slices.count == count, "\(slices.count) slices for a volume of \(count)")
        guard let fill = slices.first?.first else { return VoxelGrid(shape: reorientation.sourceShape, values: []) }
        var values = [Value](repeating: fill, count: stored.values.count)
        for (index, slice) in slices.enumerated() {
            precondition(
                slice.count == width * height, "slice \(index) has \(slice.count) values, expected \(width * height)")
            layout.forEachPixel(of: index) { pixel, offset in values[offset] = slice[pixel] }
        }
        return VoxelGrid(shape: reorientation.sourceShape, values: values)
    }
}

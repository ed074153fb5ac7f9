// Voxel sizes and volumes in millimetres and millilitres, from the affine the header's geometry gives
// (nibabel's rule, Geometry.swift) and the header's spatial unit.

extension NIfTIHeader {
    /// Millimetres per unit of the header's spatial unit (xyzt_units & 7): metres 1000, micrometres 0.001,
    /// millimetres and "unknown" (0, which every common tool reads as millimetres) 1.
    public var millimetresPerSpatialUnit: Double {
        switch xyztUnits & 7 {
        case 1: 1000
        case 3: 0.001
        default: 1
        }
    }

    /// Voxel sizes (mm) along the stored axes i, j, k: the lengths of the affine's columns.
    public var voxelSizeMillimetres: [Double] {
        let a = affine, unit = millimetresPerSpatialUnit
        return (0..<3).map { c in (0..<3).map { a[$0, c] * a[$0, c] }.reduce(0, +).squareRoot() * unit }
    }

    /// One voxel's volume in millilitres (cm³): |det| of the affine's 3x3 part, in mm³, divided by 1000.
    /// For an oblique or sheared grid this is the true parallelepiped volume, not the product of the sizes.
    public var voxelVolumeMillilitres: Double {
        let a = affine, unit = millimetresPerSpatialUnit
        let determinant =
            a[0, 0] * (a[1, 1] * a[2, 2] - a[1, 2] * a[2, 1]) - a[0, 1] * (a[1, 0] * a[2, 2] - a[1, 2] * a[2, 0])
            + a[0, 2] * (a[1, 0] * a[2, 1] - a[1, 1] * a[2, 0])
        return abs(determinant) * unit * unit * unit / 1000
    }
}

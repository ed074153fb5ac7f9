// Voxel-to-world geometry from a NIfTI header, by nibabel's rule: the sform when sform_code > 0, else
// the qform (quaternion, qfac and pixdim) when qform_code > 0, else a pixdim-only affine. World
// coordinates are RAS+ millimetres as NIfTI defines them: x grows toward the patient's right, y toward
// anterior, z toward superior.

/// A 4x4 affine, row-major; the last row is (0, 0, 0, 1).
public struct Affine: Sendable, Equatable, CustomStringConvertible {
    public var m: [Double]

    public init(rows: [[Double]]) {
        m = rows.flatMap { $0 } + (rows.count == 3 ? [0, 0, 0, 1] : [])
    }

    public static let identity = Affine(rows: [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]])

    public subscript(row: Int, column: Int) -> Double {
        get { m[row * 4 + column] }
        set { m[row * 4 + column] = newValue }
    }

    /// World coordinates of voxel index (i, j, k).
    public func apply(_ p: [Double]) -> [Double] {
        (0..<3).map { r in self[r, 0] * p[0] + self[r, 1] * p[1] + self[r, 2] * p[2] + self[r, 3] }
    }

    /// Largest absolute entry-wise difference over the top three rows.
    public func maxDifference(_ other: Affine) -> Double {
        (0..<12).map { abs(m[$0] - other.m[$0]) }.max()!
    }

    /// Whether every entry of the top three rows agrees within `tolerance` times max(1, |a|, |b|)
    /// (absolute for rotations and voxel sizes, relative for large offsets).
    public func agrees(with other: Affine, tolerance: Double) -> Bool {
        (0..<12).allSatisfy { abs(m[$0] - other.m[$0]) <= tolerance * max(1, abs(m[$0]), abs(other.m[$0])) }
    }

    public var description: String {
        (0..<4).map { r in "[" + (0..<4).map { String(self[r, $0]) }.joined(separator: ", ") + "]" }.joined(
            separator: "\n")
    }
}

extension NIfTIHeader {
    /// The affine a reader should use (nibabel's rule; see the file comment). Negative codes count as 0.
    public var affine: Affine {
        if sformCode > 0 { return sformAffine }
        if qformCode > 0 { return qformAffine }
        return pixdimAffine
    }

    /// Which of the three sources `affine` came from: "sform", "qform" or "pixdim".
    public var affineSource: String { sformCode > 0 ? "sform" : qformCode > 0 ? "qform" : "pixdim" }

    public var sformAffine: Affine { Affine(rows: [srowX, srowY, srowZ]) }

    /// The qform: rotation from the quaternion (b, c, d; a = sqrt(1 - b² - c² - d²), 0 when that is within
    /// rounding of 0 or negative), voxel sizes |pixdim[1...3]|, the third negated when qfac = pixdim[0] < 0 (a qfac of
    /// 0 counts as 1), offsets qoffset. Follows nibabel's quat2mat, including its normalisation.
    public var qformAffine: Affine {
        let (b, c, d) = (quaternB, quaternC, quaternD)
        let w2 = 1 - (b * b + c * c + d * d)
        // Within three float epsilons of the stored precision, a is taken as exactly 0 (nibabel's threshold).
        let threshold = 3 * (version == 1 ? Double(Float.ulpOfOne) : Double.ulpOfOne)
        let a = abs(w2) < threshold || w2 < 0 ? 0 : w2.squareRoot()
        let n = a * a + b * b + c * c + d * d
        var rotation: [[Double]] = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
        if n >= Double.ulpOfOne {
            let s = 2 / n
            let (x, y, z) = (b * s, c * s, d * s)
            let (wx, wy, wz) = (a * x, a * y, a * z)
            let (xx, xy, xz) = (b * x, b * y, b * z)
            let (yy, yz, zz) = (c * y, c * z, d * z)
            rotation = [
                [1 - (yy + zz), xy - wz, xz + wy],
                [xy + wz, 1 - (xx + zz), yz - wx],
                [xz - wy, yz + wx, 1 - (xx + yy)],
            ]
        }
        var zooms = spacing
        if pixdim[0] < 0 { zooms[2] = -zooms[2] }
        let offsets = [qoffsetX, qoffsetY, qoffsetZ]
        return Affine(rows: (0..<3).map { r in (0..<3).map { rotation[r][$0] * zooms[$0] } + [offsets[r]] })
    }

    /// nibabel's fallback without transform codes: voxel sizes on the diagonal, x negated (radiological
    /// storage assumed, as Analyze did), the volume's centre at the origin.
    public var pixdimAffine: Affine {
        let shape = spatialShape
        var zooms = (1...3).map { pixdim[$0] }
        zooms[0] = -zooms[0]
        return Affine(
            rows: (0..<3).map { r in
                (0..<3).map { $0 == r ? zooms[r] : 0 } + [-Double(shape[r] - 1) / 2 * zooms[r]]
            })
    }

    /// Sets the qform (code `code`) from an affine whose 3x3 part is a rotation (or rotation with a
    /// reflection) times positive voxel sizes; the reflection goes into qfac. libnifti's
    /// nifti_mat44_to_quatern method, without its shear removal (callers pass orthogonal axes).
    public mutating func setQform(_ affine: Affine, code: Int) {
        var columns = (0..<3).map { c in (0..<3).map { affine[$0, c] } }
        let sizes = columns.map { ($0[0] * $0[0] + $0[1] * $0[1] + $0[2] * $0[2]).squareRoot() }
        for c in 0..<3 { columns[c] = columns[c].map { $0 / sizes[c] } }
        let r = (0..<3).map { row in (0..<3).map { columns[$0][row] } }
        let determinant =
            r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1])
            - r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0]) + r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0])
        var m = r
        var qfac = 1.0
        if determinant < 0 {
            qfac = -1
            for row in 0..<3 { m[row][2] = -m[row][2] }
        }
        var a = m[0][0] + m[1][1] + m[2][2] + 1
        var b: Double, c: Double, d: Double
        if a > 0.5 {
            a = 0.5 * a.squareRoot()
            b = 0.25 * (m[2][1] - m[1][2]) / a
            c = 0.25 * (m[0][2] - m[2][0]) / a
            d = 0.25 * (m[1][0] - m[0][1]) / a
        } else {
            let xd = 1 + m[0][0] - (m[1][1] + m[2][2])
            let yd = 1 + m[1][1] - (m[0][0] + m[2][2])
            let zd = 1 + m[2][2] - (m[0][0] + m[1][1])
            if xd > 1 {
                b = 0.5 * xd.squareRoot(); c = 0.25 * (m[0][1] + m[1][0]) / b
                d = 0.25 * (m[0][2] + m[2][0]) / b; a = 0.25 * (m[2][1] - m[1][2]) / b
            } else if yd > 1 {
                c = 0.5 * yd.squareRoot(); b = 0.25 * (m[0][1] + m[1][0]) / c
                d = 0.25 * (m[1][2] + m[2][1]) / c; a = 0.25 * (m[0][2] - m[2][0]) / c
            } else {
                d = 0.5 * zd.squareRoot(); b = 0.25 * (m[0][2] + m[2][0]) / d
                c = 0.25 * (m[1][2] + m[2][1]) / d; a = 0.25 * (m[1][0] - m[0][1]) / d
            }
            if a < 0 { b = -b; c = -c; d = -d }
        }
        quaternB = b; quaternC = c; quaternD = d
        qoffsetX = affine[0, 3]; qoffsetY = affine[1, 3]; qoffsetZ = affine[2, 3]
        pixdim[0] = qfac
        for i in 0..<3 { pixdim[i + 1] = sizes[i] }
        qformCode = code
    }

    /// Sets the sform rows and code.
    public mutating func setSform(_ affine: Affine, code: Int) {
        srowX = (0..<4).map { affine[0, $0] }
        srowY = (0..<4).map { affine[1, $0] }
        srowZ = (0..<4).map { affine[2, $0] }
        sformCode = code
    }
}

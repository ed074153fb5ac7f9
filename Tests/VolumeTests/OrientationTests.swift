import Foundation
import XCTest
@testable import RAGSegIO

/// Canonical slicing: the same anatomy stored in any axis order and direction gives the same slices,
/// and label slices go back into each storage order exactly.
final class OrientationTests: XCTestCase {
    /// A RAS-stored 7x5x4 volume with distinct values, 1.5 x 1.5 x 3 mm, offset from the origin.
    private func rasVolume() -> Volume<Float> {
        let shape = [7, 5, 4]
        var header = NIfTIHeader(shape: shape, datatype: .float32)
        header.setSform(Affine(rows: [[1.5, 0, 0, -20], [0, 1.5, 0, 30], [0, 0, 3, -12]]), code: 1)
        let values = (0..<140).map { Float(($0 * 37) % 140) + 0.5 }
        return Volume(grid: VoxelGrid(shape: shape, values: values), header: header)
    }

    /// The same anatomy stored with axes permuted and flipped, built here independently of the code under
    /// test: new axis a is old axis `order[a]`, reversed when `flips[a]`; the affine keeps every voxel's
    /// world position.
    private func restored<T: Sendable & Equatable>(_ volume: Volume<T>, order: [Int], flips: [Bool]) -> Volume<T> {
        let old = volume.grid.shape
        let shape = order.map { old[$0] }
        var values: [T] = []
        for k in 0..<shape[2] {
            for j in 0..<shape[1] {
                for i in 0..<shape[0] {
                    values.append(volume.grid.values[oldOffset([i, j, k], old: old, order: order, flips: flips)])
                }
            }
        }
        let a = volume.affine
        var start = [0.0, 0.0, 0.0]
        for axis in 0..<3 where flips[axis] { start[order[axis]] = Double(old[order[axis]] - 1) }
        let t = a.apply(start)
        let rows = (0..<3).map { r in (0..<3).map { c in a[r, order[c]] * (flips[c] ? -1 : 1) } + [t[r]] }
        var header = NIfTIHeader(shape: shape, datatype: .float32)
        header.setSform(Affine(rows: rows), code: 1)
        return Volume(grid: VoxelGrid(shape: shape, values: values), header: header)
    }

    private func oldOffset(_ new: [Int], old: [Int], order: [Int], flips: [Bool]) -> Int {
        var index = [0, 0, 0]
        for axis in 0..<3 { index[order[axis]] = flips[axis] ? old[order[axis]] - 1 - new[axis] : new[axis] }
        return index[0] + old[0] * (index[1] + old[1] * index[2])
    }

    static let permutations = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]]
    static let flipSets = (0..<8).map { m in [m & 1 != 0, m & 2 != 0, m & 4 != 0] }

    func testEveryStorageOrderGivesIdenticalSlicesAndMasksBackExactly() throws {
        let base = rasVolume()
        for axis in SliceAxis.allCases {
            let reference = try VolumeSlices(base, axis: axis, name: "ras.nii")
            let referenceSlices = (0..<reference.count).map { reference.slice($0) }
            // A "segmentation" of each slice, computed from what the models see.
            let masks = referenceSlices.map { $0.map { UInt8($0 > 70 ? 1 : 0) } }
            let referenceMask = reference.assemble(masks)
            XCTAssertEqual(
                referenceMask.values, base.grid.values.map { UInt8($0 > 70 ? 1 : 0) }, "\(axis): RAS mask not in place")
            for order in Self.permutations {
                for flips in Self.flipSets {
                    let copy = restored(base, order: order, flips: flips)
                    let slices = try VolumeSlices(copy, axis: axis, name: "copy.nii")
                    let what = "\(axis) order \(order) flips \(flips)"
                    XCTAssertEqual(
                        [slices.count, slices.width, slices.height],
                        [reference.count, reference.width, reference.height], what)
                    for s in 0..<slices.count where slices.slice(s) != referenceSlices[s] {
                        XCTFail("\(what): slice \(s) differs from the RAS-stored volume's")
                        break
                    }
                    let mask = slices.assemble(masks)
                    XCTAssertEqual(mask.shape, copy.grid.shape, what)
                    // In the copy's own order, the mask lies on the voxels it was computed from.
                    XCTAssertEqual(mask.values, copy.grid.values.map { UInt8($0 > 70 ? 1 : 0) }, what)
                    XCTAssertEqual(
                        restored(Volume(grid: referenceMask, header: base.header), order: order, flips: flips).grid,
                        mask, what)
                    assertAffine(
                        slices.reorientation.canonicalAffine(copy.affine),
                        (0..<4).map { r in (0..<4).map { base.affine[r, $0] } },
                        tolerance: 1e-12, "\(what) canonical affine")
                }
            }
        }
    }

    /// The display orientation, stated as expectations on a RAS volume: the patient's right on the left,
    /// anterior (axial) or superior (coronal, sagittal) at the top, anterior on the left in sagittal.
    func testDisplayOrientation() throws {
        let v = rasVolume()
        let (nx, ny, nz) = (7, 5, 4)
        let axial = try VolumeSlices(v, axis: .axial, name: "v")
        XCTAssertEqual([axial.count, axial.width, axial.height], [nz, nx, ny])
        let k = 2
        let a = axial.slice(k)
        XCTAssertEqual(a[0], v.grid[nx - 1, ny - 1, k], "axial top-left: right, anterior")
        XCTAssertEqual(a[nx - 1], v.grid[0, ny - 1, k], "axial top-right: left, anterior")
        XCTAssertEqual(a[(ny - 1) * nx], v.grid[nx - 1, 0, k], "axial bottom-left: right, posterior")

        let coronal = try VolumeSlices(v, axis: .coronal, name: "v")
        XCTAssertEqual([coronal.count, coronal.width, coronal.height], [ny, nx, nz])
        let c = coronal.slice(1)
        XCTAssertEqual(c[0], v.grid[nx - 1, 1, nz - 1], "coronal top-left: right, superior")
        XCTAssertEqual(c[(nz - 1) * nx + nx - 1], v.grid[0, 1, 0], "coronal bottom-right: left, inferior")

        let sagittal = try VolumeSlices(v, axis: .sagittal, name: "v")
        XCTAssertEqual([sagittal.count, sagittal.width, sagittal.height], [nx, ny, nz])
        let s = sagittal.slice(3)
        XCTAssertEqual(s[0], v.grid[3, ny - 1, nz - 1], "sagittal top-left: anterior, superior")
        XCTAssertEqual(s[ny - 1], v.grid[3, 0, nz - 1], "sagittal top-right: posterior, superior")
    }

    /// Oblique affines go to the nearest axes (nibabel's io_orientation results for these matrices).
    func testObliqueAndPermutedAffines() throws {
        let angle = 25.0 * Double.pi / 180
        let rotated = Affine(rows: [[cos(angle), -sin(angle), 0, 0], [sin(angle), cos(angle), 0, 0], [0, 0, 1, 0]])
        XCTAssertEqual(try AxisOrientation.closest(to: rotated, name: "r").codes, "RAS")
        let lps = Affine(rows: [[-0.7, 0, 0, 0], [0, -0.7, 0, 0], [0, 0, 5, 0]])
        XCTAssertEqual(try AxisOrientation.closest(to: lps, name: "l").codes, "LPS")
        // Axis 0 along -y, axis 1 along -x (the synthetic dataset's storage), with a 40 degree tilt.
        let tilt = 40.0 * Double.pi / 180
        let tilted = Affine(rows: [
            [0, -1.5, 0, 0], [-1.5 * cos(tilt), 0, 3 * sin(tilt), 0], [-1.5 * sin(tilt), 0, -3 * cos(tilt), 0],
        ])
        let o = try AxisOrientation.closest(to: tilted, name: "t")
        XCTAssertEqual(o.worldAxis, [1, 0, 2])
        XCTAssertEqual(o.codes, "PLI")
        // Sheared: column 1 leans toward x, still nearest y.
        let sheared = Affine(rows: [[1, 0.6, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]])
        XCTAssertEqual(try AxisOrientation.closest(to: sheared, name: "s").codes, "RAS")
        assertIOError(
            try AxisOrientation.closest(
                to: Affine(rows: [[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0]]), name: "flat.nii"),
            names: "flat.nii", contains: "voxel axis 1 has no extent")
        assertIOError(
            try AxisOrientation.closest(
                to: Affine(rows: [[1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0]]), name: "par.nii"),
            names: "par.nii", contains: "parallel")
    }
}

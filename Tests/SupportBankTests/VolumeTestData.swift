import Foundation
import XCTest
import RAGSegIO

/// Volume datasets for the `index` volume tests, written with the library's NIfTI writer (its own tests
/// check it against nibabel) and read back here only to count what the tests expect.
enum VolumeTestData {
    /// `ragseg sample-data --3d` into `dir`: `cases` CT-like volumes of 32x28x`slices`.
    static func sampleDataset(_ dir: String, cases: Int = 2, slices: Int = 8, seed: Int = 3) throws {
        let r = try runRagseg([
            "sample-data", "--3d", dir, "--cases", "\(cases)", "--size", "32", "--slices", "\(slices)", "--seed",
            "\(seed)",
        ])
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    /// The stored label values of a label volume as integers.
    static func labelValues(_ path: String) throws -> (shape: [Int], values: [Int]) {
        let image = try NIfTI.read(path)
        return (image.header.spatialShape, image.voxels.doubles(0..<image.voxels.count).map { Int($0) })
    }

    /// Indices k of the stored third axis whose slab holds a label (the sample data's third axis runs
    /// inferior -> superior, so these are its axial slice indices).
    static func labelledSlabs(_ path: String) throws -> [Int] {
        let (shape, values) = try labelValues(path)
        let slab = shape[0] * shape[1]
        return (0..<shape[2]).filter { k in values[k * slab..<(k + 1) * slab].contains { $0 != 0 } }
    }

    /// A stand-in bank; `extra` adds create options.
    static func createBank(_ bank: String, _ extra: [String] = []) throws -> RunResult {
        try runRagseg(
            ["index", "create", bank, "--stand-in", "--dinov2-variant", "vits14", "--memory-shape", "4,8,8,16"] + extra)
    }

    static func lines(_ text: String, _ prefix: String) -> [String] {
        text.split(separator: "\n").map(String.init).filter { $0.hasPrefix(prefix) }
    }

    /// A NIfTI image of `shape` with a diagonal 1.5 x 1.5 x 3 mm affine (sform and qform).
    static func image(_ shape: [Int], _ voxels: VoxelData, affine: Affine? = nil) -> NIfTIImage {
        var header = NIfTIHeader(shape: shape, datatype: voxels.datatype)
        let a = affine ?? Affine(rows: [[1.5, 0, 0, -20], [0, 1.5, 0, -18], [0, 0, 3, -9]])
        header.setSform(a, code: 1)
        header.setQform(a, code: 1)
        header.xyztUnits = 2
        return NIfTIImage(header: header, voxels: voxels)
    }
}

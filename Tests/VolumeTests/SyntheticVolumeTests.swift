import Foundation
import XCTest
@testable import RAGSegIO

/// The synthetic nnU-Net dataset behind `ragseg sample-data --3d`.
final class SyntheticVolumeTests: XCTestCase {
    func testDeterministicBySeed() throws {
        let a = SyntheticVolumes.makeCase(index: 2, size: 40, slices: 12, seed: 5)
        let b = SyntheticVolumes.makeCase(index: 2, size: 40, slices: 12, seed: 5)
        let c = SyntheticVolumes.makeCase(index: 2, size: 40, slices: 12, seed: 6)
        let d = SyntheticVolumes.makeCase(index: 3, size: 40, slices: 12, seed: 5)
        XCTAssertEqual(
            try NIfTI.encode(a.image, gzip: true, name: "a"), try NIfTI.encode(b.image, gzip: true, name: "b"))
        XCTAssertEqual(a.labels, b.labels)
        XCTAssertNotEqual(a.image.voxels, c.image.voxels)
        XCTAssertNotEqual(a.labels.voxels, d.labels.voxels)
    }

    func testGeometryValuesAndKnownVolumes() throws {
        for index in 0..<4 {
            let c = SyntheticVolumes.makeCase(index: index, size: 64, slices: 24, seed: 1)
            let image = try c.image.intensities(frame: nil, name: "image")
            let labels = try c.labels.labels(name: "labels")
            XCTAssertEqual(image.grid.shape, [64, 56, 24])
            XCTAssertEqual(c.image.header.datatype, .int16)
            XCTAssertEqual(c.labels.header.datatype, .uint8)
            XCTAssertEqual(c.image.header.spacing, [1.5, 1.5, 3])
            XCTAssertEqual([c.image.header.qformCode, c.image.header.sformCode], [1, 1])
            // The qform (quaternion + qfac) encodes the same permuted, flipped axes as the sform.
            XCTAssertLessThan(c.image.header.qformAffine.maxDifference(c.image.header.sformAffine), 1e-12)
            XCTAssertEqual(c.image.header.pixdim[0], -1)
            try image.checkSameGrid(as: labels, labelName: "labels")
            XCTAssertEqual(c.labels.header.affine, c.image.header.affine)

            XCTAssertEqual(Set(labels.grid.values), [0, 1, 2], "case \(index)")
            let voxelVolume = 1.5 * 1.5 * 3
            let organ = Double(labels.grid.values.filter { $0 >= 1 }.count) * voxelVolume
            let lesion = Double(labels.grid.values.filter { $0 == 2 }.count) * voxelVolume
            // Voxel counts approximate the analytic volumes (boundary voxels make the difference).
            XCTAssertEqual(organ / c.organVolume, 1, accuracy: 0.05, "case \(index) organ")
            XCTAssertEqual(lesion / c.lesionVolume, 1, accuracy: 0.35, "case \(index) lesion")

            // HU-like: air outside the body, the organ brighter than the lesion on average.
            func mean(_ label: UInt16) -> Double {
                let v = zip(image.grid.values, labels.grid.values).filter { $0.1 == label }.map { Double($0.0) }
                return v.reduce(0, +) / Double(v.count)
            }
            XCTAssertEqual(image.grid.values.min()!, -1024, accuracy: 1, "air")
            XCTAssertGreaterThan(mean(1), mean(2) + 30, "case \(index)")
            XCTAssertGreaterThan(mean(1), 50)
        }
    }

    func testSyntheticDatasetIsStoredPermutedAndFlipped() throws {
        let c = SyntheticVolumes.makeCase(index: 0, size: 32, slices: 8, seed: 3)
        let volume = try c.image.intensities(frame: nil, name: "case")
        let reorientation = try CanonicalReorientation(volume, name: "case")
        XCTAssertEqual(reorientation.orientation.codes, "PLS")
        XCTAssertEqual(reorientation.canonicalShape, [28, 32, 8])
        XCTAssertEqual(reorientation.canonicalSpacing(volume.affine), [1.5, 1.5, 3])
    }

    func testDatasetJSON() throws {
        let json = SyntheticVolumes.datasetJSON(cases: 7)
        let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as! [String: Any]
        XCTAssertEqual(object["channel_names"] as? [String: String], ["0": "CT"])
        XCTAssertEqual(object["labels"] as? [String: Int], ["background": 0, "organ": 1, "lesion": 2])
        XCTAssertEqual(object["numTraining"] as? Int, 7)
        XCTAssertEqual(object["file_ending"] as? String, ".nii.gz")
        XCTAssertEqual(SyntheticVolumes.caseID(7), "case_007")
        XCTAssertEqual(SyntheticVolumes.caseID(1234), "case_1234")
    }

    /// With RAGSEG_VOLUME_EXPORT_DIR set, writes files and manifest.json for
    /// `tools/make_volume_fixtures.py --check-written DIR` (nibabel and nifti_tool must read them as we do).
    func testExportForExternalReaders() throws {
        guard let dir = ProcessInfo.processInfo.environment["RAGSEG_VOLUME_EXPORT_DIR"] else {
            throw XCTSkip(
                "set RAGSEG_VOLUME_EXPORT_DIR to write files for tools/make_volume_fixtures.py --check-written")
        }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var manifest: [[String: Any]] = []
        func add(_ image: NIfTIImage, _ name: String) throws {
            try NIfTI.write(image, to: dir + "/" + name)
            let h = image.header
            let volume = try image.intensities(frame: nil, name: name)
            manifest.append([
                "file": name, "shape": h.shape, "datatype": h.datatype.rawValue,
                "affine": (0..<4).map { r in (0..<4).map { h.affine[r, $0] } },
                "qform_code": h.qformCode, "sform_code": h.sformCode, "xyzt_units": h.xyztUnits,
                "float32_fnv1a64": fnv1a64(volume.grid.values),
            ])
        }
        for type in NIfTIDatatype.allCases {
            for version in [1, 2] {
                for little in [true, false] {
                    let values = finiteVoxels(type, count: 60)
                    let image = NIfTIImage(
                        header: RoundTripTests.header(type, version: version, littleEndian: little), voxels: values)
                    try add(image, "\(type.name)-v\(version)-\(little ? "le" : "be").nii.gz")
                }
            }
        }
        for name in ["ATestReferenceImageForReadingAndWriting.nii.gz", "anatomical.nii"] {
            let image = try NIfTI.read(fixture(name))
            let volume = try image.intensities(frame: 0, name: name)
            let labels = volume.grid.values.map {
                UInt16($0 > volume.grid.values[volume.grid.values.count / 2] ? 1 : 0)
            }
            try add(
                NIfTIImage.labelMap(VoxelGrid(shape: volume.grid.shape, values: labels), like: image.header),
                "labels-" + name)
        }
        let c = SyntheticVolumes.makeCase(index: 0, size: 48, slices: 12, seed: 1)
        try add(c.image, "case_000_0000.nii.gz")
        try add(c.labels, "case_000.nii.gz")
        let data = try JSONSerialization.data(withJSONObject: manifest, options: [.prettyPrinted, .sortedKeys])
        try data.write(to: URL(fileURLWithPath: dir + "/manifest.json"))
    }

    private func finiteVoxels(_ type: NIfTIDatatype, count: Int) -> VoxelData {
        switch type {
        case .float32: .float32((0..<count).map { Float($0) * 0.37 - 5 })
        case .float64: .float64((0..<count).map { Double($0) * 0.37 - 5 })
        default: RoundTripTests.voxels(type, count: count)
        }
    }
}

import Foundation
import XCTest
import RAGSegIO

/// `ragseg sample-data --3d`: the synthetic nnU-Net volume dataset, run as the built executable.
final class SampleData3DCommandTests: XCTestCase {
    func testWritesTheLibraryCasesInNnUNetLayout() throws {
        let dir = temporaryDirectory()
        let r = try runRagseg([
            "sample-data", "--3d", dir, "--cases", "3", "--size", "32", "--slices", "6", "--seed", "4",
        ])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("wrote 3 synthetic CT-like volumes (32x28x6"), r.stdout)
        XCTAssertEqual(
            try FileManager.default.contentsOfDirectory(atPath: dir + "/imagesTr").sorted(),
            ["case_000_0000.nii.gz", "case_001_0000.nii.gz", "case_002_0000.nii.gz"])
        XCTAssertEqual(
            try FileManager.default.contentsOfDirectory(atPath: dir + "/labelsTr").sorted(),
            ["case_000.nii.gz", "case_001.nii.gz", "case_002.nii.gz"])
        for i in 0..<3 {
            let expected = SyntheticVolumes.makeCase(index: i, size: 32, slices: 6, seed: 4)
            let id = SyntheticVolumes.caseID(i)
            XCTAssertEqual(try NIfTI.read(dir + "/imagesTr/\(id)_0000.nii.gz"), expected.image, id)
            XCTAssertEqual(try NIfTI.read(dir + "/labelsTr/\(id).nii.gz"), expected.labels, id)
        }
        let json = try Data(contentsOf: URL(fileURLWithPath: dir + "/dataset.json"))
        XCTAssertEqual(String(decoding: json, as: UTF8.self), SyntheticVolumes.datasetJSON(cases: 3))
        XCTAssertEqual(
            try NnUNetDataset.defaultIntensityMapping(datasetJSON: [UInt8](json), name: "dataset.json"), .ctDefault)

        // Same seed, same bytes.
        let again = temporaryDirectory()
        XCTAssertEqual(
            try runRagseg([
                "sample-data", "--3d", again, "--cases", "3", "--size", "32", "--slices", "6", "--seed", "4",
            ]).status, 0)
        XCTAssertEqual(
            try Data(contentsOf: URL(fileURLWithPath: dir + "/imagesTr/case_001_0000.nii.gz")),
            try Data(contentsOf: URL(fileURLWithPath: again + "/imagesTr/case_001_0000.nii.gz")))
    }

    func testRefusesBadOptionsAndNonEmptyFolders() throws {
        let dir = temporaryDirectory()
        for (arguments, message) in [
            (["--slices", "2"], "--slices must be in 4...512"),
            (["--size", "600"], "--size must be in 32...512 with --3d"),
            (["--empty-every", "2"], "--empty-every applies to 2-D cases only"),
        ] {
            let r = try runRagseg(["sample-data", "--3d", dir + "/x"] + arguments)
            XCTAssertNotEqual(r.status, 0, arguments.joined(separator: " "))
            XCTAssertTrue(r.stderr.contains(message), r.stderr)
        }
        try FileManager.default.createDirectory(atPath: dir + "/y/imagesTr", withIntermediateDirectories: true)
        try Data([1]).write(to: URL(fileURLWithPath: dir + "/y/imagesTr/old.nii.gz"))
        let r = try runRagseg(["sample-data", "--3d", dir + "/y", "--cases", "1", "--size", "32", "--slices", "4"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("imagesTr: is not empty"), r.stderr)
    }
}

import Foundation
import XCTest
import RAGSegIO
import RAGSegTestSupport
@testable import SupportBank

/// `ragseg index create/add/remove/info` on volume datasets (stand-in encoders: these tests are about which
/// slices become cases and what the bank records, not about model outputs).
final class VolumeIndexCLITests: XCTestCase {
    func testNnUNetVolumesEndToEnd() throws {
        let dir = temporaryDirectory()
        let data = dir + "/Dataset"
        try VolumeTestData.sampleDataset(data, cases: 2, slices: 8)
        let bank = dir + "/bank"
        var r = try VolumeTestData.createBank(bank, ["--dataset", data])
        XCTAssertEqual(r.status, 0, r.stderr)
        // dataset.json names channel 0 "CT": the abdomen window; labels from the dataset.
        XCTAssertTrue(r.stdout.contains("2 labels (organ, lesion)"), r.stdout)
        XCTAssertTrue(r.stdout.contains("volumes: axial, window 400,40, channel 0"), r.stdout)

        r = try runRagseg(["index", "add", bank, "--dataset", data, "--stand-in", "--empty-slices", "3"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let added = VolumeTestData.lines(r.stdout, "added\t")
        // Expected from the label files themselves: labelled slabs, plus empty ones 1st, 4th, 7th...
        var expected = [String]()
        for id in ["case_000", "case_001"] {
            let labelled = try VolumeTestData.labelledSlabs(data + "/labelsTr/\(id).nii.gz")
            let empty = (0..<8).filter { !labelled.contains($0) }
            let chosen = Set(labelled + empty.enumerated().filter { $0.offset % 3 == 0 }.map(\.element))
            XCTAssertFalse(labelled.isEmpty)
            expected += chosen.sorted().map { data + "/imagesTr/\(id)_0000.nii.gz#axial:\($0)" }
        }
        XCTAssertEqual(added.map { String($0.split(separator: "\t")[2]) }, expected, r.stdout)
        XCTAssertTrue(r.stderr.contains("slices,"), "progress in slices: \(r.stderr)")

        // Records carry the origin.
        let records = try SupportBank.open(at: bank, readOnly: true).allRecords()
        let first = try XCTUnwrap(records.first?.origin)
        let volumePath = data + "/imagesTr/case_000_0000.nii.gz"
        XCTAssertEqual(first.volume, volumePath)
        XCTAssertEqual(first.axis, "axial")
        XCTAssertEqual(first.spacing, [1.5, 1.5, 3.0])  // columns (x), rows (y), slices (z) of the sample data
        let fileBytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: volumePath)))
        var sha = SHA256()
        fileBytes.withUnsafeBytes { sha.update($0) }
        let volumeHash = hexString(sha.finalize())
        XCTAssertEqual(first.volumeHash, volumeHash)
        XCTAssertEqual(records.first?.mask, data + "/labelsTr/case_000.nii.gz#axial:\(first.slice)")

        r = try runRagseg(["index", "info", bank])
        XCTAssertTrue(
            r.stdout.contains(
                "volumes         axial, window 400,40, channel 0; \(expected.count) slices of 2 volume(s)"), r.stdout)

        // Re-adding is a no-op.
        r = try runRagseg(["index", "add", bank, "--dataset", data, "--stand-in", "--empty-slices", "3"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(VolumeTestData.lines(r.stdout, "added\t").count, 0)
        XCTAssertEqual(VolumeTestData.lines(r.stdout, "duplicate\t").count, expected.count)
        XCTAssertTrue(r.stderr.contains("\(expected.count) slices already in the bank"), r.stderr)

        // Removing by volume: by path, then by hash; every slice of that volume in one go.
        let ofFirst = records.filter { $0.origin?.volumeHash == volumeHash }.count
        r = try runRagseg(["index", "remove", bank, "--volume", volumePath])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(VolumeTestData.lines(r.stdout, "removed\t").count, ofFirst)
        r = try runRagseg(["index", "remove", bank, "--volume", volumeHash])
        XCTAssertNotEqual(r.status, 0, "already removed")
        XCTAssertTrue(r.stderr.contains("nothing was removed"), r.stderr)
        let second = try XCTUnwrap(records.last?.origin?.volumeHash)
        r = try runRagseg(["index", "remove", bank, "--volume", second.uppercased()])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(VolumeTestData.lines(r.stdout, "removed\t").count, expected.count - ofFirst)
        r = try runRagseg(["index", "verify", bank])
        XCTAssertEqual(r.status, 0, r.stdout)
        XCTAssertTrue(r.stdout.contains("0 cases, 0 memories"), r.stdout)
        r = try runRagseg(["index", "remove", bank, "1", "--volume", second])
        XCTAssertNotEqual(r.status, 0)
    }

    /// Folders of volumes pair by stem; the default empty-slice rule keeps one in 10; settings given at
    /// create are recorded.
    func testFoldersOfVolumesAndCreateSettings() throws {
        let dir = temporaryDirectory()
        let data = dir + "/Dataset"
        try VolumeTestData.sampleDataset(data, cases: 1, slices: 24)
        let bank = dir + "/bank"
        var r = try VolumeTestData.createBank(bank, ["--labels", "organ,lesion", "--percentile", "1,99"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("volumes: axial, percentile 1,99, channel 0"), r.stdout)
        r = try runRagseg([
            "index", "add", bank, "--images", data + "/imagesTr", "--masks", data + "/labelsTr", "--stand-in",
        ])
        XCTAssertEqual(r.status, 0, r.stderr)
        let labelled = try VolumeTestData.labelledSlabs(data + "/labelsTr/case_000.nii.gz")
        let empty = 24 - labelled.count
        XCTAssertGreaterThan(empty, 10, "the test needs more than 10 empty slices")
        XCTAssertEqual(VolumeTestData.lines(r.stdout, "added\t").count, labelled.count + (empty + 9) / 10)
        // The same pair through --list (relative to the CSV's folder) gives the same cases: all already stored.
        try "image,mask\nimagesTr/case_000_0000.nii.gz,labelsTr/case_000.nii.gz\n".write(
            toFile: data + "/volumes.csv", atomically: true, encoding: .utf8)
        r = try runRagseg(["index", "add", bank, "--list", data + "/volumes.csv", "--stand-in"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(VolumeTestData.lines(r.stdout, "added\t").count, 0, r.stdout)
        XCTAssertEqual(VolumeTestData.lines(r.stdout, "duplicate\t").count, labelled.count + (empty + 9) / 10)
        // A list mixing volumes and 2-D images is refused.
        try "imagesTr/case_000_0000.nii.gz,labelsTr/case_000.nii.gz\na.png,b.png\n".write(
            toFile: data + "/mixed.csv", atomically: true, encoding: .utf8)
        r = try runRagseg(["index", "add", bank, "--list", data + "/mixed.csv", "--stand-in"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("mixes NIfTI volumes (1 rows) with 2-D images (1 rows)"), r.stderr)
        // Options that differ from the bank's settings are refused.
        r = try runRagseg([
            "index", "add", bank, "--images", data + "/imagesTr", "--masks", data + "/labelsTr", "--stand-in",
            "--window", "lung",
        ])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("was built with volume settings axial, percentile 1,99, channel 0"), r.stderr)

        r = try VolumeTestData.createBank(dir + "/coronal", ["--slice-axis", "coronal", "--window", "350,50"])
        XCTAssertTrue(r.stdout.contains("volumes: coronal, window 350,50, channel 0"), r.stdout)
        r = try VolumeTestData.createBank(dir + "/bad", ["--slice-axis", "oblique"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("unknown --slice-axis oblique"), r.stderr)
    }

    /// A 2-D bank's metadata has no volume settings (as before volumes existed); its first volume add
    /// records them (defaults and the options given), and 2-D options stay 2-D only.
    func testTwoDimensionalBankGetsSettingsWithItsFirstVolume() throws {
        let dir = temporaryDirectory()
        let bank = dir + "/bank"
        var r = try VolumeTestData.createBank(bank)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertFalse(r.stdout.contains("volumes:"), r.stdout)
        let b = try SupportBank.open(at: bank, readOnly: true)
        let raw = try b.env.read { txn in try txn.get(b.meta, key: Array("bank".utf8)) }
        XCTAssertFalse(String(decoding: try XCTUnwrap(raw), as: UTF8.self).contains("volume"))
        XCTAssertNil(b.metadata.volumeSettings)
        r = try runRagseg(["index", "info", bank])
        XCTAssertFalse(r.stdout.contains("volumes"), r.stdout)

        let (images, masks) = try writeDataset(dir, count: 2)
        r = try runRagseg(["index", "add", bank, "--images", images, "--masks", masks, "--stand-in", "--channel", "1"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("are for volumes"), r.stderr)

        let data = dir + "/Dataset"
        try VolumeTestData.sampleDataset(data, cases: 1, slices: 6)
        r = try runRagseg([
            "index", "add", bank, "--dataset", data, "--stand-in", "--slice-axis", "sagittal", "--quiet",
        ])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertGreaterThan(VolumeTestData.lines(r.stdout, "added\t").count, 0)
        XCTAssertTrue(r.stdout.contains("#sagittal:"), r.stdout)
        XCTAssertEqual(
            try SupportBank.open(at: bank, readOnly: true).metadata.volumeSettings,
            VolumeSettings(axis: .sagittal, intensity: .ctDefault, channel: 0))
    }
}

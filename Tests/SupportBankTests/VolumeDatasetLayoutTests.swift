import Foundation
import XCTest
import RAGSegIO
@testable import SupportBank

/// Medical Segmentation Decathlon layout: dataset.json's `training` list, `modality` naming the frames of
/// 4-D images, v1-style labels, macOS `._*` files beside the images.
final class VolumeDatasetLayoutTests: XCTestCase {
    func testMSDDatasetReadsTheChosenFrame() throws {
        let dir = temporaryDirectory()
        let sample = dir + "/sample"
        try VolumeTestData.sampleDataset(sample, cases: 2, slices: 8)
        // Frame 0 is case 0's image, frame 1 case 1's (same grid); the labels are case 1's.
        let first = try NIfTI.read(sample + "/imagesTr/case_000_0000.nii.gz")
        let second = try NIfTI.read(sample + "/imagesTr/case_001_0000.nii.gz")
        guard case .int16(let a) = first.voxels, case .int16(let b) = second.voxels else {
            return XCTFail("sample images are int16")
        }
        var fourD = first
        fourD.header.dim[0] = 4
        fourD.header.dim[4] = 2
        fourD.voxels = .int16(a + b)
        let msd = dir + "/Task99_Synthetic"
        for sub in ["imagesTr", "labelsTr"] {
            try FileManager.default.createDirectory(atPath: msd + "/" + sub, withIntermediateDirectories: true)
        }
        try NIfTI.write(fourD, to: msd + "/imagesTr/syn_001.nii.gz")
        try Data([0, 5, 22, 7]).write(to: URL(fileURLWithPath: msd + "/imagesTr/._syn_001.nii.gz"))
        try FileManager.default.copyItem(
            atPath: sample + "/labelsTr/case_001.nii.gz", toPath: msd + "/labelsTr/syn_001.nii.gz")
        try Data(
            """
            {"name": "Synthetic", "modality": {"0": "FLAIR", "1": "T1w"},
             "labels": {"0": "background", "1": "organ", "2": "lesion"}, "numTraining": 1,
             "training": [{"image": "./imagesTr/syn_001.nii.gz", "label": "./labelsTr/syn_001.nii.gz"}],
             "test": []}
            """.utf8
        ).write(to: URL(fileURLWithPath: msd + "/dataset.json"))

        let bank = dir + "/bank"
        var r = try VolumeTestData.createBank(bank, ["--dataset", msd])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("the dataset has 2 channels (0 FLAIR, 1 T1w); choose one with --channel N"))
        r = try VolumeTestData.createBank(bank, ["--dataset", msd, "--channel", "1"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("2 labels (organ, lesion)"), r.stdout)
        XCTAssertTrue(r.stdout.contains("volumes: axial, percentile 0.5,99.5, channel 1"), r.stdout)
        r = try runRagseg(["index", "add", bank, "--dataset", msd, "--stand-in"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let added = VolumeTestData.lines(r.stdout, "added\t")
        XCTAssertGreaterThan(added.count, 0)
        XCTAssertTrue(
            added[0].hasSuffix(msd + "/imagesTr/syn_001.nii.gz#axial:" + added[0].split(separator: ":").last!))

        // The same slices from case 1's own 3-D file are already in the bank: frame 1 was read, and its
        // percentiles came from that frame alone.
        for sub in ["images", "labels"] {
            try FileManager.default.createDirectory(atPath: dir + "/" + sub, withIntermediateDirectories: true)
        }
        try FileManager.default.copyItem(
            atPath: sample + "/imagesTr/case_001_0000.nii.gz", toPath: dir + "/images/v.nii.gz")
        try FileManager.default.copyItem(atPath: sample + "/labelsTr/case_001.nii.gz", toPath: dir + "/labels/v.nii.gz")
        r = try runRagseg([
            "index", "add", bank, "--images", dir + "/images", "--masks", dir + "/labels", "--stand-in",
        ])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(VolumeTestData.lines(r.stdout, "added\t").count, 0, r.stdout)
        XCTAssertEqual(VolumeTestData.lines(r.stdout, "duplicate\t").count, added.count)
    }

    /// nnU-Net v2 with two channels: the bank's channel picks the CASE_XXXX file, and its name in
    /// channel_names the intensity default.
    func testNnUNetChannelPicksTheFile() throws {
        let dir = temporaryDirectory()
        let data = dir + "/Dataset"
        try VolumeTestData.sampleDataset(data, cases: 2, slices: 8)
        // Channel 1 of case 0 is case 1's image (same grid); case 1 is dropped.
        let images = data + "/imagesTr/"
        try FileManager.default.moveItem(
            atPath: images + "case_001_0000.nii.gz", toPath: images + "case_000_0001.nii.gz")
        try FileManager.default.removeItem(atPath: data + "/labelsTr/case_001.nii.gz")
        let json = try String(contentsOfFile: data + "/dataset.json", encoding: .utf8)
        try json.replacingOccurrences(of: "\"0\": \"CT\"", with: "\"0\": \"CT\",\n    \"1\": \"T2\"")
            .write(toFile: data + "/dataset.json", atomically: true, encoding: .utf8)

        let bank = dir + "/bank"
        var r = try VolumeTestData.createBank(bank, ["--dataset", data])
        XCTAssertTrue(r.stderr.contains("the dataset has 2 channels (0 CT, 1 T2); choose one with --channel N"))
        r = try VolumeTestData.createBank(bank, ["--dataset", data, "--channel", "1"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("volumes: axial, percentile 0.5,99.5, channel 1"), r.stdout)
        r = try runRagseg(["index", "add", bank, "--dataset", data, "--stand-in"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let added = VolumeTestData.lines(r.stdout, "added\t")
        XCTAssertGreaterThan(added.count, 0)
        XCTAssertTrue(added.allSatisfy { $0.contains("/imagesTr/case_000_0001.nii.gz#axial:") }, r.stdout)
        // Re-added under another name by folder, the channel-1 file gives the same cases.
        for sub in ["images", "labels"] {
            try FileManager.default.createDirectory(atPath: dir + "/" + sub, withIntermediateDirectories: true)
        }
        try FileManager.default.copyItem(atPath: images + "case_000_0001.nii.gz", toPath: dir + "/images/v.nii.gz")
        try FileManager.default.copyItem(atPath: data + "/labelsTr/case_000.nii.gz", toPath: dir + "/labels/v.nii.gz")
        r = try runRagseg([
            "index", "add", bank, "--images", dir + "/images", "--masks", dir + "/labels", "--stand-in",
        ])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(VolumeTestData.lines(r.stdout, "duplicate\t").count, added.count, r.stdout)
    }
}

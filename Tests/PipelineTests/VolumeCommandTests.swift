import Foundation
import XCTest
@testable import RAGSegIO
import RAGSegTestSupport
import SupportBank
@testable import RAGSegPipeline

/// `ragseg segment --index BANK VOLUME --out DIR` and `ragseg eval --dataset` as a user runs them (the
/// built executable, a bank of slice cases from the tiny fixture models): outputs, options, bad input.
final class VolumeCommandTests: XCTestCase {
    var directory: URL!
    var sources: [CaseSource] = []
    var bankPath: String!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("ragseg-volcli-\(UUID().uuidString)")
        sources = try (0..<3).map { try VolumeBanks.writeCase(index: $0, to: directory) }
        let retrieval = try FixtureModels.retrievalEncoder(), support = try FixtureModels.supportEncoder()
        bankPath = directory.appendingPathComponent("bank").path
        let bank = try SupportBank.create(
            at: bankPath, metadata: VolumeBanks.metadata(retrieval: retrieval, support: support))
        for source in sources.prefix(2) {
            try bank.add(try VolumeBanks.slices(of: source, retrieval: retrieval, support: support))
        }
        try bank.checkpoint(force: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    func ragseg(_ arguments: [String]) throws -> RagsegBinary.Result {
        try RagsegBinary.run(arguments)
    }

    func segment(_ target: String, out: String, _ extra: [String] = []) throws -> RagsegBinary.Result {
        try ragseg(
            [
                "segment", "--index", bankPath, "--dinov2", FixtureModels.dinov2, "--sam2", FixtureModels.sam2, "--k",
                "2",
                target, "--out", out,
            ] + extra)
    }

    func testSegmentWritesTheLabelVolumeWithTheInputGeometry() throws {
        let out = directory.appendingPathComponent("out").path
        let result = try segment(sources[2].image, out: out, ["--json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let written = (out as NSString).appendingPathComponent("case_002.nii.gz")
        let labels = try NIfTI.read(written), image = try NIfTI.read(sources[2].image)
        XCTAssertEqual(labels.header.dim, image.header.dim)
        XCTAssertEqual(labels.header.pixdim, image.header.pixdim)
        XCTAssertEqual(
            [labels.header.qformCode, labels.header.sformCode], [image.header.qformCode, image.header.sformCode])
        XCTAssertEqual(labels.header.sformAffine, image.header.sformAffine)
        XCTAssertEqual(labels.header.qformAffine, image.header.qformAffine)
        XCTAssertEqual(labels.header.xyztUnits, image.header.xyztUnits)
        XCTAssertEqual(labels.voxels.datatype, .uint8)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let volume = try XCTUnwrap((json["volumes"] as? [[String: Any]])?.first)
        XCTAssertEqual(volume["output"] as? String, written)
        XCTAssertEqual((volume["slices"] as? [Any])?.count, 6)
        let reported = try XCTUnwrap(volume["labels"] as? [[String: Any]])
        let values = try labels.labels(name: written).grid.values
        XCTAssertEqual(reported.map { $0["voxels"] as? Int }, [1, 2].map { v in values.filter { $0 == v }.count })

        // .nii in, .nii out (same name); --slices limits the range; --label picks one label, written as its number.
        let plain = directory.appendingPathComponent("scan.nii").path
        try NIfTI.write(image, to: plain)
        let partial = try segment(plain, out: out, ["--slices", "1:3", "--label", "lesion", "--json"])
        XCTAssertEqual(partial.status, 0, partial.stderr)
        let plainOut = (out as NSString).appendingPathComponent("scan.nii")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: plainOut))
        XCTAssertEqual(Array(bytes.prefix(2)) == [0x1F, 0x8B], false, "a .nii output is not compressed")
        let partJSON = try XCTUnwrap(
            try JSONSerialization.jsonObject(with: Data(partial.stdout.utf8)) as? [String: Any])
        let partVolume = try XCTUnwrap((partJSON["volumes"] as? [[String: Any]])?.first)
        XCTAssertEqual((partVolume["slices"] as? [[String: Any]])?.map { $0["slice"] as? Int }, [1, 2])
        XCTAssertEqual((partVolume["labels"] as? [[String: Any]])?.map { $0["value"] as? Int }, [2])
        let partLabels = try NIfTI.read(plainOut).labels(name: plainOut).grid.values
        XCTAssertTrue(partLabels.allSatisfy { $0 == 0 || $0 == 2 })
    }

    func testBadVolumesAreClearErrorsAndWriteNothing() throws {
        let out = directory.appendingPathComponent("never").path
        let good = try Data(contentsOf: URL(fileURLWithPath: sources[2].image))

        let truncated = directory.appendingPathComponent("truncated.nii.gz").path
        try good.prefix(good.count / 2).write(to: URL(fileURLWithPath: truncated))
        var r = try segment(truncated, out: out)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains(truncated) && r.stderr.contains("truncated"), r.stderr)

        // A header declaring 30000 x 30000 x 30000 int16 voxels, in a file of 352 bytes.
        var header = NIfTIHeader(shape: [2, 2, 2], datatype: .int16)
        header.dim = [3, 30000, 30000, 30000, 1, 1, 1, 1]
        let absurd = directory.appendingPathComponent("absurd.nii").path
        try Data(header.encode() + [0, 0, 0, 0]).write(to: URL(fileURLWithPath: absurd))
        r = try segment(absurd, out: out)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains(absurd) && r.stderr.contains("refused before reading"), r.stderr)

        // Two frames and an explicit channel that does not exist.
        let image = try NIfTI.read(sources[2].image)
        guard case .int16(let values) = image.voxels else { return XCTFail("int16 expected") }
        var fourD = image.header
        fourD.dim[0] = 4
        fourD.dim[4] = 2
        let twoFrames = directory.appendingPathComponent("twoframes.nii.gz").path
        try NIfTI.write(NIfTIImage(header: fourD, voxels: .int16(values + values)), to: twoFrames)
        r = try segment(twoFrames, out: out, ["--channel", "5"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains(twoFrames) && r.stderr.contains("frame 5 does not exist"), r.stderr)

        r = try segment(sources[2].image, out: out, ["--slices", "3:2"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("--slices expects A:B"), r.stderr)
        r = try segment(sources[2].image, out: out, ["--slices", "2:9"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("outside the volume's 6 axial slices"), r.stderr)
        r = try segment(sources[2].image, out: out, ["--window", "wide"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("--window expects"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "nothing may be written for bad input")
    }

    func testEvalOnAVolumeDatasetWithLeaveOneOut() throws {
        // nnU-Net layout: imagesTr/CASE_0000.nii.gz, labelsTr/CASE.nii.gz (the bank's volumes 0 and 1).
        let dataset = directory.appendingPathComponent("Dataset001")
        for folder in ["imagesTr", "labelsTr"] {
            try FileManager.default.createDirectory(
                at: dataset.appendingPathComponent(folder), withIntermediateDirectories: true)
        }
        for i in 0..<2 {
            let id = SyntheticVolumes.caseID(i)
            try FileManager.default.copyItem(
                atPath: sources[i].image, toPath: dataset.appendingPathComponent("imagesTr/\(id)_0000.nii.gz").path)
            try FileManager.default.copyItem(
                atPath: sources[i].mask, toPath: dataset.appendingPathComponent("labelsTr/\(id).nii.gz").path)
        }
        let csv = directory.appendingPathComponent("eval.csv").path
        let r = try ragseg(
            [
                "eval", "--index", bankPath, "--dinov2", FixtureModels.dinov2, "--sam2", FixtureModels.sam2, "--k", "2",
                "--dataset", dataset.path, "--leave-one-out", "--csv", csv,
            ])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("each volume's own slices excluded"), r.stdout)
        let lines = try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 1 + 2 * 2)
        XCTAssertTrue(lines[0].hasPrefix("image,labels,label,label_name,dice,iou,hd95_mm"))
        // Copies of the bank's volumes: matched by content hash (the paths differ), all 6 slices excluded.
        for line in lines.dropFirst() {
            XCTAssertEqual(line.split(separator: ",", omittingEmptySubsequences: false)[11], "6", String(line))
        }
    }
}

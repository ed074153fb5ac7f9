import Foundation
import XCTest
import RAGSegIO
import RAGSegTestSupport
@testable import SupportBank

/// A volume slice is the same case as the same slice exported as 8-bit gray PNGs, and a volume stored in
/// another voxel order (flipped, permuted) gives the same cases.
final class VolumeCaseIdentityTests: XCTestCase {
    /// The abdomen window 400/40 on HU, computed here by the documented rule (clip to [-160, 240], then
    /// floor(x * 255 / 400 + 0.5)).
    static func windowByte(_ hu: Int) -> UInt8 {
        let clipped = Double(min(max(hu, -160), 240))
        return UInt8(((clipped + 160) * 255 / 400 + 0.5).rounded(.down))
    }

    func assertSameCases(
        _ a: SupportBank, _ aIDs: [UInt64], _ b: SupportBank, _ bIDs: [UInt64], line: UInt = #line
    ) throws {
        XCTAssertEqual(aIDs.count, bIDs.count, line: line)
        for (x, y) in zip(aIDs, bIDs) {
            let rx = try XCTUnwrap(try a.record(x)), ry = try XCTUnwrap(try b.record(y))
            XCTAssertEqual(rx.contentHash, ry.contentHash, line: line)
            XCTAssertEqual([rx.width, rx.height], [ry.width, ry.height], line: line)
            XCTAssertEqual(rx.storedMemoryLabels, ry.storedMemoryLabels, line: line)
            XCTAssertEqual(try a.embedding(x), try b.embedding(y), "embedding of \(rx.image)", line: line)
            for label in rx.storedMemoryLabels {
                XCTAssertEqual(try a.memory(x, label: label), try b.memory(y, label: label), line: line)
            }
        }
    }

    /// With the tiny real models: the sample volume's labelled axial slices, exported by hand as 8-bit gray
    /// PNGs (window 400/40) with their label values, are duplicates of the volume's cases in its bank, and
    /// in a bank of their own they get the same embeddings and memories.
    func testSliceAndItsPNGExportAreTheSameCase() throws {
        let dir = temporaryDirectory()
        let data = dir + "/Dataset"
        try VolumeTestData.sampleDataset(data, cases: 1, slices: 6)
        let models = ["--dinov2", FixtureModels.dinov2, "--sam2", FixtureModels.sam2]
        var r = try runRagseg(["index", "create", dir + "/volumes", "--dataset", data] + models)
        XCTAssertEqual(r.status, 0, r.stderr)
        r = try runRagseg(["index", "add", dir + "/volumes", "--dataset", data, "--empty-slices", "0", "--quiet"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let volumeIDs = VolumeTestData.lines(r.stdout, "added\t").map { UInt64($0.split(separator: "\t")[1])! }

        // The sample data stores axis 0 toward posterior, axis 1 toward the patient's left, axis 2 toward
        // superior: axial slice k shown anterior-up, right-left is rows = axis 0, columns = axis 1.
        let image = try NIfTI.read(data + "/imagesTr/case_000_0000.nii.gz")
        let hu = image.voxels.doubles(0..<image.voxels.count).map { Int($0) }
        let (shape, labels) = try VolumeTestData.labelValues(data + "/labelsTr/case_000.nii.gz")
        let (height, width) = (shape[0], shape[1])
        let slabs = try VolumeTestData.labelledSlabs(data + "/labelsTr/case_000.nii.gz")
        for sub in ["png/images", "png/masks"] {
            try FileManager.default.createDirectory(atPath: dir + "/" + sub, withIntermediateDirectories: true)
        }
        for k in slabs {
            var pixels = [UInt8](), mask = [UInt8]()
            for row in 0..<height {
                for column in 0..<width {
                    let v = row + shape[0] * (column + shape[1] * k)
                    pixels.append(Self.windowByte(hu[v]))
                    mask.append(UInt8(labels[v]))
                }
            }
            let name = String(format: "slice%02d.png", k)
            try PNG.writeGray8(pixels, width: width, height: height, to: dir + "/png/images/" + name)
            try PNG.writeGray8(mask, width: width, height: height, to: dir + "/png/masks/" + name)
        }
        r = try runRagseg([
            "index", "add", dir + "/volumes", "--images", dir + "/png/images", "--masks", dir + "/png/masks",
            "--quiet",
        ])
        XCTAssertEqual(r.status, 0, r.stderr)
        let duplicates = VolumeTestData.lines(r.stdout, "duplicate\t").map { UInt64($0.split(separator: "\t")[1])! }
        XCTAssertEqual(duplicates, volumeIDs, r.stdout)

        r = try runRagseg(["index", "create", dir + "/pngs", "--labels", "organ,lesion"] + models)
        XCTAssertEqual(r.status, 0, r.stderr)
        r = try runRagseg([
            "index", "add", dir + "/pngs", "--images", dir + "/png/images", "--masks", dir + "/png/masks", "--quiet",
        ])
        XCTAssertEqual(r.status, 0, r.stderr)
        let pngIDs = VolumeTestData.lines(r.stdout, "added\t").map { UInt64($0.split(separator: "\t")[1])! }
        try assertSameCases(
            try SupportBank.open(at: dir + "/volumes", readOnly: true), volumeIDs,
            try SupportBank.open(at: dir + "/pngs", readOnly: true), pngIDs)
    }

    /// `values` (first axis fastest, `shape`) rearranged: new voxel n lands where old voxel `source(n)` is.
    static func rearranged<T>(_ values: [T], newShape: [Int], source: ([Int]) -> [Int], oldShape: [Int]) -> [T] {
        var out = [T]()
        for c in 0..<newShape[2] {
            for b in 0..<newShape[1] {
                for a in 0..<newShape[0] {
                    let o = source([a, b, c])
                    out.append(values[o[0] + oldShape[0] * (o[1] + oldShape[1] * o[2])])
                }
            }
        }
        return out
    }

    /// The sample volume (stored PLS: posterior, left, superior), the same anatomy stored RAS, and stored
    /// with its axes permuted (SPL) give identical cases: same slice indices, embeddings and memories.
    func testFlippedAndPermutedCopiesGiveIdenticalCases() throws {
        let dir = temporaryDirectory()
        let data = dir + "/Dataset"
        try VolumeTestData.sampleDataset(data, cases: 1, slices: 8)
        let image = try NIfTI.read(data + "/imagesTr/case_000_0000.nii.gz")
        let labels = try NIfTI.read(data + "/labelsTr/case_000.nii.gz")
        guard case .int16(let hu) = image.voxels, case .uint8(let labelValues) = labels.voxels else {
            return XCTFail("sample data are int16 images and uint8 labels")
        }
        let n = image.header.spatialShape
        let a = image.header.affine
        // RAS: x = n1-1-j, y = n0-1-i, z = k.
        var ras = Affine.identity
        // Permuted: new axes (k, i, j).
        var spl = Affine.identity
        for row in 0..<3 {
            ras[row, 0] = -a[row, 1]
            ras[row, 1] = -a[row, 0]
            ras[row, 2] = a[row, 2]
            ras[row, 3] = a[row, 3] + a[row, 0] * Double(n[0] - 1) + a[row, 1] * Double(n[1] - 1)
            spl[row, 0] = a[row, 2]
            spl[row, 1] = a[row, 0]
            spl[row, 2] = a[row, 1]
            spl[row, 3] = a[row, 3]
        }
        let variants: [(name: String, shape: [Int], affine: Affine, source: ([Int]) -> [Int])] = [
            ("ras", [n[1], n[0], n[2]], ras, { p in [n[0] - 1 - p[1], n[1] - 1 - p[0], p[2]] }),
            ("spl", [n[2], n[0], n[1]], spl, { p in [p[1], p[2], p[0]] }),
        ]
        var banks = [(SupportBank, [UInt64], [Int])]()
        for (name, shape, affine, source) in [("pls", n, a, { (p: [Int]) in p })] + variants {
            let folder = dir + "/" + name
            for sub in ["images", "labels"] {
                try FileManager.default.createDirectory(atPath: folder + "/" + sub, withIntermediateDirectories: true)
            }
            let img = VolumeTestData.image(
                shape, .int16(Self.rearranged(hu, newShape: shape, source: source, oldShape: n)), affine: affine)
            let lab = VolumeTestData.image(
                shape, .uint8(Self.rearranged(labelValues, newShape: shape, source: source, oldShape: n)),
                affine: affine)
            try NIfTI.write(img, to: folder + "/images/v.nii.gz")
            try NIfTI.write(lab, to: folder + "/labels/v.nii.gz")
            let bank = folder + "/bank"
            var r = try VolumeTestData.createBank(bank, ["--labels", "organ,lesion", "--window", "abdomen"])
            XCTAssertEqual(r.status, 0, r.stderr)
            r = try runRagseg([
                "index", "add", bank, "--images", folder + "/images", "--masks", folder + "/labels", "--stand-in",
                "--empty-slices", "2", "--quiet",
            ])
            XCTAssertEqual(r.status, 0, r.stderr)
            let ids = VolumeTestData.lines(r.stdout, "added\t").map { UInt64($0.split(separator: "\t")[1])! }
            let b = try SupportBank.open(at: bank, readOnly: true)
            banks.append((b, ids, try ids.map { try XCTUnwrap(try b.record($0)?.origin?.slice) }))
        }
        let (reference, referenceIDs, referenceSlices) = banks[0]
        XCTAssertGreaterThan(referenceIDs.count, 3)
        for (bank, ids, slices) in banks.dropFirst() {
            XCTAssertEqual(slices, referenceSlices)
            try assertSameCases(reference, referenceIDs, bank, ids)
        }
    }
}

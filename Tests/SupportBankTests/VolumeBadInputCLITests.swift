import Foundation
import XCTest
import RAGSegIO
@testable import SupportBank

/// `ragseg index add` on bad volumes: each is a clear error naming the file, and the bank is left as it was
/// (no case, no recorded settings).
final class VolumeBadInputCLITests: XCTestCase {
    let shape = [6, 5, 4]
    var count: Int { shape.reduce(1, *) }

    /// A valid image: a ramp of int16 values.
    func goodImage() -> NIfTIImage {
        VolumeTestData.image(shape, .int16((0..<count).map { Int16($0 * 7 - 40) }))
    }

    /// A valid label map: label 1 in slab 1, label 2 in slab 2.
    func goodLabels() -> NIfTIImage {
        VolumeTestData.image(shape, .uint8((0..<count).map { $0 / 30 == 1 ? 1 : $0 / 30 == 2 ? 2 : 0 }))
    }

    /// Writes the pair as images/v.nii(.gz) + labels/v.nii.gz, runs `index add` on a fresh two-label bank
    /// created for a percentile mapping, and checks the failure and that the bank is unchanged.
    func assertRefused(
        image: NIfTIImage? = nil, imageBytes: [UInt8]? = nil, labels: NIfTIImage? = nil, gzipImage: Bool = true,
        extra: [String] = [], naming which: String, contains fragment: String, line: UInt = #line
    ) throws {
        let dir = temporaryDirectory()
        for sub in ["images", "labels"] {
            try FileManager.default.createDirectory(atPath: dir + "/" + sub, withIntermediateDirectories: true)
        }
        let imagePath = dir + "/images/v.nii" + (gzipImage ? ".gz" : "")
        let labelPath = dir + "/labels/v.nii.gz"
        if let imageBytes {
            try Data(imageBytes).write(to: URL(fileURLWithPath: imagePath))
        } else {
            try NIfTI.write(image ?? goodImage(), to: imagePath)
        }
        try NIfTI.write(labels ?? goodLabels(), to: labelPath)
        let bank = dir + "/bank"
        XCTAssertEqual(try VolumeTestData.createBank(bank, ["--labels", "a,b"]).status, 0, line: line)
        let r = try runRagseg(
            ["index", "add", bank, "--images", dir + "/images", "--masks", dir + "/labels", "--stand-in"] + extra)
        XCTAssertNotEqual(r.status, 0, "accepted: \(r.stdout)", line: line)
        let named = which == "image" ? imagePath : labelPath
        XCTAssertTrue(r.stderr.contains(named + ": "), "error does not name \(named): \(r.stderr)", line: line)
        XCTAssertTrue(r.stderr.contains(fragment), "'\(fragment)' not in: \(r.stderr)", line: line)
        let b = try SupportBank.open(at: bank, readOnly: true)
        XCTAssertEqual(try b.statistics().cases, 0, line: line)
        XCTAssertNil(b.metadata.volumeSettings, "settings recorded despite the error", line: line)
    }

    func testTheGoodPairIsAccepted() throws {
        let dir = temporaryDirectory()
        for sub in ["images", "labels"] {
            try FileManager.default.createDirectory(atPath: dir + "/" + sub, withIntermediateDirectories: true)
        }
        try NIfTI.write(goodImage(), to: dir + "/images/v.nii")
        try NIfTI.write(goodLabels(), to: dir + "/labels/v.nii.gz")
        let bank = dir + "/bank"
        XCTAssertEqual(try VolumeTestData.createBank(bank, ["--labels", "a,b"]).status, 0)
        let r = try runRagseg([
            "index", "add", bank, "--images", dir + "/images", "--masks", dir + "/labels", "--stand-in",
            "--empty-slices", "0",
        ])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(VolumeTestData.lines(r.stdout, "added\t").count, 2)  // slabs 1 and 2
    }

    func testLabelMapOffTheImageGrid() throws {
        var labels = goodLabels()
        labels.header.dim[3] = 5
        labels.voxels = .uint8([UInt8](repeating: 0, count: 6 * 5 * 5))
        try assertRefused(labels: labels, naming: "labels", contains: "label map dimensions 6x5x5 differ")
        labels = goodLabels()
        labels.header.setSform(Affine(rows: [[1.5, 0, 0, -20], [0, 1.5, 0, -18], [0, 0, 3, -8.99]]), code: 1)
        try assertRefused(labels: labels, naming: "labels", contains: "(tolerance 0.0001 x max(1, |entry|))")
    }

    func testBadLabelValues() throws {
        var values = [Float](repeating: 0, count: count)
        values[7] = 0.5
        try assertRefused(
            labels: VolumeTestData.image(shape, .float32(values)), naming: "labels", contains: "is not an integer")
        var negative = [Int16](repeating: 0, count: count)
        negative[3] = -1
        try assertRefused(
            labels: VolumeTestData.image(shape, .int16(negative)), naming: "labels", contains: "is negative")
        var three = [UInt8](repeating: 0, count: count)
        three[31] = 3
        try assertRefused(
            labels: VolumeTestData.image(shape, .uint8(three)), naming: "labels",
            contains: "label value 3 at voxel (1, 0, 1) is not a declared label of the bank (0...2)")
    }

    func testNonFiniteIntensitiesAreRefused() throws {
        var values = (0..<count).map { Float($0) }
        values[10] = .nan
        try assertRefused(
            image: VolumeTestData.image(shape, .float32(values)), naming: "image",
            contains: "1 voxel(s) are NaN or infinite")
        values[10] = .infinity
        try assertRefused(
            image: VolumeTestData.image(shape, .float32(values)), naming: "image", contains: "NaN or infinite")
    }

    func testFourDimensionalImageNeedsAChannel() throws {
        let fourD = VolumeTestData.image(shape + [2], .int16((0..<(count * 2)).map { Int16($0 % 300) }))
        try assertRefused(
            image: fourD, naming: "image", contains: "with 2 frames (time points or channels); choose one")
        try assertRefused(image: fourD, extra: ["--channel", "2"], naming: "image", contains: "frame 2 does not exist")
        // --channel 1 reads the second frame.
        let dir = temporaryDirectory()
        for sub in ["images", "labels"] {
            try FileManager.default.createDirectory(atPath: dir + "/" + sub, withIntermediateDirectories: true)
        }
        try NIfTI.write(fourD, to: dir + "/images/v.nii.gz")
        try NIfTI.write(goodLabels(), to: dir + "/labels/v.nii.gz")
        XCTAssertEqual(try VolumeTestData.createBank(dir + "/bank", ["--labels", "a,b", "--channel", "1"]).status, 0)
        let r = try runRagseg([
            "index", "add", dir + "/bank", "--images", dir + "/images", "--masks", dir + "/labels", "--stand-in",
            "--channel", "1",
        ])
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    func testDamagedFilesAndLimits() throws {
        let valid = try NIfTI.encode(goodImage(), gzip: false, name: "v")
        // NIfTI-1 datatype (int16 at byte 70): 128 is RGB24, which no reader here takes.
        var unknown = valid
        unknown[70] = 128
        unknown[71] = 0
        try assertRefused(imageBytes: unknown, gzipImage: false, naming: "image", contains: "datatype")
        // vox_offset (float32 at byte 108) far past the end.
        var offset = valid
        withUnsafeBytes(of: Float(1_000_000).bitPattern.littleEndian) { offset.replaceSubrange(108..<112, with: $0) }
        try assertRefused(imageBytes: offset, gzipImage: false, naming: "image", contains: "past the end of the file")
        let gz = try NIfTI.encode(goodImage(), gzip: true, name: "v")
        try assertRefused(imageBytes: Array(gz.prefix(gz.count / 2)), naming: "image", contains: "truncated .nii.gz")
        try assertRefused(extra: ["--max-voxels", "100"], naming: "image", contains: "over the limit of 100 voxels")
    }
}

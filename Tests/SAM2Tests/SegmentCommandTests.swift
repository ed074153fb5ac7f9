// The file-level few-shot pipeline (SupportSegmenter, what `ragseg segment` runs) and the command's
// input checks. Parity: support/target PNGs written from the memory-path fixtures' pixels
// (tools/make_sam2_memory_fixtures.py, k = 2: supports = images 0, 1 with their GT masks, target =
// image 3) must give the official predictor's low-resolution logits (max |diff| <= 1e-4 x max |ref|)
// and, at the target's size, the same foreground wherever the reference logit is not within that
// tolerance of 0. The fixture model runs at image size 128, so 128x128 PNGs reach the model unresized.
import Foundation
import RAGSegIO
import TensorCore
import XCTest

@testable import SAM2

final class SegmentCommandTests: XCTestCase {
    let checks = MemoryPathChecks()
    var directory = ""

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "ragseg-segment-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    func path(_ name: String) -> String { directory + "/" + name }

    /// The fixture checkpoint's shrunken trunk cannot be inferred from its shapes (it matches no published
    /// size), so the encoder gets the configuration the fixture script builds.
    func segmenter() throws -> SupportSegmenter {
        let m = try checks.model()
        let config = SAM2ImageEncoderConfig(
            name: "memory-path fixture", embedDim: 8, numHeads: 1, stages: [1, 1, 2, 1], globalAttentionBlocks: [3],
            windowSpec: [8, 4, 14, 7], positionEmbeddingBackgroundSize: [7, 7], neckDim: m.config.hiddenDim, imageSize: 128)
        let encoder = try SAM2ImageEncoder(weights: SAM2Weights(path: checks.fixture("weights.safetensors")), config: config)
        return try SupportSegmenter(encoder: encoder, model: m)
    }

    /// Fixture image i (uint8 [128, 128, 3]) as an RGB PNG.
    func writeImage(_ i: Int) throws -> String {
        let pixels = try NPY.readArray(checks.fixture("image\(i)_pixels.npy"))
        let p = path("image\(i).png")
        try PNG.writeRGB8(pixels.uint8 ?? [], width: 128, height: 128, to: p)
        return p
    }

    /// Fixture GT mask j as a gray PNG with the given foreground value.
    func writeMask(_ j: Int, foreground: UInt8) throws -> String {
        let mask = try checks.groundTruth(j)
        let p = path("mask\(j)_\(foreground).png")
        try PNG.writeGray8(mask.data.map { $0 > 0 ? foreground : 0 }, width: 128, height: 128, to: p)
        return p
    }

    func testPipelineFromFilesMatchesReference() throws {
        let s = try segmenter()
        // Support 0 as a 0/255 mask, support 1 as a 0/1 mask: both mean the same GT.
        let supports = [try s.encodeSupport(imagePath: try writeImage(0), maskPath: try writeMask(0, foreground: 255)),
                        try s.encodeSupport(imagePath: try writeImage(1), maskPath: try writeMask(1, foreground: 1))]
        XCTAssertFalse(supports.contains { $0.isEmpty })
        let r = try s.segment(targetPath: try writeImage(3), supports: supports)
        XCTAssertEqual([r.height, r.width], [128, 128])
        let refLow = try checks.load("k2_target_low_res")
        checks.assertClose(r.segmentation.lowResolutionLogits, refLow, "segment from PNG files, k=2 low-res logits")
        XCTAssertGreaterThan(r.segmentation.objectScore, 0)
        checks.assertClose(Tensor(shape: [3], data: r.segmentation.iou), try checks.load("k2_target_iou").reshaped([3]),
                           "segment from PNG files, k=2 IoU")
        // The written mask: reference low-res logits resized to the target size like the predictor does.
        let refFull = interpolate(refLow.reshaped([1, 32, 32]), size: (128, 128), mode: .bilinear).reshaped([128, 128])
        checks.assertSameForeground(r.segmentation.logits, refFull, "segment from PNG files, final mask")
        let mask = r.maskPixels()
        XCTAssertEqual(mask.count, 128 * 128)
        XCTAssertEqual(mask.filter { $0 == 255 }.count, r.foregroundPixels)
        XCTAssertGreaterThan(r.foregroundPixels, 0)
        XCTAssertTrue(mask.allSatisfy { $0 == 0 || $0 == 255 })
        XCTAssertEqual(r.maskPixels(foreground: 1).map { $0 * 255 }, mask)
        XCTAssertGreaterThan(r.timings.imageEncode, 0)
        XCTAssertGreaterThan(r.timings.memoryAttention, 0)
        XCTAssertGreaterThan(r.timings.decode, 0)
    }

    /// A non-square target (and supports at other sizes) are resized to the model size; the mask comes
    /// back at the target's own size.
    func testOtherSizesAndEmptySupport() throws {
        let s = try segmenter()
        // Support: a 70x45 image and its mask (the fixture's add_new_mask resize source): the mask the
        // model sees must be the reference's resize.
        let source = try checks.load("resize_up_source")
        XCTAssertEqual(source.shape, [45, 70])
        let maskPath = path("small_mask.png"), imagePath = path("small_image.png")
        try PNG.writeGray8(source.data.map { $0 > 0 ? 7 : 0 }, width: 70, height: 45, to: maskPath)
        let smallPixels: [UInt8] = (0..<(45 * 70)).map { (i: Int) -> UInt8 in UInt8((i * 37) % 256) }
        try PNG.writeGray8(smallPixels, width: 70, height: 45, to: imagePath)
        let input = try SupportSegmenter.loadSupport(imagePath: imagePath, maskPath: maskPath)
        XCTAssertEqual(input.mask.data, source.data.map { $0 > 0 ? 1 : 0 })  // 7 counts as foreground
        let resized = s.model.resizeMask(input.mask)
        XCTAssertEqual(resized.data, try checks.load("resize_up_result").data)
        let small = try s.encodeSupport(input)
        XCTAssertFalse(small.isEmpty)

        // An empty mask is allowed: the no-object memory.
        let emptyPath = path("empty.png")
        try PNG.writeGray8([UInt8](repeating: 0, count: 128 * 128), width: 128, height: 128, to: emptyPath)
        let empty = try s.encodeSupport(imagePath: try writeImage(0), maskPath: emptyPath)
        XCTAssertTrue(empty.isEmpty)

        // Target 140 wide, 96 high.
        let target = path("target.png")
        let targetPixels: [UInt8] = (0..<(96 * 140)).map { (i: Int) -> UInt8 in UInt8((i * 11 + i / 140) % 256) }
        try PNG.writeGray8(targetPixels, width: 140, height: 96, to: target)
        let r = try s.segment(targetPath: target, supports: [small, empty])
        XCTAssertEqual([r.height, r.width], [96, 140])
        XCTAssertEqual(r.segmentation.logits.shape, [96, 140])
        XCTAssertEqual(r.segmentation.lowResolutionLogits.shape, [32, 32])
        XCTAssertEqual(r.maskPixels().count, 96 * 140)
        XCTAssertEqual(r.segmentation.iou.count, 3)

        // --logits: [32, 32] for one target, [N, 32, 32] for several.
        XCTAssertEqual(SupportSegmenter.lowResolutionLogits([r]).shape, [32, 32])
        let r2 = try s.segment(targetPath: try writeImage(3), supports: [small])
        let stacked = SupportSegmenter.lowResolutionLogits([r, r2])
        XCTAssertEqual(stacked.shape, [2, 32, 32])
        XCTAssertEqual(Array(stacked.data[1024...]), r2.segmentation.lowResolutionLogits.data)
    }

    func testMaskSizeMismatchNamesBothFiles() throws {
        let image = try writeImage(0)
        let mask = path("wrong.png")
        try PNG.writeGray8([UInt8](repeating: 255, count: 64 * 100), width: 100, height: 64, to: mask)
        XCTAssertThrowsError(try SupportSegmenter.loadSupport(imagePath: image, maskPath: mask)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains(image) && text.contains(mask) && text.contains("100x64"), text)
        }
        XCTAssertThrowsError(try SupportSegmenter.loadSupport(imagePath: image, maskPath: path("missing.png"))) { error in
            XCTAssertTrue("\(error)".contains("missing.png"), "\(error)")
        }
        let notPNG = path("not.png")
        try Data("hello".utf8).write(to: URL(fileURLWithPath: notPNG))
        XCTAssertThrowsError(try SupportSegmenter.loadSupport(imagePath: image, maskPath: notPNG)) { error in
            XCTAssertTrue("\(error)".contains(notPNG), "\(error)")
        }
    }

    // MARK: The `ragseg` binary (built next to the test bundle by tools/test.sh)

    func ragsegBinary() throws -> URL {
        // The resource bundle sits in the build products directory, beside the executable.
        let products = Bundle.module.bundleURL.deletingLastPathComponent()
        let binary = products.appendingPathComponent("ragseg")
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            throw SupportSegmenterError("ragseg binary not found at \(binary.path): build everything first (bash tools/test.sh)")
        }
        return binary
    }

    func runRagseg(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = try ragsegBinary()
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// Inputs are checked before the model is loaded, so these need no real checkpoint.
    func testCommandRejectsBadInputsClearly() throws {
        let image = try writeImage(0), target = try writeImage(3)
        let mask = path("wrong.png")
        try PNG.writeGray8([UInt8](repeating: 255, count: 64 * 100), width: 100, height: 64, to: mask)
        let model = try checks.fixture("weights.safetensors")
        var r = try runRagseg(["segment", "--sam2", model, "--support", "\(image)=\(mask)", target, "--out", path("out")])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains(image) && r.output.contains(mask), r.output)

        r = try runRagseg(["segment", "--sam2", model, "--support", "\(image)=\(try writeMask(0, foreground: 1))",
                           path("no-such-target.png"), "--out", path("out")])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("no-such-target.png"), r.output)

        r = try runRagseg(["segment", "--sam2", model, "--support", image, target, "--out", path("out")])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("IMAGE=MASK"), r.output)

        r = try runRagseg(["segment", "--sam2", model, "--support", "\(image)=\(try writeMask(0, foreground: 1))", target,
                           "--out", path("out"), "--mask-values", "7"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("--mask-values"), r.output)
    }
}

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
    /// size); its sidecar weights.safetensors.json gives the configuration the fixture script builds.
    func segmenter() throws -> SupportSegmenter {
        SupportSegmenter(model: try checks.model())
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
        let supports = [
            try s.encodeSupport(imagePath: try writeImage(0), maskPath: try writeMask(0, foreground: 255)),
            try s.encodeSupport(imagePath: try writeImage(1), maskPath: try writeMask(1, foreground: 1)),
        ]
        XCTAssertFalse(supports.contains { $0.isEmpty })
        let r = try s.segment(targetPath: try writeImage(3), supports: supports)
        XCTAssertEqual([r.height, r.width], [128, 128])
        let refLow = try checks.load("k2_target_low_res")
        checks.assertClose(r.segmentation.lowResolutionLogits, refLow, "segment from PNG files, k=2 low-res logits")
        XCTAssertGreaterThan(r.segmentation.objectScore, 0)
        checks.assertClose(
            Tensor(shape: [3], data: r.segmentation.iou), try checks.load("k2_target_iou").reshaped([3]),
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
        XCTAssertThrowsError(try SupportSegmenter.loadSupport(imagePath: image, maskPath: path("missing.png"))) {
            error in
            XCTAssertTrue("\(error)".contains("missing.png"), "\(error)")
        }
        let notPNG = path("not.png")
        try Data("hello".utf8).write(to: URL(fileURLWithPath: notPNG))
        XCTAssertThrowsError(try SupportSegmenter.loadSupport(imagePath: image, maskPath: notPNG)) { error in
            XCTAssertTrue("\(error)".contains(notPNG), "\(error)")
        }
    }

    // MARK: Prompts (clicks / box on the target)

    /// The prompt of fixture `refine_<name>` (drawn on a 70x45 original) moved onto the 128x128 target PNG so
    /// that the model sees bit-identical points: c·128/70 here, and c'/128·128 = c' exactly in the command.
    func scaledRefinementPrompt(_ name: String) throws -> SAM2Prompt {
        let p = try checks.refinementPrompt(name)
        let sx = { (x: Float) in x / 70 * 128 }, sy = { (y: Float) in y / 45 * 128 }
        return SAM2Prompt(
            points: p.points.map { SAM2Point(x: sx($0.x), y: sy($0.y), label: $0.label) },
            box: p.box.map { SAM2Box(x0: sx($0.x0), y0: sy($0.y0), x1: sx($0.x1), y1: sy($0.y1)) })
    }

    func referenceSupportPaths() throws -> [String] {
        [
            "\(try writeImage(0))=\(try writeMask(0, foreground: 255))",
            "\(try writeImage(1))=\(try writeMask(1, foreground: 255))",
        ]
    }

    /// From PNG files, with a click / a box / a box + negative click on the target: the official refined
    /// low-res logits (add_new_points_or_box after propagation), and a result that differs from the
    /// prompt-free one.
    func testPromptedSegmentationFromFilesMatchesReference() throws {
        let s = try segmenter()
        let supports = try [0, 1].map {
            try s.encodeSupport(imagePath: try writeImage($0), maskPath: try writeMask($0, foreground: 255))
        }
        let target = try writeImage(3)
        let plain = try s.segment(targetPath: target, supports: supports)
        for name in ["point", "box", "box_negative", "point_no_object"] {
            let r = try s.segment(targetPath: target, supports: supports, prompt: try scaledRefinementPrompt(name))
            let ref = try checks.load("refine_\(name)_low_res")
            checks.assertClose(
                r.segmentation.lowResolutionLogits, ref, "\(name) from PNG files: refined low-res logits")
            XCTAssertEqual(r.segmentation.objectScore, try checks.load("refine_\(name)_score").data[0], accuracy: 1e-4)
            let refFull = interpolate(ref.reshaped([1, 32, 32]), size: (128, 128), mode: .bilinear).reshaped([128, 128])
            checks.assertSameForeground(r.segmentation.logits, refFull, "\(name) from PNG files, final mask")
            let change =
                zip(r.segmentation.lowResolutionLogits.data, plain.segmentation.lowResolutionLogits.data)
                .map { abs($0 - $1) }.max() ?? 0
            XCTAssertGreaterThan(change, 1, "\(name): the prompt changes the result")
        }
    }

    /// `ragseg segment --support ... --point/--box`: the same refined logits and mask as the library call,
    /// the prompt echoed in --json, and a different result than without the prompt.
    func testPromptedCommandEqualsTheLibraryCall() throws {
        let s = try segmenter()
        let supportArgs = try referenceSupportPaths()
        let supports = try supportArgs.map { a -> SupportMemory in
            let (image, mask) = (String(a.split(separator: "=")[0]), String(a.split(separator: "=")[1]))
            return try s.encodeSupport(imagePath: image, maskPath: mask)
        }
        let target = try writeImage(3)
        let model = try checks.fixture("weights.safetensors")
        let prompt = try scaledRefinementPrompt("box_negative")
        let expected = try s.segment(targetPath: target, supports: supports, prompt: prompt)
        let box = try XCTUnwrap(prompt.box), click = try XCTUnwrap(prompt.points.first)
        var args = ["segment", "--sam2", model] + supportArgs.flatMap { ["--support", $0] } + [target]
        args += [
            "--out", path("prompted"), "--logits", path("prompted.npy"), "--json",
            "--box", "\(box.x0),\(box.y0),\(box.x1),\(box.y1)", "--point", "\(click.x),\(click.y),\(click.label)",
        ]
        let r = try runRagseg(args)
        XCTAssertEqual(r.status, 0, r.output)
        let logits = try NPY.read(path("prompted.npy"))
        checks.assertClose(
            logits, expected.segmentation.lowResolutionLogits, relative: 1e-6, "command vs library, prompted logits")
        checks.assertClose(logits, try checks.load("refine_box_negative_low_res"), "command vs official refinement")
        let mask = try PNG.read(path("prompted/image3.png"))
        let band = 1e-5 * (expected.segmentation.logits.data.map(abs).max() ?? 1)
        for (pixel, logit) in zip(mask.pixels, expected.segmentation.logits.data) where abs(logit) > band {
            XCTAssertEqual(pixel, logit > 0 ? 255 : 0)
        }
        XCTAssertGreaterThan(expected.foregroundPixels, 0)
        XCTAssertTrue(r.output.contains("\"prompt\""), r.output)
        XCTAssertTrue(r.output.contains("\"box\""), r.output)

        // The same command without the prompt gives the prompt-free logits.
        let plain = try runRagseg(
            ["segment", "--sam2", model] + supportArgs.flatMap { ["--support", $0] } + [target] + [
                "--out", path("plain"), "--logits", path("plain.npy"),
            ])
        XCTAssertEqual(plain.status, 0, plain.output)
        let plainLogits = try NPY.read(path("plain.npy"))
        checks.assertClose(plainLogits, try checks.load("k2_target_low_res"), "command without prompt")
        XCTAssertGreaterThan(zip(plainLogits.data, logits.data).map { abs($0 - $1) }.max() ?? 0, 1)
    }

    /// Malformed or out-of-image prompts fail with a message naming the option, before the model loads
    /// (the checkpoint path given here does not exist).
    func testCommandRejectsBadPromptsClearly() throws {
        let supportArgs = try referenceSupportPaths().flatMap { ["--support", $0] }
        let target = try writeImage(3), other = try writeImage(1)
        let noModel = path("no-such-weights.safetensors")
        let cases: [([String], String)] = [
            (["--point", "12,abc"], "--point '12,abc': y 'abc' is not a number"),
            (["--point", "12"], "--point '12' must be x,y or x,y,label"),
            (["--point", "3,4,2"], "label '2' must be 1 (positive) or 0 (negative)"),
            (["--point", "128,5"], "lies outside the 128x128 image"),
            (["--point", "-5,3"], "lies outside the 128x128 image"),
            (["--box", "1,2,3"], "--box '1,2,3' must be x0,y0,x1,y1"),
            (["--box", "10,10,5,20"], "is empty or reversed"),
            (["--box", "0,0,129,20"], "lies outside the 128x128 image"),
            (["--box", "0,0,5,5", "--box", "1,1,6,6"], "--box may be given at most once"),
            (["--point", "5,5", other], "refine a single target, but 2 targets were given"),
        ]
        for (extra, expected) in cases {
            let r = try runRagseg(
                ["segment", "--sam2", noModel] + supportArgs + [target, "--out", path("out")] + extra)
            XCTAssertNotEqual(r.status, 0, "\(extra)")
            XCTAssertTrue(r.output.contains(expected), "\(extra): \(r.output)")
            XCTAssertFalse(r.output.contains("no-such-weights"), "\(extra): prompts are checked before the model loads")
        }
    }

    // MARK: The `ragseg` binary (built next to the test bundle by tools/test.sh)

    func ragsegBinary() throws -> URL {
        // The resource bundle sits in the build products directory, beside the executable.
        let products = Bundle.module.bundleURL.deletingLastPathComponent()
        let binary = products.appendingPathComponent("ragseg")
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            throw SupportSegmenterError(
                "ragseg binary not found at \(binary.path): build everything first (bash tools/test.sh)")
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
        var r = try runRagseg([
            "segment", "--sam2", model, "--support", "\(image)=\(mask)", target, "--out", path("out"),
        ])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains(image) && r.output.contains(mask), r.output)

        r = try runRagseg([
            "segment", "--sam2", model, "--support", "\(image)=\(try writeMask(0, foreground: 1))",
            path("no-such-target.png"), "--out", path("out"),
        ])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("no-such-target.png"), r.output)

        r = try runRagseg(["segment", "--sam2", model, "--support", image, target, "--out", path("out")])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("IMAGE=MASK"), r.output)

        r = try runRagseg([
            "segment", "--sam2", model, "--support", "\(image)=\(try writeMask(0, foreground: 1))", target,
            "--out", path("out"), "--mask-values", "7",
        ])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("--mask-values"), r.output)
    }
}

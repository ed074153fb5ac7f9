import Foundation
import RAGSegTestSupport
import XCTest
import RAGSegIO
@testable import SupportBank

/// Issue: a 249 KB all-black 16000x16000 PNG made `embed` use 3.5 GB; the server refused such images
/// (2^25 pixels) but the CLI did not. Every command that reads images has the same limit, raised with
/// --max-pixels or RAGSEG_MAX_PIXELS (which also reaches commands without the option).
final class PixelLimitCLITests: XCTestCase {
    func runRagsegWith(_ extra: [String: String], _ arguments: [String]) throws -> RunResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try ragsegExecutable())
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(extra) { _, new in new }
        return try runToCompletion(process)
    }

    func assertRefused(
        _ r: RunResult, _ file: String, pixels: String, limit: Int, _ what: String,
        sourceFile: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertEqual(r.status, 1, "\(what): \(r.stderr)", file: sourceFile, line: line)
        XCTAssertTrue(
            r.stderr.contains(
                """
                \(file): image is \(pixels) pixels), over the limit of \(limit) pixels; raise it with --max-pixels N \
                or RAGSEG_MAX_PIXELS=N
                """
            ),
            "\(what): \(r.stderr)", file: sourceFile, line: line)
    }

    var tinyModels: (dinov2: String, sam2: String) {
        let tests = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        return (
            tests.appendingPathComponent("DINOv2Tests/Fixtures/plain").path,
            tests.appendingPathComponent("SAM2Tests/Fixtures/memory/weights.safetensors").path
        )
    }

    func testIndexCommandsHonourTheDefaultTheOptionAndTheEnvironment() throws {
        let dir = temporaryDirectory()
        let (images, masks) = try writeDataset(dir, count: 2)
        let bank = dir + "/bank"
        XCTAssertEqual(
            try runRagseg([
                "index", "create", bank, "--stand-in", "--dinov2-variant", "vits14", "--memory-shape", "4,8,8,16",
            ]).status, 0)
        // A real all-black PNG just over 2^25 pixels: a few kilobytes that would decode to 34 MB (137 MB as floats).
        let big = dir + "/big.png"
        try PNG.writeGray8([UInt8](repeating: 0, count: 5800 * 5800), width: 5800, height: 5800, to: big)
        XCTAssertLessThan(try FileManager.default.attributesOfItem(atPath: big)[.size] as? Int ?? .max, 100_000)
        var r = try runRagseg(["index", "search", bank, big, "--stand-in"])
        assertRefused(r, big, pixels: "5800x5800 (33640000", limit: 1 << 25, "default limit")
        XCTAssertEqual(r.stdout, "")

        // The 32x32 cases (1024 pixels) against limits just below and at their size.
        let query = images + "/case000.png"
        r = try runRagseg(["index", "search", bank, query, "--stand-in", "--max-pixels", "1023"])
        assertRefused(r, query, pixels: "32x32 (1024", limit: 1023, "search --max-pixels")
        r = try runRagseg([
            "index", "add", bank, "--images", images, "--masks", masks, "--stand-in", "--max-pixels", "1023",
        ])
        assertRefused(r, query, pixels: "32x32 (1024", limit: 1023, "add --max-pixels")
        r = try runRagsegWith(
            ["RAGSEG_MAX_PIXELS": "1023"], ["index", "add", bank, "--images", images, "--masks", masks, "--stand-in"])
        assertRefused(r, query, pixels: "32x32 (1024", limit: 1023, "add RAGSEG_MAX_PIXELS")
        XCTAssertEqual(
            try SupportBank.open(at: bank, readOnly: true).statistics().cases, 0, "refused adds wrote nothing")
        // The option overrides the environment; at the image's size it passes.
        r = try runRagsegWith(
            ["RAGSEG_MAX_PIXELS": "1023"],
            [
                "index", "add", bank, "--images", images, "--masks", masks, "--stand-in", "--quiet", "--max-pixels",
                "1024",
            ])
        XCTAssertEqual(r.status, 0, r.stderr)
        r = try runRagseg(["index", "search", bank, query, "--stand-in", "--max-pixels", "1024"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("case000.png"), r.stdout)
        r = try runRagseg(["index", "search", bank, query, "--stand-in", "--max-pixels", "0"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("--max-pixels must be positive, got 0"), r.stderr)
        r = try runRagsegWith(["RAGSEG_MAX_PIXELS": "many"], ["index", "search", bank, query, "--stand-in"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("RAGSEG_MAX_PIXELS: must be a positive number of pixels, got 'many'"), r.stderr)
    }

    /// embed and eval take --max-pixels; segment (no option yet) follows RAGSEG_MAX_PIXELS. On the tiny test models.
    func testEmbedEvalAndSegmentHonourTheLimit() throws {
        let dir = temporaryDirectory()
        let (images, masks) = try writeDataset(dir, count: 2)
        let query = images + "/case000.png"
        let (dinov2, sam2) = tinyModels
        var r = try runRagseg(["embed", "--dinov2", dinov2, "--out", dir + "/e.npy", query, "--max-pixels", "1023"])
        assertRefused(r, query, pixels: "32x32 (1024", limit: 1023, "embed --max-pixels")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/e.npy"))
        r = try runRagseg(["embed", "--dinov2", dinov2, "--out", dir + "/e.npy", query, "--max-pixels", "1024"])
        XCTAssertEqual(r.status, 0, r.stderr)

        let bank = dir + "/bank"
        XCTAssertEqual(try runRagseg(["index", "create", bank, "--dinov2", dinov2, "--sam2", sam2]).status, 0)
        XCTAssertEqual(
            try runRagseg(["index", "add", bank, "--images", images, "--masks", masks, "--quiet"]).status, 0)
        r = try runRagseg([
            "eval", "--index", bank, "--images", images, "--masks", masks, "--k", "1", "--csv", dir + "/eval.csv",
            "--max-pixels", "1023",
        ])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("case000.png") && r.stderr.contains("over the limit of 1023 pixels"), r.stderr)
        r = try runRagsegWith(
            ["RAGSEG_MAX_PIXELS": "1023"], ["segment", "--index", bank, "--k", "1", "--out", dir + "/seg", query])
        assertRefused(r, query, pixels: "32x32 (1024", limit: 1023, "segment RAGSEG_MAX_PIXELS")
        r = try runRagsegWith(
            ["RAGSEG_MAX_PIXELS": "1024"], ["segment", "--index", bank, "--k", "1", "--out", dir + "/seg", query])
        XCTAssertEqual(r.status, 0, r.stderr)
    }
}

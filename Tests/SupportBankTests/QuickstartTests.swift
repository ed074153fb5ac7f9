import Foundation
import XCTest
import RAGSegIO

/// `tools/quickstart.sh` end to end with the built ragseg (RAGSEG_BIN: no package install, no build) and its
/// weights downloaded from a loopback server at Hugging Face-shaped URLs (the fixture models), into temporary
/// folders: download -> load check -> bank -> segmentation -> Dice, and the fallback when weights do not load.
final class QuickstartTests: XCTestCase {
    private func quickstart(weights: String, out: String, server: LoopbackFileServer) throws -> RunResult {
        try runScript(
            "tools/quickstart.sh", [],
            environment: [
                "RAGSEG_BIN": try ragsegExecutable(), "RAGSEG_WEIGHTS": weights, "RAGSEG_QUICKSTART_OUT": out,
                "HF_ENDPOINT": "http://127.0.0.1:\(server.port)", "RAGSEG_OFFLINE": nil,
            ])
    }

    private func checkOutputs(_ out: String, _ r: RunResult) throws {
        let fm = FileManager.default
        for i in 20...23 {
            let mask = try PNG.read(out + "/masks/case_0\(i).png")
            XCTAssertEqual([mask.width, mask.height], [160, 160])
            XCTAssertTrue(mask.pixels.allSatisfy { $0 == 0 || $0 == 255 })
        }
        let written = try fm.contentsOfDirectory(atPath: out + "/masks")
        XCTAssertEqual(written.filter { $0.hasSuffix("_overlay.png") }.count, 4, "overlays: \(written)")
        let csv = try String(contentsOfFile: out + "/eval.csv", encoding: .utf8)
        XCTAssertEqual(csv.split(separator: "\n").count, 5, csv)  // header + 4 held-out cases
        XCTAssertTrue(r.stdout.contains("dice mean"), r.stdout)
        XCTAssertTrue(r.stdout.contains("20 cases, 20 memories, 20 index vectors (0 tombstones): OK"), r.stdout)
        XCTAssertTrue(r.stdout.contains("volumes         axial, window 400,40, channel 0; "), r.stdout)
        XCTAssertTrue(r.stdout.contains(" slices of 4 volume(s)"), r.stdout)
    }

    func testDownloadedWeightsThatLoadAreUsed() throws {
        if !curlInstalled() { throw XCTSkip("curl is not installed: the quick start's download needs it") }
        let files = try FetchWeightsTests.fixtures()
        let server = try LoopbackFileServer(
            routes: Dictionary(uniqueKeysWithValues: files.map { ($0.path, .file($0.bytes)) }))
        defer { server.stop() }
        let dir = temporaryDirectory()
        // The fixture SAM 2 is not a published size: it loads only with its model description beside it,
        // which a real download never needs (the published sizes are recognised from the shapes).
        try FileManager.default.createDirectory(atPath: dir + "/weights", withIntermediateDirectories: true)
        try Data(try FetchWeightsTests.fixture("SAM2Tests/Fixtures/memory/weights.safetensors.json"))
            .write(to: URL(fileURLWithPath: dir + "/weights/sam2.safetensors.json"))
        let r = try quickstart(weights: dir + "/weights", out: dir + "/out", server: server)
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertEqual(server.requests, files.map(\.path))
        for f in files {
            XCTAssertEqual(
                [UInt8](try Data(contentsOf: URL(fileURLWithPath: dir + "/weights/" + f.target))), f.bytes, f.target)
        }
        XCTAssertTrue(r.stdout.contains("building the support bank with the weights in \(dir)/weights/"), r.stdout)
        XCTAssertFalse(r.stdout.contains("NO REAL WEIGHTS"), r.stdout)
        XCTAssertTrue(r.stdout.contains("segmenting the held-out images (k = 4)"), r.stdout)
        // The bank records the downloaded files, not the repository's test models.
        XCTAssertTrue(r.stdout.contains("sha256 " + (try sha256Hex(dir + "/weights/sam2.safetensors"))), r.stdout)
        try checkOutputs(dir + "/out", r)
    }

    /// The official downloads as they are (SAM 2's sam2.1_hiera_*.pt, torch hub's dinov2_*_pretrain.pth; here the
    /// fixture models saved so) are used from the folder, and nothing is downloaded.
    func testOfficialDownloadsInTheFolderAreUsedAsTheyAre() throws {
        let server = try LoopbackFileServer(routes: [:])  // every path 404: a download would fail the run
        defer { server.stop() }
        let dir = temporaryDirectory(), weights = dir + "/weights"
        try FileManager.default.createDirectory(atPath: weights, withIntermediateDirectories: true)
        for (fixture, name) in [
            ("SAM2Tests/Fixtures/memory/weights.pt", "sam2.1_hiera_tiny.pt"),
            ("SAM2Tests/Fixtures/memory/weights.pt.json", "sam2.1_hiera_tiny.pt.json"),  // not a published size
            ("DINOv2Tests/Fixtures/reg_official.pth", "dinov2_vits14_pretrain.pth"),
        ] {
            try Data(try FetchWeightsTests.fixture(fixture)).write(to: URL(fileURLWithPath: weights + "/" + name))
        }
        let r = try quickstart(weights: weights, out: dir + "/out", server: server)
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertEqual(server.requests, [])
        XCTAssertTrue(r.stdout.contains("building the support bank with the weights in \(weights)/"), r.stdout)
        XCTAssertFalse(r.stdout.contains("NO REAL WEIGHTS"), r.stdout)
        XCTAssertTrue(r.stdout.contains("sha256 " + (try sha256Hex(weights + "/sam2.1_hiera_tiny.pt"))), r.stdout)
        XCTAssertTrue(r.stdout.contains("sha256 " + (try sha256Hex(weights + "/dinov2_vits14_pretrain.pth"))), r.stdout)
        try checkOutputs(dir + "/out", r)
    }

    func testWeightsThatDoNotLoadFallBackToTestModelsAndSaySo() throws {
        if !curlInstalled() { throw XCTSkip("curl is not installed: the quick start's download needs it") }
        let files = try FetchWeightsTests.fixtures()
        let server = try LoopbackFileServer(
            routes: Dictionary(uniqueKeysWithValues: files.map { ($0.path, .file($0.bytes)) }))
        defer { server.stop() }
        let dir = temporaryDirectory()
        // No model description beside the downloaded fixture SAM 2: its shapes match no published size.
        let r = try quickstart(weights: dir + "/weights", out: dir + "/out", server: server)
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertEqual(server.requests.count, 3)
        XCTAssertTrue(r.stdout.contains("THE WEIGHTS IN \(dir)/weights/ DO NOT LOAD"), r.stdout)
        XCTAssertTrue(r.stdout.contains("NO REAL WEIGHTS: running on the tiny random-weight TEST models"), r.stdout)
        XCTAssertTrue(r.stdout.contains("reminder: NO REAL WEIGHTS were used"), r.stdout)
        XCTAssertTrue(r.stdout.contains("segmenting the held-out images (k = 3)"), r.stdout)
        try checkOutputs(dir + "/out", r)
    }

    func testFailedDownloadFallsBackAndSaysSo() throws {
        if !curlInstalled() { throw XCTSkip("curl is not installed: the quick start's download needs it") }
        let server = try LoopbackFileServer(routes: [:])  // every path 404
        defer { server.stop() }
        let dir = temporaryDirectory()
        let r = try quickstart(weights: dir + "/weights", out: dir + "/out", server: server)
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertTrue(
            r.stderr.contains(
                "http://127.0.0.1:\(server.port)/facebook/dinov2-small/resolve/main/config.json: HTTP status 404"),
            r.stderr)
        XCTAssertTrue(r.stdout.contains("the download failed"), r.stdout)
        XCTAssertTrue(r.stdout.contains("NO REAL WEIGHTS: running on the tiny random-weight TEST models"), r.stdout)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/weights/dinov2/config.json"))
        try checkOutputs(dir + "/out", r)
    }
}

/// SHA-256 of a file, hex, from coreutils' sha256sum (an independent implementation from the bank's).
private func sha256Hex(_ path: String) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["sha256sum", path]
    let out = Pipe()
    process.standardOutput = out
    try process.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(String(decoding: data, as: UTF8.self).prefix(16))
}

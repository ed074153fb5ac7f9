import Foundation
import XCTest
import RAGSegIO
import RAGSegTestSupport
@testable import SupportBank

/// The `ragseg` executable built next to the test bundle; a missing one skips the test.
func ragsegExecutable() throws -> String {
    do { return try RagsegBinary.path() } catch let error as RagsegBinary.NotFound { throw XCTSkip(error.description) }
}

typealias RunResult = RagsegBinary.Result

/// `ragseg index create BANK` with the stand-in encoders and small memories the CLI tests use, plus `extra`.
func createStandInBank(_ bank: String, _ extra: String...) throws -> RunResult {
    try runRagseg(
        ["index", "create", bank, "--stand-in", "--dinov2-variant", "vits14", "--memory-shape", "4,8,8,16"] + extra)
}

/// Runs ragseg to completion.
func runRagseg(_ arguments: [String]) throws -> RunResult { try RagsegBinary.run(arguments) }

/// Runs a configured process to completion, collecting its output.
func runToCompletion(_ process: Process) throws -> RunResult { try RagsegBinary.runToCompletion(process) }

final class CLITests: XCTestCase {
    /// Progress on a pipe: plain lines, the final count once (it used to appear twice when the last batch's own
    /// update had already shown it).
    func testProgressShowsTheFinalCountOnce() throws {
        let dir = temporaryDirectory()
        let (images, masks) = try writeDataset(dir, count: 6)
        let bank = dir + "/bank"
        var r = try createStandInBank(bank)
        XCTAssertEqual(r.status, 0, r.stderr)
        r = try runRagseg(["index", "add", bank, "--images", images, "--masks", masks, "--stand-in", "--batch", "20"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let finals = r.stderr.split(separator: "\n").filter { $0.hasPrefix("6/6 cases") }
        XCTAssertEqual(finals.count, 1, r.stderr)
    }

    func testCommandsEndToEnd() throws {
        let dir = temporaryDirectory()
        let (images, masks) = try writeDataset(dir, count: 12)
        let bank = dir + "/bank"
        var r = try createStandInBank(bank)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("not meaningful"), "stand-in warning: \(r.stderr)")
        r = try runRagseg(["index", "add", bank, "--images", images, "--masks", masks, "--stand-in", "--batch", "5"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout.split(separator: "\n").filter { $0.hasPrefix("added\t") }.count, 12)
        r = try runRagseg(["index", "add", bank, "--images", images, "--masks", masks, "--stand-in", "--quiet"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(
            r.stdout.split(separator: "\n").filter { $0.hasPrefix("duplicate\t") }.count, 12, "re-add is a no-op")
        r = try runRagseg(["index", "search", bank, images + "/case004.png", "--k", "3", "--stand-in"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let first = r.stdout.split(separator: "\n")[1].split(separator: "\t")
        XCTAssertEqual(first[1], "5")  // case004 was the 5th added
        XCTAssertEqual(first[2], "1.0000")
        XCTAssertTrue(first[3].hasSuffix("case004.png"))
        r = try runRagseg(["index", "remove", bank, "5", "6"])
        XCTAssertEqual(r.status, 0, r.stderr)
        r = try runRagseg(["index", "remove", bank, "5"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("no case with id 5"), r.stderr)
        r = try runRagseg(["index", "info", bank])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("cases           10"), r.stdout)
        r = try runRagseg(["index", "verify", bank])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        // verify exits 1 on a damaged bank.
        let b = try SupportBank.open(at: bank)
        _ = try b.env.write { txn in try txn.delete(b.embeddings, key: Codec.key(7)) }
        _ = b  // keep open only for the damage
        r = try runRagseg(["index", "verify", bank])
        XCTAssertEqual(r.status, 1, r.stdout)
        XCTAssertTrue(r.stdout.contains("case 7: embedding missing"), r.stdout)
    }

    /// `segment --index` with --point/--box: malformed values, several targets, and a multi-label bank without
    /// --label are refused before any model is loaded.
    /// The benchmarks are a separate executable, so `ragseg --help` lists only what a user runs; their
    /// lists are repeated integers (`--ks 1 4 8`), checked before anything loads.
    func testBenchmarksAreTheirOwnExecutable() throws {
        let help = try runRagseg(["--help"])
        XCTAssertEqual(help.status, 0, help.stderr)
        XCTAssertTrue(help.stdout.contains("segment"), help.stdout)
        XCTAssertFalse(help.stdout.contains("bench"), help.stdout)

        let bench = URL(fileURLWithPath: try ragsegExecutable()).deletingLastPathComponent().appendingPathComponent(
            "ragseg-bench")
        func runBench(_ arguments: [String]) throws -> RunResult {
            let process = Process()
            process.executableURL = bench
            process.arguments = arguments
            return try runToCompletion(process)
        }
        let benchHelp = try runBench(["--help"])
        XCTAssertEqual(benchHelp.status, 0, benchHelp.stderr)
        for name in ["ops", "dinov2", "sam2", "segment", "query", "bank"] {
            XCTAssertTrue(benchHelp.stdout.contains("\n  \(name) "), "\(name) missing from\n\(benchHelp.stdout)")
        }
        let missing = "/nonexistent/ragseg-bench-test.safetensors"
        // Parsed as three support counts: the run gets as far as loading the (missing) weights.
        let parsed = try runBench(["segment", "--sam2", missing, "--ks", "1", "4", "8"])
        XCTAssertNotEqual(parsed.status, 0)
        XCTAssertTrue(parsed.stderr.contains(missing), parsed.stderr)
        XCTAssertFalse(parsed.stderr.contains("Usage:"), parsed.stderr)
        let zero = try runBench(["segment", "--sam2", missing, "--ks", "1", "0"])
        XCTAssertNotEqual(zero.status, 0)
        XCTAssertTrue(zero.stderr.contains("--ks takes support counts of at least 1"), zero.stderr)
        let commas = try runBench(["query", "--sam2", missing, "--ks", "1,4,8"])
        XCTAssertNotEqual(commas.status, 0)
        XCTAssertFalse(
            commas.stderr.contains(missing),
            "\"1,4,8\" is not a support count: refused before loading\n\(commas.stderr)")
    }

    func testSegmentPromptsAreCheckedBeforeAnyModelLoads() throws {
        let dir = temporaryDirectory()
        let (images, _) = try writeDataset(dir, count: 2)
        let bank = dir + "/bank"
        var r = try createStandInBank(bank, "--labels", "liver,tumour")
        XCTAssertEqual(r.status, 0, r.stderr)
        let target = images + "/case000.png", other = images + "/case001.png"
        let cases: [([String], String)] = [
            (
                ["--point", "5,5", target],
                "--point/--box refine one label; bank \(bank) has labels liver, tumour: pick one with --label"
            ),
            (["--point", "5,x", target], "--point '5,x': y 'x' is not a number"),
            (["--box", "1,2,3,4", "--box", "1,2,3,5", target], "--box may be given at most once"),
            (["--point", "40,5", "--label", "liver", target], "lies outside the 32x32 image"),
            (["--box", "5,5,10,10", target, other], "refine a single target, but 2 targets were given"),
        ]
        for (extra, expected) in cases {
            r = try runRagseg(["segment", "--index", bank, "--out", dir + "/out"] + extra)
            XCTAssertNotEqual(r.status, 0, "\(extra)")
            XCTAssertTrue(r.stderr.contains(expected), "\(extra): \(r.stderr)")
        }
    }

    /// A reader process keeps working while another process writes: its results always come from one
    /// LMDB snapshot (removed cases are never returned), and refresh() brings in the new cases.
    func testReaderInAnotherProcessStaysConsistentWhileAWriterChangesTheBank() throws {
        let dir = temporaryDirectory()
        let (images, masks) = try writeDataset(dir, count: 10)
        let bank = dir + "/bank"
        XCTAssertEqual(try createStandInBank(bank).status, 0)
        XCTAssertEqual(
            try runRagseg(["index", "add", bank, "--images", images, "--masks", masks, "--stand-in", "--quiet"]).status,
            0)
        let reader = try SupportBank.open(at: bank, readOnly: true)
        let query = try XCTUnwrap(try reader.embedding(3))
        XCTAssertEqual(try reader.search(query, k: 1).first?.id, 3)
        // Another process removes case 3 and adds new cases.
        XCTAssertEqual(try runRagseg(["index", "remove", bank, "3"]).status, 0)
        for i in 0..<5 {
            try writeGray(images + "/extra\(i).png", 32, 32) { x, y in UInt8((x * y + i * 40) % 256) }
            try writeGray(masks + "/extra\(i).png", 32, 32) { x, _ in x > 20 ? 1 : 0 }
        }
        XCTAssertEqual(
            try runRagseg(["index", "add", bank, "--images", images, "--masks", masks, "--stand-in", "--quiet"]).status,
            0)
        // Not yet refreshed: the removed case is filtered out through the current snapshot.
        let hits = try reader.search(query, k: 20)
        XCTAssertFalse(hits.contains { $0.id == 3 })
        XCTAssertEqual(hits.count, 9, "the old index still lacks the new cases")
        try reader.refresh()
        // 9 old + the removed content re-added under a new id + 5 extra.
        XCTAssertEqual(try reader.search(query, k: 20).count, 15)
        XCTAssertTrue(try reader.search(query, k: 20).allSatisfy { $0.id != 3 })
    }

    func testNNUNetDatasetGivesLabelsAndOneMemoryPerPresentLabel() throws {
        let dir = temporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir + "/imagesTr", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir + "/labelsTr", withIntermediateDirectories: true)
        try writeGray(dir + "/imagesTr/c1_0000.png", 16, 16) { x, y in UInt8(x * 9 + y) }
        try writeGray(dir + "/labelsTr/c1.png", 16, 16) { x, _ in x < 4 ? 1 : (x > 10 ? 2 : 0) }
        try writeGray(dir + "/imagesTr/c2_0000.png", 16, 16) { x, y in UInt8(x + y * 9) }
        try writeGray(dir + "/labelsTr/c2.png", 16, 16) { x, _ in x < 4 ? 1 : 0 }
        try Data(#"{"labels": {"background": 0, "liver": 1, "tumour": 2}}"#.utf8).write(
            to: URL(fileURLWithPath: dir + "/dataset.json"))
        let bank = dir + "/bank"
        XCTAssertEqual(
            try runRagseg(["index", "create", bank, "--stand-in", "--dataset", dir, "--memory-shape", "4,8,8,16"])
                .status, 0)
        var r = try runRagseg(["index", "add", bank, "--dataset", dir, "--stand-in"])
        XCTAssertEqual(r.status, 0, r.stderr)
        r = try runRagseg(["index", "info", bank])
        // c1: liver + tumour; c2: liver + the empty-mask memory that stands for its absent tumour.
        XCTAssertTrue(r.stdout.contains("1=liver, 2=tumour") && r.stdout.contains("memories        4"), r.stdout)
        do {
            let b = try SupportBank.open(at: bank, readOnly: true)
            let records = try b.allRecords()
            XCTAssertEqual(records.map(\.labels), [[1, 2], [1]])
            XCTAssertEqual(records.map(\.emptyMaskMemory), [nil, true])
            XCTAssertNotNil(try b.memory(1, label: 2))
            XCTAssertNil(try b.memory(1, label: 0))
            XCTAssertNil(try b.memory(2, label: 2))
            let empty = try XCTUnwrap(try b.memory(2, label: 0))
            XCTAssertEqual(try b.supportMemory(for: records[1], label: 2), empty)
            XCTAssertEqual(try b.supportMemory(for: records[1], label: 1), try b.memory(2, label: 1))
            XCTAssertNotEqual(empty, try b.memory(2, label: 1))
        }
        try Data(#"{"labels": {"background": 0, "kidney": 1, "tumour": 2}}"#.utf8).write(
            to: URL(fileURLWithPath: dir + "/dataset.json"))
        r = try runRagseg(["index", "add", bank, "--dataset", dir, "--stand-in"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("differ from the bank"), r.stderr)
    }

    func testBadInputFailsClearlyAndLeavesTheBankIntact() throws {
        let dir = temporaryDirectory()
        let (images, masks) = try writeDataset(dir, count: 4, maskValue: 1)
        let bank = dir + "/bank"
        XCTAssertEqual(
            try runRagseg(["index", "create", bank, "--stand-in", "--labels", "a,b", "--memory-shape", "4,8,8,16"])
                .status, 0)
        // Unreadable image, sorted after the good cases: those are committed, then the error.
        try Data("garbage".utf8).write(to: URL(fileURLWithPath: images + "/zz.png"))
        try writeGray(masks + "/zz.png", 32, 32) { _, _ in 0 }
        var r = try runRagseg(["index", "add", bank, "--images", images, "--masks", masks, "--stand-in"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("zz.png") && r.stderr.contains("cannot read image"), r.stderr)
        XCTAssertEqual(r.stdout.split(separator: "\n").filter { $0.hasPrefix("added\t") }.count, 4)
        try FileManager.default.removeItem(atPath: images + "/zz.png")
        try FileManager.default.removeItem(atPath: masks + "/zz.png")
        // A new case whose mask holds a value beyond the 2 declared labels.
        try writeGray(images + "/new.png", 32, 32) { x, _ in UInt8(x) }
        try writeGray(masks + "/new.png", 32, 32) { x, _ in x == 3 ? 7 : 0 }
        r = try runRagseg(["index", "add", bank, "--images", images, "--masks", masks, "--stand-in"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("masks/new.png") && r.stderr.contains("value 7"), r.stderr)
        // Mask/image size mismatch.
        try writeGray(masks + "/new.png", 16, 32) { _, _ in 1 }
        r = try runRagseg(["index", "add", bank, "--images", images, "--masks", masks, "--stand-in"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(
            r.stderr.contains("masks/new.png") && r.stderr.contains("images/new.png") && r.stderr.contains("16x32"),
            r.stderr)
        XCTAssertEqual(try runRagseg(["index", "verify", bank]).status, 0)
        XCTAssertEqual(try SupportBank.open(at: bank, readOnly: true).statistics().cases, 4)
    }

    /// Real encoders through the CLI, on the tiny reference models of the DINOv2 and SAM 2 suites: the
    /// weights' SHA-256 is recorded at create and checked at every add; garbage weights are a clear error.
    func testRealWeightsAreRecordedCheckedAndUsed() throws {
        let dir = temporaryDirectory()
        let (images, masks) = try writeDataset(dir, count: 2)
        let tests = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        let dinov2 = tests.appendingPathComponent("DINOv2Tests/Fixtures/plain").path
        let otherDINOv2 = tests.appendingPathComponent("DINOv2Tests/Fixtures/reg").path
        let sam2 = tests.appendingPathComponent("SAM2Tests/Fixtures/memory/weights.safetensors").path
        try Data("not a safetensors file".utf8).write(to: URL(fileURLWithPath: dir + "/garbage.safetensors"))
        let bank = dir + "/bank"
        var r = try runRagseg(["index", "create", bank, "--dinov2", dir + "/garbage.safetensors", "--sam2", sam2])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("garbage.safetensors"), r.stderr)
        r = try runRagseg(["index", "create", bank, "--dinov2", dinov2, "--sam2", sam2])
        XCTAssertEqual(r.status, 0, r.stderr)
        r = try runRagseg(["index", "info", bank])
        XCTAssertTrue(r.stdout.contains(hexString(try SHA256.hash(fileAt: dinov2 + "/model.safetensors"))), r.stdout)
        r = try runRagseg([
            "index", "add", bank, "--images", images, "--masks", masks, "--dinov2", otherDINOv2, "--sam2", sam2,
        ])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("DINOv2") && r.stderr.contains("not dinov2"), r.stderr)
        r = try runRagseg(["index", "add", bank, "--images", images, "--masks", masks, "--stand-in"])
        XCTAssertNotEqual(r.status, 0, "a real-weights bank refuses stand-in vectors")
        XCTAssertEqual(
            try SupportBank.open(at: bank, readOnly: true).statistics().cases, 0, "refused adds wrote nothing")
        r = try runRagseg([
            "index", "add", bank, "--images", images, "--masks", masks, "--dinov2", dinov2, "--sam2", sam2, "--quiet",
        ])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try SupportBank.open(at: bank, readOnly: true).statistics().cases, 2)
        XCTAssertEqual(try runRagseg(["index", "verify", bank]).status, 0)
        let first = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: images).sorted().first)
        r = try runRagseg(["index", "search", bank, images + "/" + first, "--k", "1"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains(first), "a bank case finds itself: \(r.stdout)")

        // Retrieval-augmented segmentation through the binary: mask at the input size, overlay, JSON report.
        let query = images + "/" + first
        // Weight files recorded at create: later commands need no --dinov2/--sam2.
        r = try runRagseg(["segment", "--index", bank, "--k", "2", "--overlay", "--json", "--out", dir + "/seg", query])
        XCTAssertEqual(r.status, 0, r.stderr)
        let stem = (first as NSString).deletingPathExtension
        let mask = try PNG.read(dir + "/seg/\(stem).png"), input = try PNG.read(query)
        XCTAssertEqual([mask.width, mask.height], [input.width, input.height])
        XCTAssertEqual(try PNG.read(dir + "/seg/\(stem)_overlay.png").channels, 3)
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let target = try XCTUnwrap((report["targets"] as? [[String: Any]])?.first)
        let retrieved = try XCTUnwrap((target["labels"] as? [[String: Any]])?.first?["retrieved"] as? [[String: Any]])
        XCTAssertEqual(retrieved.count, 2)
        XCTAssertEqual(retrieved.first?["image"] as? String, query, "the case itself is the nearest")
        // A folder of targets is one run: each of its PNGs gets its mask.
        r = try runRagseg(["segment", "--index", bank, "--k", "1", "--out", dir + "/folder", images])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(
            try FileManager.default.contentsOfDirectory(atPath: dir + "/folder").sorted(),
            try FileManager.default.contentsOfDirectory(atPath: images).sorted())
        try FileManager.default.createDirectory(atPath: dir + "/nothing", withIntermediateDirectories: true)
        r = try runRagseg(["segment", "--index", bank, "--out", dir + "/folder2", dir + "/nothing"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("nothing: folder has no .png files"), r.stderr)
        r = try runRagseg([
            "segment", "--index", bank, "--dinov2", dinov2, "--sam2", sam2, "--label", "liver", "--out", dir + "/seg",
            query,
        ])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("no label 'liver'"), r.stderr)
        // A CSV path that cannot be written is refused before any case is segmented (the rows are written last).
        for (csv, reason) in [(dir + "/no-such-folder/eval.csv", "does not exist"), (dir, "is a folder")] {
            r = try runRagseg(["eval", "--index", bank, "--k", "1", "--leave-one-out", "--csv", csv])
            XCTAssertNotEqual(r.status, 0)
            XCTAssertTrue(r.stderr.contains("--csv \(csv)") && r.stderr.contains(reason), r.stderr)
            XCTAssertFalse(r.stderr.contains("/2 cases"), "refused before evaluating: \(r.stderr)")
        }
        r = try runRagseg([
            "eval", "--index", bank, "--k", "1", "--leave-one-out",
            "--csv", dir + "/eval.csv",
        ])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("test models"), "says the scores are meaningless: \(r.stdout)")
        XCTAssertEqual(try String(contentsOfFile: dir + "/eval.csv", encoding: .utf8).split(separator: "\n").count, 3)

        // A stand-in bank records no weight files: real-model commands on it say so.
        XCTAssertEqual(try runRagseg(["index", "create", dir + "/standin", "--stand-in"]).status, 0)
        r = try runRagseg(["index", "add", dir + "/standin", "--images", images, "--masks", masks])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("records no weight files"), r.stderr)
    }

    /// A multi-label bank through the binary on the tiny real models: the label map (`--label all`), one
    /// run per label, and `--mask-per-label` agree; a case without a label supports that label with its
    /// empty-mask memory.
    func testMultiLabelSegmentationLabelMapAndPerLabelMasksAgree() throws {
        let dir = temporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir + "/imagesTr", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir + "/labelsTr", withIntermediateDirectories: true)
        for i in 0..<3 {
            try writeGray(dir + "/imagesTr/c\(i)_0000.png", 48, 40) { x, y in UInt8((x * 7 + y * 3 + i * 50) % 256) }
            // c0 and c1: liver (left) and tumour (right); c2: liver only.
            try writeGray(dir + "/labelsTr/c\(i).png", 48, 40) { x, y in
                x < 16 + 4 * i ? 1 : (x > 30 && y > 10 && i < 2 ? 2 : 0)
            }
        }
        try Data(#"{"labels": {"background": 0, "liver": 1, "tumour/mass": 2}}"#.utf8).write(
            to: URL(fileURLWithPath: dir + "/dataset.json"))
        let tests = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        let dinov2 = tests.appendingPathComponent("DINOv2Tests/Fixtures/plain").path
        let sam2 = tests.appendingPathComponent("SAM2Tests/Fixtures/memory/weights.safetensors").path
        let bank = dir + "/bank"
        var r = try runRagseg(["index", "create", bank, "--dataset", dir, "--dinov2", dinov2, "--sam2", sam2])
        XCTAssertEqual(r.status, 0, r.stderr)
        r = try runRagseg(["index", "add", bank, "--dataset", dir, "--quiet"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(
            try SupportBank.open(at: bank, readOnly: true).allRecords().map(\.emptyMaskMemory), [nil, nil, true])

        let query = dir + "/imagesTr/c1_0000.png"
        func segment(_ extra: [String], _ out: String) throws -> [String: Any] {
            let r = try runRagseg(
                [
                    "segment", "--index", bank, "--k", "3", "--json", "--mask-values", "1", "--out", dir + "/" + out,
                    query,
                ] + extra)
            XCTAssertEqual(r.status, 0, r.stderr)
            let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
            return try XCTUnwrap((report["targets"] as? [[String: Any]])?.first)
        }
        let all = try segment([], "all")
        _ = try segment(["--label", "liver"], "liver")
        _ = try segment(["--label", "tumour/mass"], "tumour")
        let split = try segment(["--mask-per-label"], "split")
        let liver = try PNG.read(dir + "/liver/c1_0000.png").pixels,
            tumour = try PNG.read(dir + "/tumour/c1_0000.png").pixels
        let map = try PNG.read(dir + "/all/c1_0000.png").pixels
        // Per-label files (label name made file-safe) are the single-label runs' masks, byte for byte.
        XCTAssertEqual(
            split["masks"] as? [String: String],
            [
                "liver": dir + "/split/c1_0000_liver.png",
                "tumour/mass": dir + "/split/c1_0000_tumour_mass.png",
            ])
        XCTAssertEqual(try PNG.read(dir + "/split/c1_0000_liver.png").pixels, liver)
        XCTAssertEqual(try PNG.read(dir + "/split/c1_0000_tumour_mass.png").pixels, tumour)
        XCTAssertFalse(
            FileManager.default.fileExists(atPath: dir + "/split/c1_0000.png"), "no label map with --mask-per-label")
        // The label map: background exactly where neither label is, and a label only where its own mask is
        // (the tiny random models may well find nothing: MaskCompositionTests checks the rule on known logits).
        XCTAssertEqual(map.count, 48 * 40)
        for i in 0..<map.count {
            XCTAssertEqual(map[i] == 0, liver[i] == 0 && tumour[i] == 0, "pixel \(i)")
            if map[i] == 1 { XCTAssertEqual(liver[i], 1, "pixel \(i)") }
            if map[i] == 2 { XCTAssertEqual(tumour[i], 1, "pixel \(i)") }
        }
        // Tumour: c2 has none, so with k = 3 it supports with its empty-mask memory.
        let labels = try XCTUnwrap(all["labels"] as? [[String: Any]])
        let tumourRetrieved = try XCTUnwrap(labels.last?["retrieved"] as? [[String: Any]])
        XCTAssertEqual(tumourRetrieved.count, 3)
        XCTAssertEqual(
            tumourRetrieved.filter { ($0["image"] as? String)?.hasSuffix("c2_0000.png") == true }.map {
                $0["hasLabel"] as? Bool
            }, [false])
        XCTAssertEqual(tumourRetrieved.filter { $0["hasLabel"] as? Bool == true }.count, 2)
    }

    /// A label map is an 8-bit PNG: a bank with more labels asks for --mask-per-label (or one --label) before any
    /// model loads and without touching the bank; --mask-per-label then writes one mask per label.
    func testLabelMapBeyond255LabelsIsAClearError() throws {
        let dir = temporaryDirectory()
        let (images, masks) = try writeDataset(dir, count: 2, maskValue: 1)
        let tests = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        let dinov2 = tests.appendingPathComponent("DINOv2Tests/Fixtures/plain").path
        let sam2 = tests.appendingPathComponent("SAM2Tests/Fixtures/memory/weights.safetensors").path
        let bank = dir + "/bank"
        let names = (1...256).map { "organ\($0)" }.joined(separator: ",")
        var r = try runRagseg(["index", "create", bank, "--labels", names, "--dinov2", dinov2, "--sam2", sam2])
        XCTAssertEqual(r.status, 0, r.stderr)
        r = try runRagseg(["index", "add", bank, "--images", images, "--masks", masks, "--quiet"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let target = images + "/case000.png"
        r = try runRagseg(["segment", "--index", bank, "--k", "1", "--out", dir + "/seg", target])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(
            r.stderr.contains("has 256 labels, more than an 8-bit label map holds (255): use --mask-per-label"),
            r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/seg"), "refused before writing anything")
        r = try runRagseg([
            "segment", "--index", bank, "--k", "1", "--mask-per-label", "--overlay", "--out", dir + "/seg", target,
        ])
        XCTAssertEqual(r.status, 0, r.stderr)
        let written = try FileManager.default.contentsOfDirectory(atPath: dir + "/seg")
        XCTAssertEqual(written.count, 257, "256 masks and the overlay")
        XCTAssertTrue(written.contains("case000_organ256.png") && written.contains("case000_overlay.png"))
        XCTAssertEqual(try runRagseg(["index", "verify", bank]).status, 0)
    }

    func testFullMapIsAClearErrorAndTheBankStaysUsable() throws {
        let dir = temporaryDirectory()
        let (images, masks) = try writeDataset(dir, count: 12)
        let bank = dir + "/bank"
        XCTAssertEqual(try runRagseg(["index", "create", bank, "--stand-in", "--dinov2-variant", "vits14"]).status, 0)
        // Full-size 512 KiB memories in a 3 MiB map: a few fit, then MDB_MAP_FULL.
        var r = try runRagseg([
            "index", "add", bank, "--images", images, "--masks", masks, "--stand-in", "--batch", "1", "--map-size-mib",
            "3",
        ])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("map is full"), r.stderr)
        let committed = r.stdout.split(separator: "\n").filter { $0.hasPrefix("added\t") }.count
        XCTAssertGreaterThan(committed, 0)
        XCTAssertLessThan(committed, 12)
        XCTAssertEqual(try runRagseg(["index", "verify", bank]).status, 0)
        XCTAssertEqual(try SupportBank.open(at: bank, readOnly: true).statistics().cases, committed)
        r = try runRagseg(["index", "add", bank, "--images", images, "--masks", masks, "--stand-in", "--quiet"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(
            r.stdout.split(separator: "\n").filter { $0.hasPrefix("added\t") }.count, 12 - committed, "resumes")
    }

    /// SIGKILL an adding child at random points: after each kill the bank verifies, every case the
    /// child reported committed is present and findable, and the next add completes.
    func testKilledAddsLeaveTheBankCoherent() throws {
        let dir = temporaryDirectory()
        let count = 40
        let (images, masks) = try writeDataset(dir, count: count)
        let bank = dir + "/bank"
        XCTAssertEqual(
            try runRagseg([
                "index", "create", bank, "--stand-in", "--dinov2-variant", "vits14", "--memory-shape", "8,16,16,16",
            ]).status, 0)
        let executable = try ragsegExecutable()
        var rng = SeededGenerator(seed: 2024)
        let started = Date()
        // Time one uninterrupted add of all cases, then remove half so there is work to interrupt.
        let t0 = Date()
        XCTAssertEqual(
            try runRagseg([
                "index", "add", bank, "--images", images, "--masks", masks, "--stand-in", "--batch", "3", "--quiet",
            ]).status, 0)
        let fullRun = Date().timeIntervalSince(t0)
        try SupportBank.open(at: bank).remove(Array(1...UInt64(count)).filter { $0 % 2 == 0 })
        var kills = 0
        var everCommitted = 0
        for iteration in 0..<16 {
            let remaining = count - (try SupportBank.open(at: bank, readOnly: true).statistics().cases)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = [
                "index", "add", bank, "--images", images, "--masks", masks, "--stand-in", "--batch", "3", "--quiet",
            ]
            let out = Pipe()
            process.standardOutput = out
            process.standardError = FileHandle.nullDevice
            try process.run()
            // Kill at a random point of the run whatever the machine's speed: after the child has reported
            // a random number of committed cases (0 = before any), plus a random few milliseconds, so
            // the kill lands anywhere in encoding, writing or committing the next batch.
            let target = Int.random(in: 0..<max(1, remaining), using: &rng)
            let delay = Double.random(in: 0...0.005, using: &rng)
            var reported = ""
            let reader = out.fileHandleForReading
            while reported.split(separator: "\n").count < target {
                let chunk = reader.availableData
                if chunk.isEmpty { break }  // the child finished first
                reported += String(decoding: chunk, as: UTF8.self)
            }
            Thread.sleep(forTimeInterval: delay)
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                kills += 1
            }
            reported += String(decoding: reader.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            let committedIDs = reported.split(separator: "\n").compactMap { line -> UInt64? in
                let f = line.split(separator: "\t")
                return f.count == 3 && f[0] == "added" ? UInt64(f[1]) : nil
            }
            everCommitted += committedIDs.count
            let verify = try runRagseg(["index", "verify", bank])
            XCTAssertEqual(
                verify.status, 0, "iteration \(iteration), killed after \(target) reported cases: \(verify.stdout)")
            do {
                let b = try SupportBank.open(at: bank)
                for id in committedIDs {
                    guard let v = try b.embedding(id) else {
                        XCTFail("iteration \(iteration): reported case \(id) missing"); continue
                    }
                    let hit = try b.search(v, k: 1).first
                    XCTAssertEqual(
                        hit?.score ?? 0, 1, accuracy: 1e-4, "iteration \(iteration): case \(id) not searchable")
                }
                // Make room for the next iteration: remove a few random cases (they get re-added).
                let all = try b.allRecords().map(\.id)
                let victims = all.filter { _ in Double.random(in: 0..<1, using: &rng) < 0.5 }
                if !victims.isEmpty { try b.remove(victims) }
            }
        }
        print(
            """
            crash test: \(kills) of 16 children killed mid-run, \(everCommitted) commits reported before kills, full \
            run \(String(format: "%.2f", fullRun)) s
            """
        )
        let final = try runRagseg(["index", "add", bank, "--images", images, "--masks", masks, "--stand-in", "--quiet"])
        XCTAssertEqual(final.status, 0, final.stderr)
        XCTAssertEqual(try runRagseg(["index", "verify", bank]).status, 0)
        XCTAssertEqual(try SupportBank.open(at: bank, readOnly: true).statistics().cases, count)
        XCTAssertGreaterThanOrEqual(kills, 12, "most children were killed mid-run (full run \(fullRun) s)")
        XCTAssertGreaterThan(everCommitted, 0)
        XCTAssertLessThan(Date().timeIntervalSince(started), 60)
    }
}

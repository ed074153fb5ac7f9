import Foundation
import RAGSegTestSupport
import XCTest

@testable import SupportBank

/// Sharded builds through the binary with the tiny fixture models: four `index add --shard` processes at once
/// (two of them `--shard auto` under Slurm's and Kubernetes' variables), `index merge`, and the merged bank
/// compared with one `index add` of the same dataset by content hash: cases, embeddings, memories, search results.
final class ShardCLITests: XCTestCase {
    /// Starts ragseg with `extra` in its environment (and no scheduler variables from ours); output goes to files.
    func start(_ arguments: [String], extra: [String: String] = [:], log: String) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try ragsegExecutable())
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment.filter {
            !$0.key.hasPrefix("SLURM_") && $0.key != "JOB_COMPLETION_INDEX" && $0.key != "RAGSEG_SHARD_COUNT"
        }
        environment.merge(extra) { _, new in new }
        process.environment = environment
        FileManager.default.createFile(atPath: log + ".out", contents: nil)
        FileManager.default.createFile(atPath: log + ".err", contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: log + ".out")
        process.standardError = FileHandle(forWritingAtPath: log + ".err")
        try process.run()
        return process
    }

    @discardableResult
    func ok(_ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws -> RunResult {
        let r = try runRagseg(arguments)
        XCTAssertEqual(r.status, 0, "\(arguments): \(r.stderr)", file: file, line: line)
        return r
    }

    /// Records, embeddings and memories of a bank keyed by content hash (ids left out: they differ).
    func contents(_ path: String) throws -> [String: String] {
        let bank = try SupportBank.open(at: path, readOnly: true)
        var out = [String: String]()
        for r in try bank.allRecords() {
            var memories = [String]()
            for label in r.storedMemoryLabels {
                let m = try XCTUnwrap(try bank.memory(r.id, label: label))
                memories.append("\(label): \(m.memoryBits.hashValue) \(m.pointer) \(m.isEmpty)")
            }
            let origin = r.origin.map { "\($0.volume) \($0.volumeHash) \($0.slice) \($0.axis) \($0.spacing)" }
            out[r.contentHash] =
                "\(r.image) \(r.mask) \(r.width)x\(r.height) \(r.labels) \(r.emptyMaskMemory as Any) \(origin as Any) "
                + "\(try bank.embedding(r.id)!) \(memories)"
        }
        return out
    }

    func testFourShardProcessesMergeIntoTheBankOfOneBuild() throws {
        let dir = temporaryDirectory()
        try ok(["sample-data", dir + "/data", "--cases", "28", "--size", "96", "--empty-every", "6"])
        let held = dir + "/held"
        try FileManager.default.createDirectory(atPath: held, withIntermediateDirectories: true)
        for i in 24..<28 {
            try FileManager.default.moveItem(atPath: dir + "/data/images/case_0\(i).png", toPath: held + "/\(i).png")
            try FileManager.default.removeItem(atPath: dir + "/data/masks/case_0\(i).png")
        }
        try ok(["index", "create", dir + "/template", "--dinov2", FixtureModels.dinov2, "--sam2", FixtureModels.sam2])
        let input = ["--images", dir + "/data/images", "--masks", dir + "/data/masks"]
        let shards = (0..<4).map { dir + "/shards/\($0)" }
        for shard in shards { try ok(["index", "create", shard, "--template", dir + "/template"]) }
        // Shard 1 under a Slurm array --array=4-7 (task 5 is its second task), shard 2 as pod 2 of an Indexed Job.
        let environments: [[String: String]] = [
            [:], ["SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "4", "SLURM_ARRAY_TASK_COUNT": "4"],
            ["JOB_COMPLETION_INDEX": "2", "RAGSEG_SHARD_COUNT": "4"], [:],
        ]
        let processes = try (0..<4).map { i in
            try start(
                ["index", "add", shards[i]] + input + ["--shard", environments[i].isEmpty ? "\(i)/4" : "auto"],
                extra: environments[i], log: dir + "/shard\(i)")
        }
        // Meanwhile, the same dataset in one process.
        try ok(["index", "create", dir + "/single", "--template", dir + "/template"])
        try ok(["index", "add", dir + "/single"] + input)
        var imagesPerShard = [Set<String>]()
        for (i, process) in processes.enumerated() {
            process.waitUntilExit()
            let err = try String(contentsOfFile: dir + "/shard\(i).err", encoding: .utf8)
            XCTAssertEqual(process.terminationStatus, 0, err)
            XCTAssertTrue(err.contains("shard \(i)/4: "), err)
            let out = try String(contentsOfFile: dir + "/shard\(i).out", encoding: .utf8)
            imagesPerShard.append(Set(out.split(separator: "\n").map { String($0.split(separator: "\t")[2]) }))
        }
        // A disjoint split of the 24 pairs, none empty (24 hashes spread over 4 shards).
        XCTAssertEqual(imagesPerShard.map(\.count).reduce(0, +), 24, "\(imagesPerShard.map(\.count))")
        XCTAssertEqual(imagesPerShard.reduce(Set<String>()) { $0.union($1) }.count, 24)
        XCTAssertFalse(imagesPerShard.contains { $0.isEmpty }, "\(imagesPerShard.map(\.count))")
        // Each shard is a bank on its own: it verifies and answers searches with its own cases.
        let shardVerify = try ok(["index", "verify", shards[1]])
        XCTAssertTrue(shardVerify.stdout.contains("\(imagesPerShard[1].count) cases, "), shardVerify.stdout)
        let shardHits = try ok(["index", "search", shards[1], held + "/24.png", "--k", "2"]).stdout
        let hitImages = shardHits.split(separator: "\n").dropFirst().map { String($0.split(separator: "\t")[3]) }
        XCTAssertEqual(hitImages.count, 2, shardHits)
        XCTAssertTrue(Set(hitImages).isSubset(of: imagesPerShard[1]), shardHits)
        // A shard keeps its share, and a shard bank takes nothing without one.
        let wrong = try runRagseg(["index", "add", shards[0]] + input + ["--shard", "1/4"])
        XCTAssertEqual(wrong.status, 1)
        XCTAssertTrue(wrong.stderr.contains("holds shard 0/4 of the inputs, not 1/4"), wrong.stderr)
        // A bad --shard is a usage error found before the bank is touched.
        try ok(["index", "create", dir + "/untouched", "--template", dir + "/template"])
        let underScheduler = ProcessInfo.processInfo.environment.keys.contains {
            $0 == "SLURM_ARRAY_TASK_ID" || $0 == "JOB_COMPLETION_INDEX"
        }
        for bad in underScheduler ? ["4/4"] : ["4/4", "auto"] {
            let r = try runRagseg(["index", "add", dir + "/untouched"] + input + ["--shard", bad])
            XCTAssertEqual(r.status, 64, r.stderr)
            XCTAssertTrue(r.stderr.contains(bad == "auto" ? "found no job array" : "need 0 <= I < N"), r.stderr)
        }
        XCTAssertNil(try SupportBank.readMetadata(at: dir + "/untouched").shard)
        let plain = try runRagseg(["index", "add", shards[0]] + input)
        XCTAssertTrue(plain.stderr.contains("is shard 0/4 of a build: add to it with --shard 0/4"), plain.stderr)

        // Another bank of the same template holding 3 of the cases: duplicates across inputs.
        try ok(["index", "create", dir + "/extra", "--template", dir + "/template"])
        let list = (0..<3).map { "\(dir)/data/images/case_00\($0).png,\(dir)/data/masks/case_00\($0).png" }
        try list.joined(separator: "\n").write(toFile: dir + "/extra.csv", atomically: true, encoding: .utf8)
        try ok(["index", "add", dir + "/extra", "--list", dir + "/extra.csv"])

        let merged = try ok(["index", "merge", dir + "/merged"] + shards + [dir + "/extra"])
        XCTAssertTrue(merged.stdout.contains("merged 24 cases"), merged.stdout)
        XCTAssertTrue(merged.stdout.contains("from 5 banks"), merged.stdout)
        XCTAssertTrue(merged.stdout.contains("3 duplicate(s) skipped"), merged.stdout)
        XCTAssertTrue(merged.stdout.contains("input\t\(dir)/extra\t-\t3\t0\t3"), merged.stdout)
        let verify = try ok(["index", "verify", dir + "/merged"])
        XCTAssertTrue(
            verify.stdout.contains("24 cases, 24 memories, 24 index vectors (0 tombstones): OK"), verify.stdout)

        let mergedContents = try contents(dir + "/merged"), singleContents = try contents(dir + "/single")
        XCTAssertEqual(mergedContents.count, 24)
        XCTAssertEqual(mergedContents, singleContents)
        // Search: the same neighbours (images and scores; only the ids differ) for held-out images.
        for i in 24..<28 {
            func hits(_ bank: String) throws -> [String] {
                try ok(["index", "search", bank, held + "/\(i).png", "--k", "5"]).stdout.split(separator: "\n").map {
                    let columns = $0.split(separator: "\t")
                    return ([columns[0]] + columns[2...]).joined(separator: "\t")
                }
            }
            XCTAssertEqual(try hits(dir + "/merged"), try hits(dir + "/single"))
        }

        // A bank with other models is refused, naming it and what differs; nothing appears at the target.
        try ok(["index", "create", dir + "/other", "--stand-in", "--dinov2-variant", "vits14"])
        let refused = try runRagseg(["index", "merge", dir + "/refused"] + shards + [dir + "/other"])
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(
            refused.stderr.contains(
                "bank \(dir)/other: cannot be merged with \(shards[0]): its retrieval (DINOv2) model"),
            refused.stderr)
        let missing = try runRagseg(["index", "merge", dir + "/refused", shards[0], shards[1], shards[3]])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("shard(s) 2/4 of the same build are not given"), missing.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/refused"))
    }

    /// Volumes are shared out whole: every slice of a volume is in the one shard that holds its file.
    func testVolumeShardsHoldWholeVolumes() throws {
        let dir = temporaryDirectory()
        try ok(["sample-data", "--3d", dir + "/volumes", "--cases", "6", "--size", "32", "--slices", "8"])
        try ok([
            "index", "create", dir + "/template", "--dinov2", FixtureModels.dinov2, "--sam2", FixtureModels.sam2,
            "--dataset", dir + "/volumes",
        ])
        var volumesPerShard = [Set<String>]()
        for i in 0..<2 {
            let shard = dir + "/shard\(i)"
            try ok(["index", "create", shard, "--template", dir + "/template"])
            try ok(["index", "add", shard, "--dataset", dir + "/volumes", "--shard", "\(i)/2"])
            let records = try SupportBank.open(at: shard, readOnly: true).allRecords()
            volumesPerShard.append(Set(records.map { $0.origin!.volumeHash }))
        }
        XCTAssertEqual(volumesPerShard[0].count + volumesPerShard[1].count, 6, "\(volumesPerShard)")
        XCTAssertTrue(volumesPerShard[0].isDisjoint(with: volumesPerShard[1]))
        try ok(["index", "create", dir + "/single", "--template", dir + "/template"])
        try ok(["index", "add", dir + "/single", "--dataset", dir + "/volumes"])
        try ok(["index", "merge", dir + "/merged", dir + "/shard0", dir + "/shard1"])
        XCTAssertEqual(try contents(dir + "/merged"), try contents(dir + "/single"))
        let info = try ok(["index", "info", dir + "/merged"]).stdout
        XCTAssertTrue(info.contains(" slices of 6 volume(s)"), info)
        // Removing a volume on the merged bank removes all its slices (they all came from one shard).
        let volume = try XCTUnwrap(volumesPerShard.first { !$0.isEmpty }?.first)
        let removed = try ok(["index", "remove", dir + "/merged", "--volume", volume])
        XCTAssertTrue(removed.stderr.contains("slice(s) of \(volume)"), removed.stderr)
        try ok(["index", "verify", dir + "/merged"])
    }
}

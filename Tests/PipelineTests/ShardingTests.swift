import Foundation
import SupportBank
import XCTest

@testable import RAGSegPipeline

/// `--shard I/N` and `--shard auto` (Slurm job arrays, Kubernetes Indexed Jobs), and the split of inputs by the
/// SHA-256 of their image files (independent of order and paths).
final class ShardingTests: XCTestCase {
    func testExplicitAndSchedulerShares() throws {
        XCTAssertEqual(try Sharding.parse("1/4", environment: [:]), ShardAssignment(index: 1, count: 4))
        XCTAssertEqual(try Sharding.parse("0/1", environment: [:]), ShardAssignment(index: 0, count: 1))
        // Slurm: --array=4-7 runs tasks 4...7; the second one is shard 1 of 4.
        let slurm = ["SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "4", "SLURM_ARRAY_TASK_COUNT": "4"]
        XCTAssertEqual(try Sharding.parse("auto", environment: slurm), ShardAssignment(index: 1, count: 4))
        XCTAssertEqual(
            try Sharding.parse("auto", environment: ["SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "3"]),
            ShardAssignment(index: 2, count: 3))
        XCTAssertEqual(
            try Sharding.parse("auto", environment: ["JOB_COMPLETION_INDEX": "3", "RAGSEG_SHARD_COUNT": "8"]),
            ShardAssignment(index: 3, count: 8))
        let refused: [(String, [String: String], String)] = [
            ("4/4", [:], "need 0 <= I < N"),
            ("1/0", [:], "need 0 <= I < N"),
            ("-1/4", [:], "need 0 <= I < N"),
            ("1of4", [:], "--shard takes I/N"),
            ("auto", [:], "found no job array"),
            ("auto", ["SLURM_ARRAY_TASK_ID": "1"], "not SLURM_ARRAY_TASK_COUNT"),
            ("auto", slurm.merging(["SLURM_ARRAY_TASK_STEP": "2"]) { $1 }, "steps by 2"),
            ("auto", ["SLURM_ARRAY_TASK_ID": "9", "SLURM_ARRAY_TASK_COUNT": "4"], "shard 9/4"),
            ("auto", ["JOB_COMPLETION_INDEX": "0"], "not RAGSEG_SHARD_COUNT"),
            ("auto", ["JOB_COMPLETION_INDEX": "x", "RAGSEG_SHARD_COUNT": "2"], "JOB_COMPLETION_INDEX=x"),
        ]
        for (text, environment, expected) in refused {
            XCTAssertThrowsError(try Sharding.parse(text, environment: environment), "\(text) \(environment)") {
                XCTAssertTrue("\($0)".contains(expected), "\(text) \(environment): \($0)")
            }
        }
    }

    /// Every file lands in exactly one shard, the one its bytes say, whatever the order or the file's name.
    func testSplitFollowsTheFileBytes() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sharding-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var files = [String]()
        for i in 0..<40 {
            let path = dir + "/f\(i)"
            try Data("file \(i)".utf8).write(to: URL(fileURLWithPath: path))
            files.append(path)
        }
        var seen = [String]()
        for index in 0..<3 {
            let share = ShardAssignment(index: index, count: 3)
            let mine = try Sharding.select(files, shard: share) { $0 }
            XCTAssertEqual(try Sharding.select(files.reversed(), shard: share) { $0 }, mine.reversed())
            // Against an independent SHA-256 (coreutils): the first 16 hex digits, as a number, mod 3.
            for file in mine {
                let digest = try sha256sum(file)
                XCTAssertEqual(Int(UInt64(digest.prefix(16), radix: 16)! % 3), index, file)
            }
            seen += mine
        }
        XCTAssertEqual(seen.sorted(), files.sorted())
        // Renamed, a file keeps its shard.
        let moved = dir + "/renamed"
        try FileManager.default.moveItem(atPath: files[0], toPath: moved)
        XCTAssertEqual(
            try Sharding.fileDigest(moved).prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) } % 3,
            UInt64(try sha256sum(moved).prefix(16), radix: 16)! % 3)
    }

    private func sha256sum(_ path: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["sha256sum", path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(String(decoding: data, as: UTF8.self).prefix(64))
    }
}

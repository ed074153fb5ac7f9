import CLMDB
import Foundation
import RAGSegTestSupport
import XCTest
import RAGSegIO
@testable import SupportBank

/// A damaged data.mdb, a failed LMDB open and a full disk end in a clear error (exit 1, the file and the
/// problem named, no signal) and change nothing stored.
final class DamagedBankTests: XCTestCase {
    /// A stand-in bank of `count` small cases made through the binary; returns (bank, images folder).
    func makeBank(_ dir: String, count: Int) throws -> (String, String) {
        let (images, masks) = try writeDataset(dir, count: count)
        let bank = dir + "/bank"
        var r = try runRagseg([
            "index", "create", bank, "--stand-in", "--dinov2-variant", "vits14", "--memory-shape", "4,8,8,16",
        ])
        XCTAssertEqual(r.status, 0, r.stderr)
        r = try runRagseg(["index", "add", bank, "--images", images, "--masks", masks, "--stand-in", "--quiet"])
        XCTAssertEqual(r.status, 0, r.stderr)
        return (bank, images)
    }

    /// The bytes of every file but lock.mdb (reader slots, not data), by name.
    func storedFiles(_ bank: String) throws -> [String: Data] {
        var out = [String: Data]()
        for name in try FileManager.default.contentsOfDirectory(atPath: bank) where name != "lock.mdb" {
            var isDirectory: ObjCBool = false
            let path = bank + "/" + name
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
                out[name] = Data("directory".utf8)
            } else {
                out[name] = try Data(contentsOf: URL(fileURLWithPath: path))
            }
        }
        return out
    }

    /// Runs the commands that open a bank on it; each must fail with exit 1 and a message containing
    /// `expected`, and leave the stored files as they were.
    func assertRefused(
        _ bank: String, images: String, expected: String, _ what: String,
        file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let before = try storedFiles(bank)
        let commands: [[String]] = [
            ["index", "info", bank], ["index", "verify", bank],
            ["index", "search", bank, images + "/case000.png", "--stand-in"],
            [
                "index", "add", bank, "--images", images, "--masks",
                (images as NSString).deletingLastPathComponent + "/masks", "--stand-in",
            ],
            ["index", "remove", bank, "1"],
        ]
        for command in commands {
            let r = try runRagseg(command)
            XCTAssertEqual(
                r.status, 1, "\(what), \(command[1]): exit \(r.status) (signal?) \(r.stderr)", file: file, line: line)
            XCTAssertTrue(
                r.stderr.contains("bank \(bank): " + expected), "\(what), \(command[1]): \(r.stderr)", file: file,
                line: line)
            XCTAssertFalse(
                r.stderr.contains("Fatal error") || r.stderr.contains("double free"), r.stderr, file: file, line: line)
        }
        XCTAssertEqual(try storedFiles(bank), before, "\(what): nothing stored changed", file: file, line: line)
    }

    /// Issue: `mkdir -p x/data.mdb && ragseg index info ./x` was a double free (exit 134).
    func testDataFileThatIsADirectoryIsAClearError() throws {
        let dir = temporaryDirectory()
        let (_, images) = try makeBank(dir + "/source", count: 1)
        let bank = dir + "/x"
        try FileManager.default.createDirectory(atPath: bank + "/data.mdb", withIntermediateDirectories: true)
        try assertRefused(
            bank, images: images, expected: "data.mdb is not a regular file (a directory); restore it from a copy",
            "directory")
    }

    /// LMDB's own open failing (here: a read-only open of a folder with no environment) throws once
    /// and closes the environment once (it was closed twice: a double free that aborted the process).
    func testFailedLMDBOpenThrowsAndClosesOnce() throws {
        let dir = temporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for _ in 0..<3 {
            XCTAssertThrowsError(try LMDBEnvironment(path: dir, mapSize: 1 << 20, readOnly: true)) { error in
                XCTAssertEqual((error as? LMDBError)?.code, ENOENT, "\(error)")
                XCTAssertTrue("\(error)".contains("open LMDB environment \(dir)"), "\(error)")
            }
        }
        XCTAssertThrowsError(try LMDBEnvironment(path: dir + "/absent/deeper", mapSize: 1 << 20))
    }

    /// The header this build reads before LMDB maps the file agrees with LMDB's own view of it.
    func testMetaPageReadingAgreesWithLMDB() throws {
        let dir = temporaryDirectory()
        let (bank, _) = try makeBank(dir, count: 6)
        let fd = open(bank + "/data.mdb", O_RDONLY)
        defer { close(fd) }
        var info = stat()
        XCTAssertEqual(fstat(fd, &info), 0)
        let meta = try LMDBDataFile.readMeta(fd: fd, size: Int(info.st_size), directory: bank)
        let env = try LMDBEnvironment(path: bank, mapSize: SupportBank.defaultMapSize, readOnly: true)
        var envInfo = MDB_envinfo()
        var envStat = MDB_stat()
        mdb_env_info(env.env, &envInfo)
        mdb_env_stat(env.env, &envStat)
        XCTAssertEqual(meta.pageSize, Int(envStat.ms_psize))
        XCTAssertEqual(meta.lastPage, envInfo.me_last_pgno)
        XCTAssertEqual(meta.transactionID, envInfo.me_last_txnid)
        XCTAssertGreaterThan(meta.lastPage, 2, "the bank uses more than its meta pages")
    }

    /// Issue: `truncate -s 8192 B/data.mdb; ragseg index info B` was a bus error inside liblmdb (exit 135),
    /// also for verify, search and add; truncations to 0 and 4096 bytes and garbage were a double free.
    func testTruncatedOrOverwrittenDataFileIsAClearError() throws {
        let dir = temporaryDirectory()
        let (source, images) = try makeBank(dir + "/source", count: 8)
        let original = try Data(contentsOf: URL(fileURLWithPath: source + "/data.mdb"))
        // What the file must hold, from LMDB itself (the last used page times the page size).
        let used = try SupportBank.open(at: source, readOnly: true).lmdbUsedBytes
        XCTAssertGreaterThan(used, 8192)
        XCTAssertLessThanOrEqual(used, original.count)
        var rng = SeededGenerator(seed: 16)
        let garbage = Data((0..<original.count).map { _ in UInt8.random(in: 0...255, using: &rng) })
        var firstPageGarbage = original
        firstPageGarbage.replaceSubrange(0..<4096, with: garbage.prefix(4096))
        var secondMetaGarbage = original
        secondMetaGarbage.replaceSubrange(4096..<8192, with: garbage.prefix(4096))
        let damages: [(String, Data, String)] = [
            ("empty", Data(), "data.mdb is empty (0 bytes); restore it from a copy"),
            (
                "100 bytes", original.prefix(100),
                "data.mdb is truncated (100 of at least 152 bytes); restore it from a copy"
            ),
            (
                "4096 bytes", original.prefix(4096),
                "data.mdb is truncated (4096 of at least 8192 bytes); restore it from a copy"
            ),
            (
                "8192 bytes", original.prefix(8192),
                "data.mdb is truncated (8192 of \(used) bytes); restore it from a copy"
            ),
            (
                "half", original.prefix(used / 2),
                "data.mdb is truncated (\(used / 2) of \(used) bytes); restore it from a copy"
            ),
            (
                "one page short", original.prefix(used - 4096),
                "data.mdb is truncated (\(used - 4096) of \(used) bytes); restore it from a copy"
            ),
            (
                "garbage", garbage,
                """
                data.mdb is not an LMDB data file (its first meta page is not one: overwritten?); restore it from a copy
                """
            ),
            (
                "first page garbage", firstPageGarbage,
                "data.mdb is not an LMDB data file (its first meta page is not one"
            ),
            (
                "second meta page garbage", secondMetaGarbage,
                "data.mdb is not an LMDB data file (its second meta page is not one"
            ),
        ]
        for (what, bytes, expected) in damages {
            let bank = dir + "/damaged"
            try CrashPoints.restore(source, to: bank)
            try bytes.write(to: URL(fileURLWithPath: bank + "/data.mdb"))
            try assertRefused(bank, images: images, expected: expected, what)
        }
        // The whole file, or more (a file LMDB has grown past its last page), still opens.
        let bank = dir + "/grown"
        try CrashPoints.restore(source, to: bank)
        try (original + Data(count: 8192)).write(to: URL(fileURLWithPath: bank + "/data.mdb"))
        XCTAssertEqual(try runRagseg(["index", "verify", bank]).status, 0)
    }

    /// `index search --k 0` printed a header and no rows and exited 0; it is refused like segment's.
    func testSearchRefusesKZeroLikeSegment() throws {
        let dir = temporaryDirectory()
        let (bank, images) = try makeBank(dir, count: 1)
        let search = try runRagseg(["index", "search", bank, images + "/case000.png", "--k", "0", "--stand-in"])
        let segment = try runRagseg([
            "segment", "--index", bank, "--k", "0", "--out", dir + "/out", images + "/case000.png",
        ])
        XCTAssertNotEqual(search.status, 0)
        XCTAssertEqual(search.status, segment.status, "the same refusal as segment: \(segment.stderr)")
        XCTAssertTrue(search.stderr.contains("--k must be at least 1"), search.stderr)
        XCTAssertTrue(segment.stderr.contains("--k must be at least 1"), segment.stderr)
        XCTAssertEqual(search.stdout, "")
    }
}

import Foundation
import RAGSegTestSupport
import XCTest
import RAGSegIO
@testable import SupportBank

/// Kills `index add` and `index remove` before each of their file-changing calls, and fills the disk
/// under `index add` (a real 1 MiB tmpfs where the test may mount one, and the shim's failing writes
/// everywhere): the bank always opens, verifies clean and holds all or none of the batch.
final class CrashPointTests: XCTestCase {
    /// A stand-in bank holding `count` cases of `dir`/images; returns the bank path.
    func makeBank(_ dir: String, count: Int, memoryShape: String = "4,8,8,16") throws -> String {
        let (images, masks) = try writeDataset(dir + "/first", count: count)
        let bank = dir + "/pristine"
        var r = try runRagseg([
            "index", "create", bank, "--stand-in", "--dinov2-variant", "vits14", "--memory-shape", memoryShape,
        ])
        XCTAssertEqual(r.status, 0, r.stderr)
        r = try runRagseg(["index", "add", bank, "--images", images, "--masks", masks, "--stand-in", "--quiet"])
        XCTAssertEqual(r.status, 0, r.stderr)
        return bank
    }

    /// A bank that `verify` finds coherent; returns its case records (opening it read-only).
    func verifiedRecords(_ bank: String, _ what: String, file: StaticString = #filePath, line: UInt = #line) throws
        -> [CaseRecord]
    {
        let verify = try runRagseg(["index", "verify", bank])
        XCTAssertEqual(verify.status, 0, "\(what): \(verify.stdout)\(verify.stderr)", file: file, line: line)
        return try SupportBank.open(at: bank, readOnly: true).allRecords()
    }

    func testAddKilledBeforeAnyFileChangeLeavesAllOrNoneOfTheBatch() throws {
        let dir = temporaryDirectory()
        let pristine = try makeBank(dir, count: 2)
        let (images, masks) = try writeDataset(dir + "/batch", count: 3, size: 40)  // unlike the first cases
        let bank = dir + "/bank"
        let before = try SupportBank.open(at: pristine, readOnly: true).allRecords().map(\.image)
        var sawNone = false, sawAll = false
        let points = try CrashPoints.forEachCrashPoint(
            ["index", "add", bank, "--images", images, "--masks", masks, "--stand-in", "--quiet"],
            prepare: { try CrashPoints.restore(pristine, to: bank) },
            check: { point, call in
                let stored = try verifiedRecords(bank, "killed before call \(point) (\(call))").map(\.image)
                let batch = (0..<3).map { images + String(format: "/case%03d.png", $0) }
                if stored == before {
                    sawNone = true
                } else if stored == before + batch {
                    sawAll = true
                } else {
                    XCTFail("killed before call \(point) (\(call)): a part of the batch is stored: \(stored)")
                }
            })
        XCTAssertTrue(sawNone, "some kill came before the commit")
        XCTAssertTrue(sawAll, "some kill came after the commit (index checkpoint)")
        XCTAssertGreaterThanOrEqual(points, 4, "LMDB's page writes, sync and meta write at least")
        XCTAssertEqual(try verifiedRecords(bank, "completed").count, 5)
    }

    func testRemoveKilledBeforeAnyFileChangeLeavesAllOrNoneOfTheBatch() throws {
        let dir = temporaryDirectory()
        let pristine = try makeBank(dir, count: 5)
        let bank = dir + "/bank"
        let before = try SupportBank.open(at: pristine, readOnly: true).allRecords().map(\.id)
        XCTAssertEqual(before, [1, 2, 3, 4, 5])
        var sawNone = false, sawAll = false
        let points = try CrashPoints.forEachCrashPoint(
            ["index", "remove", bank, "2", "4"],
            prepare: { try CrashPoints.restore(pristine, to: bank) },
            check: { point, call in
                let stored = try verifiedRecords(bank, "killed before call \(point) (\(call))").map(\.id)
                if stored == before {
                    sawNone = true
                } else if stored == [1, 3, 5] {
                    sawAll = true
                } else {
                    XCTFail("killed before call \(point) (\(call)): a part of the batch is removed: \(stored)")
                }
            })
        XCTAssertTrue(sawNone && sawAll)
        XCTAssertGreaterThanOrEqual(points, 4)
        XCTAssertEqual(try verifiedRecords(bank, "completed").map(\.id), [1, 3, 5])
    }

    /// The shim makes the first write to data.mdb of an add fail as a full disk does (ENOSPC), then as a
    /// short write (which LMDB reports as EIO) on a disk with room: each is a clear error naming the
    /// bank, nothing of the batch is stored, and the next add completes.
    func testFailedWritesDuringAddAreClearErrorsAndWriteNothing() throws {
        let dir = temporaryDirectory()
        let pristine = try makeBank(dir, count: 2)
        let (images, masks) = try writeDataset(dir + "/batch", count: 3, size: 40)  // unlike the first cases
        let bank = dir + "/bank"
        let arguments = ["index", "add", bank, "--images", images, "--masks", masks, "--stand-in", "--quiet"]
        try CrashPoints.restore(pristine, to: bank)
        let counted = try CrashPoints.run(arguments, fault: nil)
        XCTAssertEqual(counted.result.status, 0, counted.result.stderr)
        let firstDataWrite =
            try XCTUnwrap(
                counted.calls.firstIndex { $0.contains("write") && $0.hasSuffix("/data.mdb") }, "\(counted.calls)") + 1
        let before = try SupportBank.open(at: pristine, readOnly: true).allRecords()

        for (fault, expected) in [
            (
                CrashPoints.Fault.failWrites(from: firstDataWrite, errno: ENOSPC),
                "the disk is full (No space left on device; "
            ),
            (.shortWrites(from: firstDataWrite), "Input/output error with "),
        ] {
            try CrashPoints.restore(pristine, to: bank)
            let r = try CrashPoints.run(arguments, fault: fault).result
            XCTAssertEqual(r.status, 1, "\(fault): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("Error: commit to \(bank): " + expected), "\(fault): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("nothing from this batch was written"), r.stderr)
            XCTAssertEqual(r.stdout, "", "no case reported added")
            XCTAssertEqual(try verifiedRecords(bank, "\(fault)"), before)
            let resumed = try runRagseg(arguments)
            XCTAssertEqual(resumed.status, 0, resumed.stderr)
            XCTAssertEqual(try verifiedRecords(bank, "resumed after \(fault)").count, 5)
        }
    }

    /// Issue: a bank on a full disk said "commit to B: Input/output error". On a real 1 MiB tmpfs (where
    /// this process may mount one) the add stops with the disk named full, keeps the batches committed
    /// before, and resumes once there is room.
    func testFullTmpfsIsNamedADiskFull() throws {
        let dir = temporaryDirectory()
        let mountPoint = dir + "/small"
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        let mount = Process()
        mount.executableURL = URL(fileURLWithPath: "/bin/mount")
        mount.arguments = ["-t", "tmpfs", "-o", "size=1m", "tmpfs", mountPoint]
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/bin/mount"),
            (try? runToCompletion(mount))?.status == 0
        else {
            throw XCTSkip(
                """
                cannot mount a small tmpfs here (testFailedWritesDuringAddAreClearErrorsAndWriteNothing covers the \
                errors)
                """
            )
        }
        defer {
            let umount = Process()
            umount.executableURL = URL(fileURLWithPath: "/bin/umount")
            umount.arguments = [mountPoint]
            _ = try? runToCompletion(umount)
        }
        let (images, masks) = try writeDataset(dir, count: 8)
        let bank = mountPoint + "/bank"
        // Full-size stand-in memories (64x64x64 bf16, 512 KiB each): the 1 MiB disk holds about one.
        XCTAssertEqual(try runRagseg(["index", "create", bank, "--stand-in", "--dinov2-variant", "vits14"]).status, 0)
        let r = try runRagseg([
            "index", "add", bank, "--images", images, "--masks", masks, "--stand-in", "--batch", "1", "--quiet",
        ])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains(bank + ": the disk is full ("), r.stderr)
        XCTAssertTrue(r.stderr.contains("nothing from this batch was written"), r.stderr)
        let committed = r.stdout.split(separator: "\n").filter { $0.hasPrefix("added\t") }.count
        XCTAssertLessThan(committed, 8)
        let stored = try SupportBank.open(at: bank, readOnly: true).allRecords()
        XCTAssertEqual(stored.count, committed, "exactly the reported batches are stored")
        // Move the bank to a roomy disk: it verifies and the add resumes.
        let moved = dir + "/moved"
        try FileManager.default.copyItem(atPath: bank, toPath: moved)
        XCTAssertEqual(try verifiedRecords(moved, "after the full disk"), stored)
        let resumed = try runRagseg([
            "index", "add", moved, "--images", images, "--masks", masks, "--stand-in", "--quiet",
        ])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertEqual(try verifiedRecords(moved, "resumed").count, 8)
    }
}

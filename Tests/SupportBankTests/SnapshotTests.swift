import Foundation
import RAGSegTestSupport
import XCTest
@testable import SupportBank

/// `snapshot` / `ragseg index snapshot`: consistent copies taken while writers run.
final class SnapshotTests: XCTestCase {
    /// The case ids of a bank in id order.
    func ids(_ bank: SupportBank) throws -> [UInt64] { try bank.allRecords().map(\.id) }

    /// Snapshots taken from other processes while a `ragseg index add` child commits batches of 3: each one
    /// verifies clean (the CLI's verify: LMDB, checksums, index file and index against LMDB), holds a prefix of
    /// the adds (ids 1...m, whole batches only, at journal position m) with the primary's exact records and
    /// embeddings, and its index file is at that position without any replay.
    func testSnapshotsDuringConcurrentAddsAreConsistentPrefixes() throws {
        let dir = temporaryDirectory()
        let count = 90
        let (images, masks) = try writeDataset(dir, count: count)
        let bank = dir + "/bank"
        let create = try runRagseg(
            ["index", "create", bank, "--stand-in", "--dinov2-variant", "vits14", "--memory-shape", "8,16,16,16"])
        XCTAssertEqual(create.status, 0, create.stderr)
        let child = try RagsegChild([
            "index", "add", bank, "--images", images, "--masks", masks, "--stand-in", "--batch", "3",
        ])
        var snapshots = [String]()
        var attempt = 0
        // Snapshot until the child is done, at least three times with the writer running.
        while child.process.isRunning || snapshots.count < 3 {
            let target = dir + "/snap\(attempt)"
            attempt += 1
            let running = child.process.isRunning
            let r = try runRagseg(["index", "snapshot", bank, target])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stdout.contains("snapshot \(target):"), r.stdout)
            if running { snapshots.append(target) }
            if attempt > 200 { break }
        }
        XCTAssertEqual(child.finish(), 0)
        XCTAssertGreaterThanOrEqual(snapshots.count, 3, "snapshots taken while the writer ran")

        let primary = try SupportBank.open(at: bank, readOnly: true)
        let all = try primary.allRecords()
        XCTAssertEqual(all.map(\.id), Array(1...UInt64(count)))
        var sizes = Set<Int>()
        for snapshot in snapshots {
            let verify = try runRagseg(["index", "verify", snapshot])
            XCTAssertEqual(verify.status, 0, "\(snapshot): \(verify.stdout)")
            XCTAssertFalse(
                verify.stdout.contains("note:"), "\(snapshot): index file at the copy's position: \(verify.stdout)")
            let copy = try SupportBank.open(at: snapshot, readOnly: true)
            XCTAssertNil(copy.indexRepair, snapshot)
            let records = try copy.allRecords()
            let m = records.count
            XCTAssertEqual(records.map(\.id), Array(1...UInt64(max(m, 1))).prefix(m).map { $0 }, "prefix of the adds")
            XCTAssertEqual(m % 3, 0, "\(snapshot): whole batches only, got \(m) cases")
            XCTAssertEqual(records, Array(all.prefix(m)), snapshot)
            let stats = try copy.statistics()
            XCTAssertEqual(stats.journalSeq, UInt64(m))
            XCTAssertEqual(stats.indexFileSeq, UInt64(m))
            XCTAssertEqual(stats.indexVectors, m)
            XCTAssertEqual(copy.metadata, primary.metadata)
            for id in (m > 0 ? [1, m / 2 + 1, m] : []).map(UInt64.init) {
                XCTAssertEqual(try copy.embedding(id), try primary.embedding(id))
                XCTAssertEqual(try copy.memory(id, label: 1)?.memoryBits, try primary.memory(id, label: 1)?.memoryBits)
                XCTAssertEqual(try copy.search(try XCTUnwrap(try primary.embedding(id)), k: 1).first?.id, id)
            }
            sizes.insert(m)
        }
        XCTAssertGreaterThan(sizes.count, 1, "the writer made progress between snapshots: \(sizes.sorted())")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains(".creating-") }
        XCTAssertEqual(leftovers, [], "no staging folders left behind")
    }

    /// What a snapshot killed before its rename leaves (a staging folder holding LMDB's copy and the index file,
    /// perhaps mid-write) is no bank: `open` refuses it, and the next snapshot to the same target removes it.
    func testKilledSnapshotLeavesNoBankAndIsCleanedUp() throws {
        let dir = temporaryDirectory()
        let bank = try SupportBank.create(at: dir + "/bank", metadata: makeMetadata(dimension: 8))
        var rng = SeededGenerator(seed: 11)
        try bank.add((0..<5).map { makeCase($0, dimension: 8, rng: &rng) })
        // A finished process's id: the "killed" snapshot's.
        let gone = Process()
        gone.executableURL = URL(fileURLWithPath: "/bin/true")
        try gone.run()
        gone.waitUntilExit()
        let staging = dir + "/.copy.creating-\(gone.processIdentifier)-12345"
        _ = try bank.snapshot(to: staging + "-full")  // a real copy's files, moved into the staging folder
        try FileManager.default.moveItem(atPath: staging + "-full", toPath: staging)
        XCTAssertTrue(FileManager.default.createFile(atPath: staging + "/.ragseg-creating", contents: nil))
        XCTAssertTrue(
            FileManager.default.createFile(
                atPath: staging + "/index.faiss.tmp.\(gone.processIdentifier)", contents: nil))
        XCTAssertThrowsError(try SupportBank.open(at: staging)) { error in
            XCTAssertTrue("\(error)".contains("staging folder"), "\(error)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/copy"))
        let report = try bank.snapshot(to: dir + "/copy")
        XCTAssertEqual(report.cases, 5)
        XCTAssertFalse(FileManager.default.fileExists(atPath: staging), "the dead snapshot's staging folder is removed")
        XCTAssertTrue(try SupportBank.open(at: dir + "/copy").verify().ok)
    }

    /// In one process: a writer thread keeps adding while the bank snapshots itself; the copy drops the
    /// space of removed cases (compacted) and refuses a target that is not empty, touching nothing.
    func testSnapshotInProcessCompactsAndRefusesNonEmptyTarget() throws {
        let dir = temporaryDirectory()
        // 32 KiB memories: each is its own run of overflow pages, so removed cases leave pages to drop.
        let shape = MemoryShape(channels: 16, height: 32, width: 32, pointerDimension: 8)
        let bank = try SupportBank.create(
            at: dir + "/bank", metadata: makeMetadata(dimension: 16, kind: .hnsw, shape: shape))
        var rng = SeededGenerator(seed: 5)
        try bank.add((0..<60).map { makeCase($0, dimension: 16, rng: &rng, shape: shape) })
        try bank.remove(Array(1...40))
        let compact = try bank.snapshot(to: dir + "/compact")
        XCTAssertEqual(compact.cases, 20)
        XCTAssertLessThan(
            compact.lmdbBytes, bank.lmdbUsedBytes / 2, "20 of 60 memories live: the removed ones' pages are dropped")
        XCTAssertTrue(try SupportBank.open(at: dir + "/compact").verify().ok)

        let writer = Thread { [bank] in
            var rng = SeededGenerator(seed: 9)
            for n in 100..<160 { _ = try? bank.add([makeCase(n, dimension: 16, rng: &rng, shape: shape)]) }
        }
        writer.start()
        let report = try bank.snapshot(to: dir + "/copy")
        while writer.isExecuting || !writer.isFinished { Thread.sleep(forTimeInterval: 0.01) }
        let copy = try SupportBank.open(at: dir + "/copy")
        let verify = copy.verify()
        XCTAssertTrue(verify.ok, "\(verify.problems)")
        XCTAssertEqual(verify.tombstones, 0, "the copy's HNSW index was rebuilt without the removed ids")
        let ids = try copy.allRecords().map(\.id)
        XCTAssertEqual(ids.count, report.cases)
        XCTAssertEqual(Array(ids.prefix(20)), Array(41...60))
        XCTAssertEqual(Array(ids.dropFirst(20)), Array(61..<(61 + UInt64(ids.count - 20))), "a prefix of the adds")
        XCTAssertEqual(report.journalSeq, 60 + 40 + UInt64(ids.count - 20))

        // Refusals leave the target as it was.
        let occupied = dir + "/occupied"
        try FileManager.default.createDirectory(atPath: occupied, withIntermediateDirectories: true)
        XCTAssertTrue(FileManager.default.createFile(atPath: occupied + "/keep.txt", contents: Data("mine".utf8)))
        XCTAssertThrowsError(try bank.snapshot(to: occupied)) { error in
            XCTAssertTrue("\(error)".contains("not empty"), "\(error)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: occupied), ["keep.txt"])
        XCTAssertEqual(
            try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains(".creating-") }, [])
    }
}

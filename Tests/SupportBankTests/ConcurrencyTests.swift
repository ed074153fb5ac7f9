import Foundation
import RAGSegTestSupport
import XCTest
@testable import SupportBank

/// A `ragseg` child process whose stdout is collected as it arrives (so a test can kill it at a chosen point).
final class RagsegChild {
    let process = Process()
    private let reader: FileHandle
    private(set) var output = ""

    init(_ arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: try ragsegExecutable())
        process.arguments = arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        reader = out.fileHandleForReading
        try process.run()
    }

    /// Reads stdout until it holds `lines` lines or the child closes it.
    func waitForLines(_ lines: Int) {
        while output.split(separator: "\n").count < lines {
            let chunk = reader.availableData
            if chunk.isEmpty { return }
            output += String(decoding: chunk, as: UTF8.self)
        }
    }

    /// SIGKILLs the child if it is still running; returns whether it was.
    @discardableResult
    func kill() -> Bool {
        guard process.isRunning else { return false }
        return Foundation.kill(process.processIdentifier, SIGKILL) == 0
    }

    /// Collects the rest of stdout and waits for the exit; returns the exit status (SIGKILL: 9, reason uncaught
    /// signal).
    @discardableResult
    func finish() -> Int32 {
        output += String(decoding: reader.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Ids of the stdout lines `KIND\tID...` (what the child reported committed).
    func ids(_ kind: String) -> [UInt64] {
        output.split(separator: "\n").compactMap { line in
            let f = line.split(separator: "\t")
            return f.count >= 2 && f[0] == kind ? UInt64(f[1]) : nil
        }
    }
}

/// A second image/mask folder pair whose content differs from `writeDataset`'s (so both can go into one bank).
func writeOtherDataset(_ dir: String, count: Int, salt: Int, size: Int = 32) throws -> (String, String) {
    let images = (dir as NSString).appendingPathComponent("images")
    let masks = (dir as NSString).appendingPathComponent("masks")
    try FileManager.default.createDirectory(atPath: images, withIntermediateDirectories: true)
    try FileManager.default.createDirectory(atPath: masks, withIntermediateDirectories: true)
    for i in 0..<count {
        let name = String(format: "other%03d.png", i)
        try writeGray((images as NSString).appendingPathComponent(name), size, size) { x, y in
            UInt8((x * 7 + y * 13 + i * 29 + salt * 101) % 256)
        }
        try writeGray((masks as NSString).appendingPathComponent(name), size, size) { x, y in
            abs(x - size / 2) < 5 && abs(y - (i + salt) % size) < 3 ? 255 : 0
        }
    }
    return (images, masks)
}

/// Crash safety of removals and several processes on one bank, through the `ragseg` binary.
final class ConcurrencyTests: XCTestCase {
    let createArguments = ["--stand-in", "--dinov2-variant", "vits14", "--memory-shape", "8,16,16,16"]

    /// The ids an index file holds and the journal position it claims, read without opening the bank.
    func indexFileContents(_ bank: String) throws -> (seq: UInt64, ids: [Int64]) {
        let (index, user) = try FaissIndex.read(
            from: (bank as NSString).appendingPathComponent(SupportBank.indexFileName))
        struct Header: Decodable { var seq: UInt64 }
        return (try JSONDecoder().decode(Header.self, from: Data(user)).seq, try index.allIDs())
    }

    /// The live ids after replaying the journal up to `seq` (what an index at that position must hold).
    func liveIDs(_ bank: SupportBank, upTo seq: UInt64) throws -> Set<UInt64> {
        try bank.read { txn in
            var live = Set<UInt64>()
            try txn.forEach(bank.journal) { key, value in
                guard Codec.id(fromKey: key) <= seq else { return false }
                let id = Codec.id(fromKey: UnsafeRawBufferPointer(rebasing: value[1...]))
                if value[0] == Codec.journalAdd { live.insert(id) } else { live.remove(id) }
                return true
            }
            return live
        }
    }

    /// SIGKILL `ragseg index remove` children at random points (early, anywhere in the run, or just
    /// after they report the commit, i.e. while they checkpoint the index file): each removal is all or
    /// nothing, a reported removal is gone from LMDB and from search results, every other case is
    /// still present and found, `verify` passes after each kill, and the next remove/add completes.
    func testKilledRemovesLeaveTheBankCoherent() throws {
        let started = Date()
        let dir = temporaryDirectory()
        let count = 48
        let (images, masks) = try writeDataset(dir, count: count)
        let bank = dir + "/bank"
        XCTAssertEqual(try runRagseg(["index", "create", bank] + createArguments).status, 0)
        XCTAssertEqual(
            try runRagseg([
                "index", "add", bank, "--images", images, "--masks", masks, "--stand-in", "--batch", "16", "--quiet",
            ]).status, 0)
        // Ids are never reused, so an id's embedding never changes: read them all once.
        var vectors = [UInt64: [Float]]()
        var live = Set<UInt64>()
        func learn(_ ids: [UInt64]) throws {
            let b = try SupportBank.open(at: bank, readOnly: true)
            for id in ids { vectors[id] = try XCTUnwrap(try b.embedding(id)) }
            live.formUnion(ids)
        }
        try learn(Array(1...UInt64(count)))
        var removed = Set<UInt64>()
        var rng = SeededGenerator(seed: 77)
        var killedBeforeCommit = 0, killedAfterCommit = 0, completed = 0
        let iterations = 24
        for iteration in 0..<iterations {
            if live.count < 10 {
                // Replenish: removed content goes back in under new ids (the add after kills completes).
                let r = try runRagseg([
                    "index", "add", bank, "--images", images, "--masks", masks, "--stand-in", "--quiet",
                ])
                XCTAssertEqual(r.status, 0, r.stderr)
                let added = r.stdout.split(separator: "\n").compactMap { line -> UInt64? in
                    let f = line.split(separator: "\t")
                    return f.count == 3 && f[0] == "added" ? UInt64(f[1]) : nil
                }
                XCTAssertFalse(added.isEmpty)
                try learn(added)
            }
            let victims = Array(live.sorted().shuffled(using: &rng).prefix(Int.random(in: 2...4, using: &rng))).sorted()
            let child = try RagsegChild(["index", "remove", bank] + victims.map(String.init))
            switch iteration % 3 {
            case 0:
                // Early: start-up, opening the bank, the write transaction.
                Thread.sleep(forTimeInterval: Double.random(in: 0...0.008, using: &rng))
            case 1:
                // Anywhere in the run (a whole removal takes ~20 ms here: start-up, open, commit, checkpoint).
                Thread.sleep(forTimeInterval: Double.random(in: 0...0.03, using: &rng))
            default:
                // Just after the commit is reported: the child is writing index.faiss.
                child.waitForLines(victims.count)
                Thread.sleep(forTimeInterval: Double.random(in: 0...0.002, using: &rng))
            }
            let killed = child.kill()
            child.finish()
            let reported = child.ids("removed")

            let verify = try runRagseg(["index", "verify", bank])
            XCTAssertEqual(verify.status, 0, "iteration \(iteration): \(verify.stdout)")
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: bank).filter { $0.contains(".tmp.") }
            XCTAssertEqual(
                leftovers, [], "iteration \(iteration): a dead writer's temporary index file is cleaned up on open")

            let b = try SupportBank.open(at: bank, readOnly: true)
            let gone = try victims.filter { try b.record($0) == nil }
            XCTAssertTrue(
                gone.isEmpty || gone == victims,
                "iteration \(iteration): removal is all or nothing, \(gone) of \(victims) gone")
            if !reported.isEmpty {
                XCTAssertEqual(reported, victims, "iteration \(iteration): reported removals are committed")
            }
            if !killed {
                completed += 1
                XCTAssertEqual(reported, victims, "iteration \(iteration): an uninterrupted remove reports every id")
            } else if gone.isEmpty {
                killedBeforeCommit += 1
            } else {
                killedAfterCommit += 1
            }
            if gone == victims {
                live.subtract(victims)
                removed.formUnion(victims)
            }
            XCTAssertEqual(try b.statistics().cases, live.count, "iteration \(iteration)")
            for id in removed {
                XCTAssertNil(try b.record(id), "iteration \(iteration): removed case \(id)")
                XCTAssertNil(try b.embedding(id))
                XCTAssertNil(try b.memory(id, label: 1))
            }
            for id in victims {
                let hits = try b.search(vectors[id]!, k: 10).map(\.id)
                XCTAssertTrue(
                    removed.isDisjoint(with: hits), "iteration \(iteration): removed cases never returned, got \(hits)")
            }
            for id in live {
                XCTAssertEqual(try b.embedding(id), vectors[id], "iteration \(iteration): case \(id) intact")
                let hits = try b.search(vectors[id]!, k: 3)
                XCTAssertTrue(
                    hits.contains { $0.id == id && abs($0.score - 1) < 1e-4 },
                    "iteration \(iteration): case \(id) found")
            }
        }
        // The next remove and add complete normally.
        let victims = Array(live.sorted().prefix(2))
        let r = try runRagseg(["index", "remove", bank] + victims.map(String.init))
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, victims.map { "removed\t\($0)\n" }.joined())
        XCTAssertEqual(
            try runRagseg(["index", "add", bank, "--images", images, "--masks", masks, "--stand-in", "--quiet"]).status,
            0)
        XCTAssertEqual(try runRagseg(["index", "verify", bank]).status, 0)
        XCTAssertEqual(try SupportBank.open(at: bank, readOnly: true).statistics().cases, count)
        print(
            """
            remove crash test: \(killedBeforeCommit) killed before the commit, \(killedAfterCommit) after it, \
            \(completed) completed
            """
        )
        XCTAssertGreaterThan(killedBeforeCommit, 0, "some kills landed before the commit")
        XCTAssertGreaterThan(killedAfterCommit, 0, "some kills landed after the commit")
        XCTAssertLessThan(Date().timeIntervalSince(started), 60)
    }

    /// Two processes add different cases to one bank at the same time (LMDB's writer lock serializes
    /// their transactions); readers opened meanwhile see consistent snapshots; afterwards every case of
    /// both is present and found, `verify` passes and the index file holds exactly the cases of the
    /// journal position it claims.
    func testConcurrentWritersAndReadersInOtherProcesses() throws {
        let dir = temporaryDirectory()
        let count = 30
        let (imagesA, masksA) = try writeDataset(dir + "/a", count: count)
        let (imagesB, masksB) = try writeOtherDataset(dir + "/b", count: count, salt: 1)
        let bank = dir + "/bank"
        XCTAssertEqual(try runRagseg(["index", "create", bank] + createArguments).status, 0)
        let a = try RagsegChild([
            "index", "add", bank, "--images", imagesA, "--masks", masksA, "--stand-in", "--batch", "1", "--quiet",
        ])
        let b = try RagsegChild([
            "index", "add", bank, "--images", imagesB, "--masks", masksB, "--stand-in", "--batch", "2", "--quiet",
        ])
        // Meanwhile: readers opened during the adds see one consistent snapshot each.
        var snapshots = 0
        var sizesSeen = Set<Int>()
        while a.process.isRunning || b.process.isRunning {
            let reader = try SupportBank.open(at: bank, readOnly: true)
            let (cases, ids) = try reader.read { txn -> (Int, [UInt64]) in
                let cases = try txn.count(reader.cases)
                XCTAssertEqual(try txn.count(reader.embeddings), cases)
                XCTAssertEqual(try txn.count(reader.memories), cases)
                XCTAssertEqual(try txn.count(reader.hashes), cases)
                XCTAssertEqual(
                    Codec.u64(try txn.get(reader.meta, key: Array("seq".utf8))), UInt64(cases),
                    "one journal entry per add")
                XCTAssertEqual(try txn.count(reader.journal), cases)
                var ids = [UInt64]()
                try txn.forEach(reader.cases) { key, _ in
                    ids.append(Codec.id(fromKey: key)); return true
                }
                return (cases, ids)
            }
            XCTAssertEqual(ids, (0..<cases).map { UInt64($0) + 1 }, "ids 1...n, no gaps")
            let report = reader.verify()
            XCTAssertTrue(report.ok, "verify during concurrent adds: \(report.problems)")
            // Every case of the reader's snapshot is found by its own embedding.
            for id in ids.suffix(3) {
                let v = try XCTUnwrap(try reader.embedding(id))
                XCTAssertTrue(
                    try reader.search(v, k: 3).contains { $0.id == id && abs($0.score - 1) < 1e-4 }, "case \(id)")
            }
            snapshots += 1
            sizesSeen.insert(cases)
        }
        XCTAssertEqual(a.finish(), 0)
        XCTAssertEqual(b.finish(), 0)
        let idsA = a.ids("added"), idsB = b.ids("added")
        XCTAssertEqual(idsA.count, count)
        XCTAssertEqual(idsB.count, count)
        XCTAssertEqual(Set(idsA + idsB), Set(1...UInt64(2 * count)), "every case of both writers, each id once")
        // The writers really overlapped: their ids interleave.
        XCTAssertLessThan(idsA.min()!, idsB.max()!)
        XCTAssertLessThan(idsB.min()!, idsA.max()!)
        XCTAssertGreaterThan(sizesSeen.count, 2, "readers saw the bank grow (\(snapshots) snapshots)")

        XCTAssertEqual(try runRagseg(["index", "verify", bank]).status, 0)
        do {
            // The index file (written by whichever writer checkpointed last) holds exactly its position's cases.
            let opened = try SupportBank.open(at: bank, readOnly: true)
            let file = try indexFileContents(bank)
            XCTAssertEqual(file.ids.count, Set(file.ids).count, "no id twice")
            XCTAssertEqual(Set(file.ids.map { UInt64($0) }), try liveIDs(opened, upTo: file.seq))
            for id in UInt64(1)...UInt64(2 * count) {
                let v = try XCTUnwrap(try opened.embedding(id))
                XCTAssertTrue(
                    try opened.search(v, k: 3).contains { $0.id == id && abs($0.score - 1) < 1e-4 }, "case \(id)")
            }
        }

        // A process that holds its in-memory index while another process adds and removes, then writes
        // itself: it catches up before its own write, so its checkpoint loses nothing.
        var rng = SeededGenerator(seed: 5)
        let holder = try SupportBank.open(at: bank)
        let (imagesC, masksC) = try writeOtherDataset(dir + "/c", count: 10, salt: 2)
        XCTAssertEqual(
            try runRagseg(["index", "add", bank, "--images", imagesC, "--masks", masksC, "--stand-in", "--quiet"])
                .status, 0)
        XCTAssertEqual(try runRagseg(["index", "remove", bank, "1", "40"]).status, 0)
        let mine = (0..<3).map {
            makeCase(
                1000 + $0, dimension: 384, rng: &rng,
                shape: MemoryShape(channels: 8, height: 16, width: 16, pointerDimension: 16))
        }
        XCTAssertEqual(try holder.add(mine).map(\.id), [71, 72, 73])
        try holder.checkpoint(force: true)
        let file = try indexFileContents(bank)
        XCTAssertEqual(file.seq, 75, "60 + 10 adds + 2 removes + 3 adds")
        var expected = Set(UInt64(1)...UInt64(73))
        expected.subtract([1, 40])
        XCTAssertEqual(file.ids.count, expected.count)
        XCTAssertEqual(Set(file.ids.map { UInt64($0) }), expected)
        XCTAssertEqual(try liveIDs(holder, upTo: file.seq), expected)
        XCTAssertTrue(holder.verify().ok, "\(holder.verify().problems)")
    }
}

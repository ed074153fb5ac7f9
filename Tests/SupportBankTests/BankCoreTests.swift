import SAM2
import XCTest
@_spi(Benchmark) @testable import SupportBank

/// The bank on raw arrays, with the real LMDB and FAISS (no mocks).
final class BankCoreTests: XCTestCase {
    let dimension = 32

    /// Builds a bank of n random cases; returns it and the raw embeddings by id.
    func build(_ n: Int, kind: IndexKind = .flat, seed: UInt64 = 1, path: String? = nil) throws
        -> (SupportBank, [UInt64: [Float]], String)
    {
        let dir = path ?? temporaryDirectory()
        let bank = try SupportBank.create(at: dir, metadata: makeMetadata(dimension: dimension, kind: kind))
        var rng = SeededGenerator(seed: seed)
        var vectors = [UInt64: [Float]]()
        var batch = [PreparedCase]()
        for i in 0..<n {
            batch.append(makeCase(i, dimension: dimension, rng: &rng))
            if batch.count == 100 || i == n - 1 {
                let outcomes = try bank.add(batch)
                for (c, o) in zip(batch, outcomes) {
                    guard case .added(let id) = o else { XCTFail("case \(c.image) not added: \(o)"); continue }
                    vectors[id] = c.embedding
                }
                batch.removeAll()
            }
        }
        return (bank, vectors, dir)
    }

    func assertSearchMatchesBruteForce(
        _ bank: SupportBank, _ vectors: [UInt64: [Float]], k: Int = 10,
        queries: Int = 20, minimumRecall: Double = 1, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        var rng = SeededGenerator(seed: 99)
        var found = 0
        for _ in 0..<queries {
            let q = (0..<dimension).map { _ in rng.gaussian() }
            let hits = try bank.search(q, k: k)
            let truth = bruteForce(q, vectors, k: k)
            XCTAssertEqual(hits.count, min(k, vectors.count), file: file, line: line)
            if minimumRecall == 1 {
                // Exact index: same ids in the same order, scores equal to the brute-force dot products.
                XCTAssertEqual(hits.map(\.id), truth.map(\.0), file: file, line: line)
                for (h, t) in zip(hits, truth) { XCTAssertEqual(h.score, t.1, accuracy: 1e-5, file: file, line: line) }
            }
            found += Set(hits.map(\.id)).intersection(truth.map(\.0)).count
        }
        let recall = Double(found) / Double(queries * min(k, vectors.count))
        XCTAssertGreaterThanOrEqual(recall, minimumRecall, "recall vs brute force", file: file, line: line)
    }

    func testBuildAddSearchReturnsTrueNearestNeighbours() throws {
        let (bank, vectors, _) = try build(500)
        try assertSearchMatchesBruteForce(bank, vectors)
        // A stored case's own embedding finds itself first with cosine 1.
        let (id, v) = vectors.first!
        let hit = try bank.search(v, k: 1)[0]
        XCTAssertEqual(hit.id, id)
        XCTAssertEqual(hit.score, 1, accuracy: 1e-5)
        XCTAssertEqual(hit.record.image, "img\(id - 1).png")
        XCTAssertTrue(bank.verify().ok, "\(bank.verify().problems)")
    }

    func testStoredRecordsRoundTrip() throws {
        let dir = temporaryDirectory()
        let bank = try SupportBank.create(at: dir, metadata: makeMetadata(dimension: dimension))
        var rng = SeededGenerator(seed: 3)
        let c = makeCase(5, dimension: dimension, rng: &rng)
        let id = try bank.add([c])[0].id
        XCTAssertEqual(try bank.memory(id, label: 1), c.memories[0].memory)
        XCTAssertNil(try bank.memory(id, label: 2))
        let stored = try XCTUnwrap(try bank.embedding(id))
        for (a, b) in zip(stored, normalized(c.embedding)) { XCTAssertEqual(a, b, accuracy: 1e-6) }
        let record = try XCTUnwrap(try bank.record(id))
        XCTAssertEqual(record.mask, "mask5.png")
        XCTAssertEqual(record.contentHash, hexString(c.contentHash))
        XCTAssertEqual(record.labels, [1])
    }

    func testReAddingTheSameCaseIsANoOp() throws {
        let dir = temporaryDirectory()
        let bank = try SupportBank.create(at: dir, metadata: makeMetadata(dimension: dimension))
        var rng = SeededGenerator(seed: 4)
        let cases = (0..<5).map { makeCase($0, dimension: dimension, rng: &rng) }
        let first = try bank.add(cases)
        let before = try bank.statistics()
        let second = try bank.add(cases)
        XCTAssertEqual(second, first.map { .duplicate(of: $0.id) })
        let after = try bank.statistics()
        XCTAssertEqual(after.cases, 5)
        XCTAssertEqual(after.journalSeq, before.journalSeq)
        XCTAssertEqual(after.indexVectors, 5)
        // A duplicate inside one batch is also caught.
        let c = makeCase(100, dimension: dimension, rng: &rng)
        let outcomes = try bank.add([c, c])
        XCTAssertEqual(outcomes, [.added(6), .duplicate(of: 6)])
    }

    func testRemove() throws {
        let (bank, vectors, _) = try build(200)
        let removed: [UInt64] = [3, 50, 51, 199]
        try bank.remove(removed)
        var remaining = vectors
        for id in removed { remaining[id] = nil }
        XCTAssertEqual(try bank.statistics().cases, 196)
        XCTAssertNil(try bank.record(3))
        XCTAssertNil(try bank.memory(3, label: 1))
        XCTAssertNil(try bank.search(vectors[50]!, k: 3).first { removed.contains($0.id) })
        try assertSearchMatchesBruteForce(bank, remaining)
        // An unknown id removes nothing at all.
        XCTAssertThrowsError(try bank.remove([10, 3])) { XCTAssertTrue("\($0)".contains("no case with id 3")) }
        XCTAssertNotNil(try bank.record(10))
        // Removed content can be added again (gets a new id).
        var rng = SeededGenerator(seed: 1)
        var cases = [PreparedCase]()
        for i in 0..<4 { cases.append(makeCase(i, dimension: dimension, rng: &rng)) }
        XCTAssertEqual(try bank.add([cases[2]]), [.added(201)])
        XCTAssertTrue(bank.verify().ok, "\(bank.verify().problems)")
    }

    func testReopenAfterClose() throws {
        var bank: SupportBank!
        var vectors: [UInt64: [Float]]
        let dir: String
        (bank, vectors, dir) = try build(300)
        try bank.remove([7])
        vectors[7] = nil
        let before = try bank.search(vectors[8]!, k: 5).map(\.id)
        bank = nil  // close first: LMDB must not be opened twice by one process
        bank = try SupportBank.open(at: dir)
        XCTAssertNil(bank.indexRepair, "index file was current: \(bank.indexRepair ?? "")")
        XCTAssertEqual(try bank.search(vectors[8]!, k: 5).map(\.id), before)
        try assertSearchMatchesBruteForce(bank, vectors)
        XCTAssertEqual(try bank.statistics().cases, 299)
        var rng = SeededGenerator(seed: 77)
        XCTAssertEqual(try bank.add([makeCase(1000, dimension: dimension, rng: &rng)]), [.added(301)])
        XCTAssertTrue(bank.verify().ok, "\(bank.verify().problems)")
    }

    func testMultiLabelCases() throws {
        let dir = temporaryDirectory()
        let bank = try SupportBank.create(
            at: dir, metadata: makeMetadata(dimension: dimension, labels: ["liver", "kidney", "spleen"]))
        var rng = SeededGenerator(seed: 5)
        let c = makeCase(1, dimension: dimension, rng: &rng, labels: [1, 3])
        let id = try bank.add([c])[0].id
        XCTAssertEqual(try bank.memory(id, label: 1), c.memories[0].memory)
        XCTAssertEqual(try bank.memory(id, label: 3), c.memories[1].memory)
        XCTAssertNotEqual(c.memories[0].memory, c.memories[1].memory)
        XCTAssertNil(try bank.memory(id, label: 2))
        XCTAssertEqual(try bank.record(id)?.labels, [1, 3])
        XCTAssertEqual(try bank.statistics().memories, 2)
        let bad = makeCase(2, dimension: dimension, rng: &rng, labels: [4])
        XCTAssertThrowsError(try bank.add([bad])) { XCTAssertTrue("\($0)".contains("label 4"), "\($0)") }
        try bank.remove([id])
        XCTAssertEqual(try bank.statistics().memories, 0)
        XCTAssertTrue(bank.verify().ok, "\(bank.verify().problems)")
    }

    /// Label 0 is a case's empty-mask memory: the support for every label absent from its mask.
    func testEmptyMaskMemoryStandsForTheAbsentLabels() throws {
        let bank = try SupportBank.create(
            at: temporaryDirectory(),
            metadata: makeMetadata(dimension: dimension, labels: ["liver", "kidney", "spleen"]))
        var rng = SeededGenerator(seed: 15)
        let partial = makeCase(1, dimension: dimension, rng: &rng, labels: [0, 2])
        let empty = makeCase(2, dimension: dimension, rng: &rng, labels: [0])
        let full = makeCase(3, dimension: dimension, rng: &rng, labels: [1, 2, 3])
        let ids = try bank.add([partial, empty, full]).map(\.id)
        let records = try ids.map { try XCTUnwrap(try bank.record($0)) }
        XCTAssertEqual(records.map(\.labels), [[2], [], [1, 2, 3]])
        XCTAssertEqual(records.map(\.emptyMaskMemory), [true, true, nil])
        XCTAssertEqual(try bank.statistics().memories, 6)
        // The partial case: its own memory for label 2, the empty-mask memory for 1 and 3.
        XCTAssertEqual(try bank.supportMemory(for: records[0], label: 2), partial.memories[1].memory)
        XCTAssertEqual(try bank.supportMemory(for: records[0], label: 1), partial.memories[0].memory)
        XCTAssertEqual(try bank.supportMemory(for: records[0], label: 3), partial.memories[0].memory)
        XCTAssertNotEqual(partial.memories[0].memory, partial.memories[1].memory)
        for label in 1...3 {
            XCTAssertEqual(try bank.supportMemory(for: records[1], label: label), empty.memories[0].memory)
            XCTAssertEqual(try bank.supportMemory(for: records[2], label: label), full.memories[label - 1].memory)
        }
        XCTAssertTrue(bank.verify().ok, "\(bank.verify().problems)")

        // A mask with every label has no absent label for an empty-mask memory to stand for.
        let pointless = makeCase(4, dimension: dimension, rng: &rng, labels: [0, 1, 2, 3])
        XCTAssertThrowsError(try bank.add([pointless])) { XCTAssertTrue("\($0)".contains("every label"), "\($0)") }
        var twice = makeCase(5, dimension: dimension, rng: &rng, labels: [0])
        twice.memories.append(twice.memories[0])
        XCTAssertThrowsError(try bank.add([twice])) { XCTAssertTrue("\($0)".contains("ascending"), "\($0)") }

        // verify misses nothing: a missing empty-mask memory is named.
        try bank.env.write { txn in XCTAssertTrue(try txn.delete(bank.memories, key: Codec.memoryKey(ids[0], label: 0)))
        }
        XCTAssertTrue(
            bank.verify().problems.contains("case \(ids[0]): empty-mask memory missing"), "\(bank.verify().problems)")
        // Removal takes every memory of a case, the empty-mask one included.
        try bank.remove([ids[1], ids[2]])
        XCTAssertEqual(try bank.statistics().memories, 1)
    }

    /// A format-1 bank (before empty-mask memories) opens as it is and is marked format 2 in the transaction
    /// that first writes such a memory; a newer format is refused by name.
    func testFormatOneBankIsUpgradedByItsFirstEmptyMaskMemory() throws {
        func storedVersion(_ bank: SupportBank) throws -> Int {
            let bytes = try XCTUnwrap(try bank.env.read { try $0.get(bank.meta, key: Array("bank".utf8)) })
            return try JSONDecoder().decode(BankMetadata.self, from: Data(bytes)).formatVersion
        }
        var metadata = makeMetadata(dimension: dimension, labels: ["a", "b"])
        metadata.formatVersion = 1
        let bank = try SupportBank.create(at: temporaryDirectory(), metadata: metadata)
        var rng = SeededGenerator(seed: 16)
        try bank.add([makeCase(1, dimension: dimension, rng: &rng, labels: [1, 2])])
        XCTAssertEqual(try storedVersion(bank), 1, "nothing format-2 written yet")
        try bank.add([makeCase(2, dimension: dimension, rng: &rng, labels: [0, 1])])
        XCTAssertEqual(try storedVersion(bank), 2)
        XCTAssertTrue(bank.verify().ok, "\(bank.verify().problems)")

        metadata.formatVersion = 4
        // (create writes the metadata, then opens the bank as `open` does)
        XCTAssertThrowsError(try SupportBank.create(at: temporaryDirectory(), metadata: metadata)) {
            XCTAssertTrue("\($0)".contains("format version 4 is not supported (this build reads 1...3)"), "\($0)")
        }
    }

    func testInvalidCasesAreRejectedBeforeWriting() throws {
        let bank = try SupportBank.create(at: temporaryDirectory(), metadata: makeMetadata(dimension: dimension))
        var rng = SeededGenerator(seed: 6)
        let good = makeCase(1, dimension: dimension, rng: &rng)
        var wrongDimension = makeCase(2, dimension: dimension + 1, rng: &rng)
        wrongDimension.image = "wrong-dim.png"
        XCTAssertThrowsError(try bank.add([good, wrongDimension])) { XCTAssertTrue("\($0)".contains("wrong-dim.png")) }
        var wrongShape = makeCase(3, dimension: dimension, rng: &rng)
        let right = wrongShape.memories[0].memory
        // As many values as the bank's 4x4x4 memories, in another layout.
        wrongShape.memories[0].memory = SupportMemory(
            channels: 4, height: 2, width: 8, memoryBits: right.memoryBits,
            pointer: right.pointer, isEmpty: false)
        XCTAssertThrowsError(try bank.add([wrongShape])) {
            XCTAssertTrue("\($0)".contains("memory of label 1 is 4x2x8"), "\($0)")
        }
        wrongShape.memories[0].memory = SupportMemory(
            channels: 4, height: 4, width: 4, memoryBits: right.memoryBits,
            pointer: Array(right.pointer.dropLast()), isEmpty: false)
        XCTAssertThrowsError(try bank.add([wrongShape])) { XCTAssertTrue("\($0)".contains("+ 7 fp32"), "\($0)") }
        var zero = makeCase(4, dimension: dimension, rng: &rng)
        zero.embedding = [Float](repeating: 0, count: dimension)
        XCTAssertThrowsError(try bank.add([zero]))
        XCTAssertEqual(try bank.statistics().cases, 0, "nothing of a rejected batch is written")
    }

    func testModelIdentityIsChecked() throws {
        let bank = try SupportBank.create(at: temporaryDirectory(), metadata: makeMetadata(dimension: dimension))
        XCTAssertNoThrow(try bank.requireModels(retrieval: testRetrieval, support: testSupport))
        var other = testSupport
        other.sha256 = String(repeating: "c", count: 64)
        XCTAssertThrowsError(try bank.requireModels(retrieval: testRetrieval, support: other)) {
            XCTAssertTrue("\($0)".contains("SAM 2"), "\($0)")
        }
    }

    func testCreateRefusesNonEmptyDirectoryAndOpenRefusesNonBank() throws {
        let dir = temporaryDirectory()
        _ = try SupportBank.create(at: dir, metadata: makeMetadata(dimension: dimension))
        XCTAssertThrowsError(try SupportBank.create(at: dir, metadata: makeMetadata(dimension: dimension)))
        XCTAssertThrowsError(try SupportBank.open(at: temporaryDirectory())) {
            XCTAssertTrue("\($0)".contains("no bank"))
        }
    }

    // MARK: - Index kinds

    func testHNSWRemovalUsesTombstonesThenRebuilds() throws {
        let (bank, vectors, dir) = try build(400, kind: .hnsw)
        try assertSearchMatchesBruteForce(bank, vectors, minimumRecall: 0.95)
        var remaining = vectors
        let removed = Array(UInt64(1)...UInt64(30))
        try bank.remove(removed)
        for id in removed { remaining[id] = nil }
        var stats = try bank.statistics()
        XCTAssertEqual(stats.indexKind, .hnsw)
        XCTAssertEqual(stats.tombstones, 30)
        for id in removed.prefix(5) {
            XCTAssertFalse(
                try bank.search(vectors[id]!, k: 10).contains { removed.contains($0.id) }, "tombstones never returned")
        }
        try assertSearchMatchesBruteForce(bank, remaining, minimumRecall: 0.95)
        let report = bank.verify()
        XCTAssertTrue(report.ok, "\(report.problems)")
        XCTAssertEqual(report.tombstones, 30)
        // Past 10% tombstones the next checkpoint rebuilds the graph from LMDB.
        try bank.remove(Array(UInt64(31)...UInt64(60)))
        try bank.checkpoint(force: true)
        stats = try bank.statistics()
        XCTAssertEqual(stats.tombstones, 0)
        XCTAssertEqual(stats.indexVectors, 340)
        let reopened = try SupportBank.open(at: dir)
        XCTAssertEqual(try reopened.statistics().indexVectors, 340)
    }

    func testIVFIndexRemovesAndFindsNeighbours() throws {
        let (bank, vectors, _) = try build(2000, kind: .ivf)
        try bank.checkpoint(force: true)  // >= 1024 vectors: trained IVF replaces the initial Flat
        XCTAssertEqual(try bank.statistics().indexKind, .ivf)
        // Default nprobe (16 cells) is approximate: random Gaussian data has no clusters, so recall
        // is modest; probing every cell must give exactly the brute-force answer.
        try assertSearchMatchesBruteForce(bank, vectors, minimumRecall: 0.5)
        try bank.setSearchParameter("nprobe", 10_000)
        try assertSearchMatchesBruteForce(bank, vectors)
        XCTAssertThrowsError(try bank.setSearchParameter("efSearch", 10))
        try bank.remove([5, 6])
        XCTAssertEqual(try bank.statistics().indexVectors, 1998)
        XCTAssertFalse(try bank.search(vectors[5]!, k: 5).contains { $0.id == 5 })
        XCTAssertTrue(bank.verify().ok, "\(bank.verify().problems)")
    }

    func testAutoSwitchesToIVFPastTheThreshold() {
        XCTAssertEqual(IndexKind.auto.resolved(count: 100, dimension: 768), .flat)
        XCTAssertEqual(IndexKind.auto.resolved(count: 5461, dimension: 768), .flat)
        XCTAssertEqual(IndexKind.auto.resolved(count: 5462, dimension: 768), .ivf)
        XCTAssertEqual(IndexKind.auto.resolved(count: 5462, dimension: 384), .flat)
        XCTAssertEqual(IndexKind.auto.resolved(count: 1024, dimension: 16384), .flat, "IVF needs 1024 vectors to train")
        XCTAssertEqual(IndexKind.ivf.resolved(count: 10, dimension: 768), .ivf)
    }

    /// An auto bank turns from Flat into IVF at the checkpoint after it outgrows the threshold.
    func testAutoBankSwitchesToIVFWhenItGrows() throws {
        let d = 4096  // threshold 1024 vectors (IVF's training minimum) at this width keeps the test small
        let dir = temporaryDirectory()
        var bank: SupportBank! = try SupportBank.create(at: dir, metadata: makeMetadata(dimension: d, kind: .auto))
        var rng = SeededGenerator(seed: 12)
        var vectors = [UInt64: [Float]]()
        for start in stride(from: 0, to: 1040, by: 104) {
            let cases = (start..<(start + 104)).map { makeCase($0, dimension: d, rng: &rng) }
            for (c, o) in zip(cases, try bank.add(cases)) { vectors[o.id] = c.embedding }
        }
        XCTAssertEqual(try bank.statistics().indexKind, .flat, "not restructured before a checkpoint")
        try bank.checkpoint(force: false)
        XCTAssertEqual(try bank.statistics().indexKind, .ivf)
        bank = nil
        bank = try SupportBank.open(at: dir)
        XCTAssertNil(bank.indexRepair)
        XCTAssertEqual(try bank.statistics().indexKind, .ivf)
        for id in [UInt64(1), 520, 1040] { XCTAssertEqual(try bank.search(vectors[id]!, k: 1).first?.id, id) }
        XCTAssertTrue(bank.verify().ok, "\(bank.verify().problems)")
    }

    // MARK: - The index file as a cache

    func testMissingOrCorruptIndexFileIsRepairedOnOpen() throws {
        var bank: SupportBank!
        let vectors: [UInt64: [Float]]
        let dir: String
        (bank, vectors, dir) = try build(150)
        let file = bank.indexFilePath
        bank = nil
        bank = try SupportBank.open(at: dir)
        XCTAssertNil(bank.indexRepair)

        bank = nil
        try FileManager.default.removeItem(atPath: file)
        bank = try SupportBank.open(at: dir)
        XCTAssertTrue(bank.indexRepair?.contains("missing") ?? false, bank.indexRepair ?? "no repair")
        try assertSearchMatchesBruteForce(bank, vectors)
        XCTAssertTrue(FileManager.default.fileExists(atPath: file), "repaired file written back")

        // Flip one byte in the middle of the FAISS payload.
        bank = nil
        var bytes = try Data(contentsOf: URL(fileURLWithPath: file))
        bytes[bytes.count / 2] ^= 0x5A
        try bytes.write(to: URL(fileURLWithPath: file))
        bank = try SupportBank.open(at: dir)
        XCTAssertTrue(bank.indexRepair?.contains("checksum") ?? false, bank.indexRepair ?? "no repair")
        try assertSearchMatchesBruteForce(bank, vectors)

        // Truncated, then garbage.
        bank = nil
        bytes = try Data(contentsOf: URL(fileURLWithPath: file))
        try bytes.prefix(bytes.count - 100).write(to: URL(fileURLWithPath: file))
        bank = try SupportBank.open(at: dir)
        XCTAssertNotNil(bank.indexRepair)
        bank = nil
        try Data(repeating: 7, count: 1000).write(to: URL(fileURLWithPath: file))
        bank = try SupportBank.open(at: dir)
        XCTAssertNotNil(bank.indexRepair)
        try assertSearchMatchesBruteForce(bank, vectors)
        XCTAssertTrue(bank.verify().ok, "\(bank.verify().problems)")
    }

    func testStaleIndexFileIsCaughtUpIncrementally() throws {
        var bank: SupportBank!
        var vectors: [UInt64: [Float]]
        let dir: String
        (bank, vectors, dir) = try build(100)
        let file = bank.indexFilePath
        let old = try Data(contentsOf: URL(fileURLWithPath: file))
        var rng = SeededGenerator(seed: 42)
        for i in 0..<20 {
            let c = makeCase(500 + i, dimension: dimension, rng: &rng)
            vectors[try bank.add([c])[0].id] = c.embedding
        }
        try bank.remove([1, 2])
        vectors[1] = nil
        vectors[2] = nil
        bank = nil
        try old.write(to: URL(fileURLWithPath: file))  // as if the process died before checkpointing
        bank = try SupportBank.open(at: dir)
        XCTAssertTrue(bank.indexRepair?.contains("22 journal entries stale") ?? false, bank.indexRepair ?? "no repair")
        try assertSearchMatchesBruteForce(bank, vectors)
        XCTAssertTrue(bank.verify().ok, "\(bank.verify().problems)")
    }

    func testIndexFileOfAnotherBankIsRejected() throws {
        let (a, _, _) = try build(20, seed: 1)
        var b: SupportBank!
        let vectorsB: [UInt64: [Float]]
        let dirB: String
        (b, vectorsB, dirB) = try build(30, seed: 2)
        b = nil
        try FileManager.default.removeItem(atPath: a.indexFilePath.replacingOccurrences(of: a.path, with: dirB))
        try FileManager.default.copyItem(
            atPath: a.indexFilePath, toPath: (dirB as NSString).appendingPathComponent(SupportBank.indexFileName))
        b = try SupportBank.open(at: dirB)
        XCTAssertTrue(b.indexRepair?.contains("another bank") ?? false, b.indexRepair ?? "no repair")
        try assertSearchMatchesBruteForce(b, vectorsB)
    }

    /// The benchmark-only bulk fill writes searchable cases with placeholder memories that verify flags.
    func testBenchmarkBulkFillIsSearchableButNotVerifiable() throws {
        let bank = try SupportBank.create(at: temporaryDirectory(), metadata: makeMetadata(dimension: dimension))
        var rng = SeededGenerator(seed: 31)
        let rows = (0..<300).map { _ in normalized((0..<dimension).map { _ in rng.gaussian() }) }
        try bank.benchmarkBulkFill(normalizedVectors: rows.flatMap { $0 })
        let stats = try bank.statistics()
        XCTAssertEqual([stats.cases, stats.memories, stats.indexVectors], [300, 300, 300])
        XCTAssertEqual(stats.journalSeq, 300)
        for row in [0, 17, 299] {
            let hit = try XCTUnwrap(try bank.search(rows[row], k: 1).first)
            XCTAssertEqual(hit.id, UInt64(row + 1))
            XCTAssertEqual(hit.score, 1, accuracy: 1e-5)
            XCTAssertEqual(try bank.embedding(hit.id), rows[row])
        }
        XCTAssertEqual(try bank.add([makeCase(1, dimension: dimension, rng: &rng)]), [.added(301)])
        let report = bank.verify()
        XCTAssertEqual(
            report.problems.filter { $0.contains("label 1") }.count, 100,
            "placeholders flagged (capped at 100): \(report.problems.prefix(3))")
    }

    // MARK: - LMDB behaviour

    func testMapFullIsAClearErrorAndLeavesTheBankIntact() throws {
        let dir = temporaryDirectory()
        let shape = MemoryShape.sam2  // 512 KiB per memory
        let metadata = makeMetadata(dimension: dimension, shape: shape)
        var bank: SupportBank? = try SupportBank.create(at: dir, metadata: metadata, mapSize: 4 << 20)
        var rng = SeededGenerator(seed: 8)
        var committed = 0
        var mapFull: Error?
        for i in 0..<20 {
            do {
                try bank!.add([makeCase(i, dimension: dimension, rng: &rng, shape: shape)])
                committed += 1
            } catch {
                mapFull = error
                break
            }
        }
        let error = try XCTUnwrap(mapFull, "a 4 MiB map cannot hold 20 cases of 512 KiB")
        XCTAssertTrue("\(error)".contains("map is full"), "\(error)")
        XCTAssertGreaterThan(committed, 0)
        XCTAssertEqual(try bank!.statistics().cases, committed)
        XCTAssertTrue(bank!.verify().ok, "\(bank!.verify().problems)")
        bank = nil
        let reopened = try SupportBank.open(at: dir)  // default (large) map: adds work again
        XCTAssertEqual(try reopened.statistics().cases, committed)
        XCTAssertTrue(reopened.verify().ok)
        try reopened.add([makeCase(100, dimension: dimension, rng: &rng, shape: shape)])
        XCTAssertEqual(try reopened.statistics().cases, committed + 1)
    }

    /// A reader's snapshot does not move while a writer commits.
    func testReadersSeeAConsistentSnapshot() throws {
        let (bank, _, _) = try build(10)
        var rng = SeededGenerator(seed: 9)
        try bank.read { txn in
            XCTAssertEqual(try txn.count(bank.cases), 10)
            try bank.add([makeCase(50, dimension: dimension, rng: &rng)])
            XCTAssertEqual(try txn.count(bank.cases), 10, "snapshot unchanged by the concurrent commit")
        }
        XCTAssertEqual(try bank.statistics().cases, 11)
    }

    func testVerifyDetectsDamage() throws {
        let (bank, _, _) = try build(10)
        XCTAssertTrue(bank.verify().ok)
        // Damage records behind the bank's back: one memory's payload, one embedding removed.
        try bank.env.write { txn in
            var value = try XCTUnwrap(try txn.get(bank.memories, key: Codec.memoryKey(4, label: 1)))
            value[value.count - 1] ^= 1
            try txn.put(bank.memories, key: Codec.memoryKey(4, label: 1), value: value)
            try txn.delete(bank.embeddings, key: Codec.key(6))
        }
        let report = bank.verify()
        XCTAssertFalse(report.ok)
        XCTAssertTrue(
            report.problems.contains { $0.contains("case 4 label 1") && $0.contains("checksum") }, "\(report.problems)")
        XCTAssertTrue(report.problems.contains { $0.contains("case 6: embedding missing") }, "\(report.problems)")
    }
}

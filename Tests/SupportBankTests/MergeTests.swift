import Foundation
import SAM2
import XCTest

@testable import SupportBank

/// `SupportBank.merge` in process: the merged bank holds exactly the cases of one bank built from the same cases
/// (compared by content hash), duplicates across inputs are skipped and counted, the inputs are left byte for
/// byte as they were, incompatible inputs and incomplete shard sets are refused naming the bank and the field.
final class MergeTests: XCTestCase {
    let dimension = 16

    /// Every file of a bank directory and its bytes.
    func snapshot(_ directory: String) throws -> [String: Data] {
        var out = [String: Data]()
        for name in try FileManager.default.contentsOfDirectory(atPath: directory) {
            out[name] = try Data(contentsOf: URL(fileURLWithPath: directory + "/" + name))
        }
        return out
    }

    /// A bank from `template`'s settings holding `cases` (seeds), labels as given per seed.
    func makeBank(_ path: String, template: BankMetadata, seeds: [Int], shard: ShardAssignment? = nil) throws {
        let bank = try SupportBank.create(at: path, metadata: SupportBank.metadata(fromTemplate: template))
        if let shard { try bank.recordShard(shard) }
        var rng = SeededGenerator(seed: 7)
        var batch = [PreparedCase]()
        for seed in seeds {
            var r = SeededGenerator(seed: UInt64(seed) &* 1000 &+ 1)
            // Seeds divisible by 3 have no object: an empty-mask memory only; others label 1 (and 2 every 4th).
            let labels = seed % 3 == 0 ? [0] : (seed % 4 == 0 ? [1, 2] : [0, 1])
            batch.append(makeCase(seed, dimension: dimension, rng: &r, labels: labels))
            _ = rng.next()
        }
        try bank.add(batch)
    }

    func testMergedBankEqualsOneBankOfTheSameCasesAndCountsDuplicates() throws {
        let dir = temporaryDirectory()
        let template = makeMetadata(dimension: dimension, kind: .auto, labels: ["liver", "spleen"])
        try makeBank(dir + "/a", template: template, seeds: Array(0..<10))
        try makeBank(dir + "/b", template: template, seeds: Array(10..<20) + [3, 4])  // 3, 4: also in a
        try makeBank(dir + "/c", template: template, seeds: [])
        try makeBank(dir + "/single", template: template, seeds: Array(0..<20))
        let before = try ["a", "b", "c"].map { try snapshot(dir + "/" + $0) }

        var calls = [(Int, Int)]()
        let report = try SupportBank.merge(into: dir + "/out", from: ["a", "b", "c"].map { dir + "/" + $0 }) {
            calls.append(($0, $1))
        }
        XCTAssertEqual(report.cases, 20)
        XCTAssertEqual(report.duplicates, 2)
        XCTAssertEqual(report.inputs.map(\.cases), [10, 12, 0])
        XCTAssertEqual(report.inputs.map(\.added), [10, 10, 0])
        XCTAssertEqual(report.inputs.map(\.duplicates), [0, 2, 0])
        XCTAssertEqual(calls.last.map { [$0.0, $0.1] }, [22, 22])
        // The inputs are untouched: same files, same bytes (no lock.mdb written by the merge either).
        XCTAssertEqual(try ["a", "b", "c"].map { try snapshot(dir + "/" + $0) }, before)

        let merged = try SupportBank.open(at: dir + "/out")
        let single = try SupportBank.open(at: dir + "/single")
        XCTAssertTrue(merged.verify().ok, "\(merged.verify().problems)")
        XCTAssertNotEqual(merged.metadata.uuid, single.metadata.uuid)
        XCTAssertEqual(merged.metadata.labels, ["liver", "spleen"])
        XCTAssertNil(merged.metadata.shard)
        let mergedRecords = try merged.allRecords(), singleRecords = try single.allRecords()
        // New ids 1...20, in the order of the inputs: a's cases first, then b's new ones.
        XCTAssertEqual(mergedRecords.map(\.id), Array(1...20))
        XCTAssertEqual(mergedRecords.map(\.image), (0..<20).map { "img\($0).png" })
        let byHash = Dictionary(uniqueKeysWithValues: singleRecords.map { ($0.contentHash, $0) })
        XCTAssertEqual(Set(byHash.keys), Set(mergedRecords.map(\.contentHash)))
        for record in mergedRecords {
            let other = byHash[record.contentHash]!
            XCTAssertEqual(
                [record.image, record.mask, "\(record.labels)", "\(record.emptyMaskMemory as Any)"],
                [other.image, other.mask, "\(other.labels)", "\(other.emptyMaskMemory as Any)"])
            XCTAssertEqual(try merged.embedding(record.id), try single.embedding(other.id))
            XCTAssertEqual(record.storedMemoryLabels, other.storedMemoryLabels)
            for label in record.storedMemoryLabels {
                let a = try XCTUnwrap(try merged.memory(record.id, label: label))
                let b = try XCTUnwrap(try single.memory(other.id, label: label))
                XCTAssertEqual(a.memoryBits, b.memoryBits)
                XCTAssertEqual(a.pointer, b.pointer)
                XCTAssertEqual(a.isEmpty, b.isEmpty)
            }
        }
        // The same neighbours, by content, with the same scores.
        var rng = SeededGenerator(seed: 99)
        for _ in 0..<10 {
            let query = (0..<dimension).map { _ in rng.gaussian() }
            let a = try merged.search(query, k: 5), b = try single.search(query, k: 5)
            XCTAssertEqual(a.map(\.record.contentHash), b.map(\.record.contentHash))
            XCTAssertEqual(a.map(\.score), b.map(\.score))
        }
        // The journal and nextID go on from the merge: add and remove work and the bank stays coherent.
        var r = SeededGenerator(seed: 5)
        XCTAssertEqual(try merged.add([makeCase(500, dimension: dimension, rng: &r)]), [.added(21)])
        try merged.remove([1])
        try merged.checkpoint(force: true)
        XCTAssertTrue(merged.verify().ok, "\(merged.verify().problems)")
        XCTAssertEqual(try merged.statistics().cases, 20)
    }

    func testIVFIsTrainedOnceOnTheMergedVectors() throws {
        let dir = temporaryDirectory()
        let template = makeMetadata(dimension: dimension, kind: .ivf, labels: ["liver", "spleen"])
        try makeBank(dir + "/a", template: template, seeds: Array(0..<700))
        try makeBank(dir + "/b", template: template, seeds: Array(700..<1400))
        let report = try SupportBank.merge(into: dir + "/out", from: [dir + "/a", dir + "/b"])
        XCTAssertEqual(report.cases, 1400)
        // Each shard alone is below the 1024 vectors IVF needs; the merged bank is IVF from the start.
        XCTAssertEqual(report.indexKind, .ivf)
        let merged = try SupportBank.open(at: dir + "/out")
        XCTAssertNil(merged.indexRepair, "the index file written by the merge is used as it is")
        XCTAssertEqual(try merged.statistics().indexKind, .ivf)
        XCTAssertTrue(merged.verify().ok)
    }

    /// Banks of another memory codec merge too: each stored memory is checked by that codec and copied as it is.
    func testBanksOfAnotherMemoryCodecMergeWithTheirMemoriesUnchanged() throws {
        for codec in [MemoryCodec.int8, .bf16Zstd] {
            let dir = temporaryDirectory()
            var template = makeMetadata(dimension: dimension, kind: .auto, labels: ["liver", "spleen"])
            template.memoryCodec = codec
            try makeBank(dir + "/a", template: template, seeds: Array(0..<6))
            try makeBank(dir + "/b", template: template, seeds: Array(6..<12))
            try makeBank(dir + "/single", template: template, seeds: Array(0..<12))
            let report = try SupportBank.merge(into: dir + "/out", from: [dir + "/a", dir + "/b"])
            XCTAssertEqual(report.cases, 12)
            let merged = try SupportBank.open(at: dir + "/out"), single = try SupportBank.open(at: dir + "/single")
            XCTAssertEqual(merged.metadata.codec, codec)
            for record in try single.allRecords() {
                let id = try XCTUnwrap(try merged.caseID(forContentHash: XCTUnwrap(hexBytes(record.contentHash))))
                for label in Set(record.storedMemoryLabels) {
                    let a = try XCTUnwrap(try merged.memory(id, label: label))
                    let b = try XCTUnwrap(try single.memory(record.id, label: label))
                    XCTAssertEqual(a.memoryBits, b.memoryBits, "\(codec) case \(record.id) label \(label)")
                    XCTAssertEqual(a.pointer, b.pointer)
                }
            }
            XCTAssertTrue(merged.verify().ok, "\(merged.verify().problems)")
        }
    }

    func testIncompatibleBanksAreRefusedNamingTheBankAndTheField() throws {
        let dir = temporaryDirectory()
        let template = makeMetadata(dimension: dimension, labels: ["liver", "spleen"])
        try makeBank(dir + "/a", template: template, seeds: [1, 2])
        var otherWeights = template
        otherWeights.supportModel.sha256 = String(repeating: "c", count: 64)
        var otherLabels = template
        otherLabels.labels = ["liver", "kidney"]
        var otherShape = template
        otherShape.memoryShape = MemoryShape(channels: 4, height: 4, width: 4, pointerDimension: 16)
        var otherConfiguration = template
        otherConfiguration.retrievalModel.configuration = #"{"depth":12}"#
        var otherPreprocessing = template
        otherPreprocessing.preprocessing = ["retrieval": "resize 224"]
        var otherCodec = template
        otherCodec.memoryCodec = .int8
        let cases: [(BankMetadata, String)] = [
            (otherWeights, "its support (SAM 2) model is test-support t sha256 cccc"),
            (otherLabels, #"its labels is ["liver", "kidney"], not ["liver", "spleen"]"#),
            (otherShape, "its memory shape is 4x4x4 bf16 + 16 fp32, not 4x4x4 bf16 + 8 fp32"),
            (
                otherConfiguration,
                "its retrieval (DINOv2) model has another configuration: depth 12 (the bank's: absent)"
            ),
            (otherPreprocessing, "its preprocessing retrieval is resize 224, not absent"),
            (otherCodec, "its memory codec is int8, not bf16"),
        ]
        for (i, (metadata, expected)) in cases.enumerated() {
            let other = dir + "/other\(i)"
            // (cases of another memory shape cannot be made with makeCase's shape: that bank stays empty)
            try makeBank(other, template: metadata, seeds: metadata.memoryShape == tinyShape ? [3] : [])
            XCTAssertThrowsError(try SupportBank.merge(into: dir + "/out", from: [dir + "/a", other])) { error in
                let text = "\(error)"
                XCTAssertTrue(text.hasPrefix("bank \(other): cannot be merged with \(dir)/a"), text)
                XCTAssertTrue(text.contains(expected), "expected \(expected) in: \(text)")
            }
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/out"))
        }
        XCTAssertThrowsError(try SupportBank.merge(into: dir + "/out", from: [dir + "/a", dir + "/a"])) {
            XCTAssertTrue("\($0)".contains("is given twice"), "\($0)")
        }
        try FileManager.default.copyItem(atPath: dir + "/a", toPath: dir + "/copy")
        XCTAssertThrowsError(try SupportBank.merge(into: dir + "/out", from: [dir + "/a", dir + "/copy"])) {
            XCTAssertTrue("\($0)".contains("is the same bank as \(dir)/a"), "\($0)")
        }
        // A target that holds anything is refused untouched.
        XCTAssertThrowsError(try SupportBank.merge(into: dir + "/a", from: [dir + "/copy"])) {
            XCTAssertTrue("\($0)".contains("directory is not empty"), "\($0)")
        }
        // Nothing was left beside the target by any refusal.
        let entries = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix(".") }
        XCTAssertEqual(entries, [])
    }

    func testShardsOfOneBuildMustAllBeGivenOnce() throws {
        let dir = temporaryDirectory()
        let template = makeMetadata(dimension: dimension, labels: ["liver", "spleen"])
        let root = try SupportBank.create(at: dir + "/template", metadata: template)
        let templateMetadata = root.metadata
        for i in 0..<3 {
            try makeBank(
                dir + "/s\(i)", template: templateMetadata, seeds: [i * 2 + 1], shard: .init(index: i, count: 3))
        }
        XCTAssertEqual(try SupportBank.readMetadata(at: dir + "/s1").template, templateMetadata.uuid)
        XCTAssertEqual(try SupportBank.readMetadata(at: dir + "/s1").shard, ShardAssignment(index: 1, count: 3))
        XCTAssertThrowsError(try SupportBank.merge(into: dir + "/out", from: [dir + "/s0", dir + "/s2"])) {
            XCTAssertTrue(
                "\($0)".contains("is one of 3 shards, but shard(s) 1/3 of the same build are not given"), "\($0)")
        }
        let partial = try SupportBank.merge(
            into: dir + "/partial", from: [dir + "/s0", dir + "/s2"], allowMissingShards: true)
        XCTAssertEqual(partial.cases, 2)
        try makeBank(dir + "/again", template: templateMetadata, seeds: [99], shard: .init(index: 1, count: 3))
        XCTAssertThrowsError(
            try SupportBank.merge(into: dir + "/out", from: [dir + "/s0", dir + "/s1", dir + "/again", dir + "/s2"])
        ) { XCTAssertTrue("\($0)".contains("holds shard 1/3, like \(dir)/s1"), "\($0)") }
        let all = try SupportBank.merge(into: dir + "/out", from: [dir + "/s2", dir + "/s0", dir + "/s1"])
        XCTAssertEqual(all.inputs.map { $0.shard?.index }, [2, 0, 1])
        XCTAssertEqual(try SupportBank.open(at: dir + "/out").metadata.template, templateMetadata.uuid)

        // A shard keeps its share; a bank that already holds cases added without one cannot become a shard.
        let shard = try SupportBank.open(at: dir + "/s0")
        XCTAssertNoThrow(try shard.recordShard(.init(index: 0, count: 3)))
        XCTAssertThrowsError(try shard.recordShard(.init(index: 1, count: 3))) {
            XCTAssertTrue("\($0)".contains("holds shard 0/3 of the inputs, not 1/3"), "\($0)")
        }
        try makeBank(dir + "/plain", template: templateMetadata, seeds: [5])
        XCTAssertThrowsError(try SupportBank.open(at: dir + "/plain").recordShard(.init(index: 0, count: 2))) {
            XCTAssertTrue("\($0)".contains("already holds 1 case(s) added without --shard"), "\($0)")
        }
    }

    /// The share is the first 8 bytes of the digest, big-endian, modulo the count (computed here by hand).
    func testShareOfADigest() {
        var digest = [UInt8](repeating: 0, count: 32)
        digest[7] = 7  // 7
        XCTAssertEqual(ShardAssignment.shard(ofSHA256: digest, count: 4), 3)
        digest[6] = 1  // 256 + 7 = 263 = 65 * 4 + 3; the bytes past the 8th do not count
        digest[8] = 255
        XCTAssertEqual(ShardAssignment.shard(ofSHA256: digest, count: 5), 3)
        digest = [UInt8](repeating: 255, count: 32)  // 2^64 - 1 = 18446744073709551615, mod 10 = 5
        XCTAssertEqual(ShardAssignment.shard(ofSHA256: digest, count: 10), 5)
        XCTAssertTrue(ShardAssignment(index: 5, count: 10).owns(sha256: digest))
    }
}

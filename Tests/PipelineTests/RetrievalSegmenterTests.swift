import Foundation
import XCTest
import DINOv2
import RAGSegIO
import SAM2
import SupportBank
import TensorCore
@testable import RAGSegPipeline

/// End to end on the tiny reference models: build a bank with the real encoders, query it, and check the
/// query path against an independent route through the same models (brute-force retrieval; supports
/// re-encoded from their files and segmented directly, as `ragseg segment --support` does).
final class RetrievalSegmenterTests: XCTestCase {
    let width = 96, height = 112  // non-square: the final resize must return the input size
    var directory: URL!
    var sources: [CaseSource] = []
    var retrieval: DINOv2RetrievalEncoder!
    var support: SAM2SupportEncoder!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("ragseg-pipeline-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        sources = try (0..<7).map { i in
            try SyntheticCases.write(SyntheticCases.make(seed: UInt64(i + 1), width: width, height: height),
                                     index: i, width: width, height: height, to: directory)
        }
        retrieval = try FixtureModels.retrievalEncoder()
        support = try FixtureModels.supportEncoder()
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    /// A bank holding cases 0..<6 (case 6 is the held-out target).
    func makeBank() throws -> SupportBank {
        let metadata = BankMetadata(retrievalModel: retrieval.model, supportModel: support.model,
                                    embeddingDimension: retrieval.dimension, memoryShape: support.memoryShape,
                                    preprocessing: retrieval.preprocessing.merging(support.preprocessing) { a, _ in a },
                                    labels: ["object"])
        let bank = try SupportBank.create(at: directory.appendingPathComponent("bank").path, metadata: metadata)
        let prepared = try sources.prefix(6).map {
            try CaseLoader.prepare(try CaseLoader.load($0, labelCount: 1), retrieval: retrieval, support: support)
        }
        let outcomes = try bank.add(prepared)
        XCTAssertEqual(outcomes.count, 6)
        return bank
    }

    func testQueryEqualsDirectSegmentationWithTheSameSupports() throws {
        let bank = try makeBank()
        let segmenter = try RetrievalSegmenter(bank: bank, retrieval: retrieval, support: support)
        let target = try PNG.read(sources[6].image)
        let result = try segmenter.segment(target, name: sources[6].image, k: 3)
        XCTAssertEqual(result.supports.count, 3)
        XCTAssertEqual(result.segmentation.logits.shape, [height, width])

        // Retrieval = brute-force cosine ranking of the cases' DINOv2 embeddings.
        func unit(_ v: [Float]) -> [Float] { let n = v.reduce(0) { $0 + $1 * $1 }.squareRoot(); return v.map { $0 / n } }
        let q = unit(try retrieval.embed(target))
        let ranked = try (0..<6).map { i -> (path: String, score: Float) in
            let e = unit(try retrieval.embed(try PNG.read(sources[i].image)))
            return (sources[i].image, zip(q, e).reduce(0) { $0 + $1.0 * $1.1 })
        }.sorted { $0.score > $1.score }
        XCTAssertEqual(result.supports.map(\.record.image), ranked.prefix(3).map(\.path))
        for (hit, expected) in zip(result.supports, ranked) { XCTAssertEqual(hit.score, expected.score, accuracy: 1e-5) }

        // The same supports encoded again from their files and segmented directly: bit-identical logits.
        let supports = try result.supports.map { hit -> SAM2.SupportMemory in
            let image = try PNG.read(hit.record.image), mask = try PNG.read(hit.record.mask)
            let stored = try support.encodeSupport(image: image, mask: mask.pixels.map { $0 != 0 ? 1 : 0 })
            return SAM2.SupportMemory(bank: stored, shape: support.memoryShape)
        }
        let direct = try support.memoryModel.segment(try support.features(target), supports: supports,
                                                     outputSize: (height: height, width: width))
        XCTAssertEqual(result.segmentation.logits.data, direct.logits.data)
        XCTAssertEqual(result.segmentation.iou, direct.iou)
        XCTAssertEqual(result.segmentation.objectScore, direct.objectScore)
        XCTAssertEqual(result.timings.map(\.stage), ["embed", "search", "load", "encode", "attend+decode", "total"])
    }

    func testLeaveOneOutExcludesTheQueryCase() throws {
        let bank = try makeBank()
        let segmenter = try RetrievalSegmenter(bank: bank, retrieval: retrieval, support: support)
        let withSelf = try segmenter.segment(try PNG.read(sources[2].image), name: "case 2", k: 2)
        XCTAssertEqual(withSelf.supports.first?.record.image, sources[2].image, "a bank case retrieves itself first")
        XCTAssertEqual(withSelf.supports.first?.score ?? 0, 1, accuracy: 1e-5)
        let ownID = try XCTUnwrap(withSelf.supports.first?.id)
        let without = try segmenter.segment(try PNG.read(sources[2].image), name: "case 2", k: 5, excluding: [ownID])
        XCTAssertEqual(without.supports.count, 5)
        XCTAssertFalse(without.supports.contains { $0.id == ownID })
    }

    func testBankBuiltWithOtherWeightsIsRefused() throws {
        let bank = try makeBank()
        let other = SAM2SupportEncoder(imageEncoder: support.imageEncoder, memoryModel: support.memoryModel,
                                       model: ModelIdentity(name: "sam2", variant: "fixture", sha256: String(repeating: "0", count: 64)))
        XCTAssertThrowsError(try RetrievalSegmenter(bank: bank, retrieval: retrieval, support: other)) { error in
            XCTAssertTrue("\(error)".contains("sam2"), "\(error)")
        }
    }
}

final class SAM2CheckpointTests: XCTestCase {
    /// The sidecar describes the fixture trunk exactly as the memory-path parity test builds it.
    func testSidecarGivesTheFixtureConfiguration() throws {
        let encoder = try FixtureModels.supportEncoder()
        XCTAssertEqual(encoder.imageEncoder.config, FixtureModels.sam2EncoderConfig(hiddenDim: 64))
        XCTAssertEqual(encoder.imageSize, 128)
        XCTAssertEqual(encoder.model.variant, "memory-path fixture")
    }

    func testMissingAndMalformedFilesNameTheFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ragseg-ckpt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let missing = dir.appendingPathComponent("none.safetensors").path
        XCTAssertThrowsError(try SAM2Checkpoint.supportEncoder(path: missing)) { XCTAssertTrue("\($0)".contains(missing), "\($0)") }
        // A copy of the fixture weights with a broken sidecar.
        let copy = dir.appendingPathComponent("w.safetensors").path
        try FileManager.default.copyItem(atPath: FixtureModels.sam2, toPath: copy)
        try Data("{ not json".utf8).write(to: URL(fileURLWithPath: SAM2Checkpoint.sidecarPath(for: copy)))
        XCTAssertThrowsError(try SAM2Checkpoint.supportEncoder(path: copy)) {
            XCTAssertTrue("\($0)".contains("w.safetensors.json"), "\($0)")
        }
    }
}

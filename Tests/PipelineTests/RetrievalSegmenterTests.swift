import Foundation
import XCTest
import DINOv2
import RAGSegIO
import RAGSegTestSupport
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
        directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "ragseg-pipeline-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        sources = try (0..<7).map { i in
            try SyntheticCases.write(
                SyntheticCases.make(seed: UInt64(i + 1), width: width, height: height),
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
        let metadata = BankMetadata(
            retrievalModel: retrieval.model, supportModel: support.model,
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
        func unit(_ v: [Float]) -> [Float] {
            let n = v.reduce(0) { $0 + $1 * $1 }.squareRoot(); return v.map { $0 / n }
        }
        let q = unit(try retrieval.embed(target))
        let ranked = try (0..<6).map { i -> (path: String, score: Float) in
            let e = unit(try retrieval.embed(try PNG.read(sources[i].image)))
            return (sources[i].image, zip(q, e).reduce(0) { $0 + $1.0 * $1.1 })
        }.sorted { $0.score > $1.score }
        XCTAssertEqual(result.supports.map(\.record.image), ranked.prefix(3).map(\.path))
        for (hit, expected) in zip(result.supports, ranked) {
            XCTAssertEqual(hit.score, expected.score, accuracy: 1e-5)
        }

        // The same supports encoded again from their files and segmented directly: bit-identical logits.
        let supports = try result.supports.map { hit -> SupportMemory in
            let image = try PNG.read(hit.record.image), mask = try PNG.read(hit.record.mask)
            return try support.encodeSupport(image: image, mask: mask.pixels.map { $0 != 0 ? 1 : 0 })
        }
        let direct = try support.sam2.segment(
            try support.features(target), supports: supports,
            outputSize: (height: height, width: width))
        XCTAssertEqual(result.segmentation.logits.data, direct.logits.data)
        XCTAssertEqual(result.segmentation.iou, direct.iou)
        XCTAssertEqual(result.segmentation.objectScore, direct.objectScore)
        XCTAssertEqual(result.timings.map(\.stage), RetrievalSegmentation.stageOrder)
        XCTAssertEqual(result.cpuTimings.map(\.stage), RetrievalSegmentation.stageOrder)
        // The stage clocks are consistent: the timed parts add up to (at most) the total, nothing is negative.
        let wall = QueryStageSplit(result.timings), cpu = QueryStageSplit(result.cpuTimings)
        XCTAssertTrue(result.timings.allSatisfy { $0.seconds >= 0 } && result.cpuTimings.allSatisfy { $0.seconds >= 0 })
        XCTAssertGreaterThan(wall["embed"], 0)
        XCTAssertGreaterThan(wall["encode"], 0)
        XCTAssertGreaterThan(wall["attend"], 0)
        XCTAssertGreaterThan(wall["decode"], 0)
        XCTAssertGreaterThanOrEqual(wall.untimed, 0)
        XCTAssertLessThan(wall.untimed, 0.01 + 0.05 * wall.total)
        XCTAssertGreaterThanOrEqual(cpu.untimed, 0)
    }

    /// Cases whose masks are empty are retrieved like any other and support with their stored empty-mask
    /// memory: the result equals `segment --support` with the same images and (empty) mask files, encoded
    /// from scratch. With positiveOnly they are passed over.
    func testEmptyMaskCasesSupportWithTheirEmptyMasks() throws {
        let emptied = [sources[1].mask, sources[4].mask]
        for path in emptied {
            try PNG.writeGray8([UInt8](repeating: 0, count: width * height), width: width, height: height, to: path)
        }
        let bank = try makeBank()
        let records = try bank.allRecords()
        XCTAssertEqual(records.map(\.labels), [[1], [], [1], [1], [], [1]])
        XCTAssertEqual(records.map { $0.emptyMaskMemory == true }, [false, true, false, false, true, false])
        let segmenter = try RetrievalSegmenter(bank: bank, retrieval: retrieval, support: support)
        let target = try PNG.read(sources[6].image)

        let result = try segmenter.segment(target, name: "target", k: 6)
        XCTAssertEqual(
            Set(result.supports.map(\.record.image)), Set(sources.prefix(6).map(\.image)), "k = 6 retrieves every case")
        XCTAssertEqual(
            LabelReport(label: "object", result: result).retrieved.map(\.hasLabel),
            result.supports.map { !emptied.contains($0.record.mask) })
        XCTAssertEqual(result.retrievedSummary.components(separatedBy: "(empty)").count - 1, 2)
        let direct = SupportSegmenter(model: support.sam2)
        let supports = try result.supports.map {
            try direct.encodeSupport(imagePath: $0.record.image, maskPath: $0.record.mask)
        }
        XCTAssertEqual(supports.map(\.isEmpty), result.supports.map { emptied.contains($0.record.mask) })
        let expected = try direct.segment(target, name: "target", supports: supports).segmentation
        XCTAssertTrue(
            result.segmentation.logits.data == expected.logits.data,
            "retrieval path == segment --support, empty supports included")
        XCTAssertEqual(result.segmentation.objectScore, expected.objectScore)

        let positive = try segmenter.segment(target, name: "target", k: 6, positiveOnly: true)
        XCTAssertEqual(
            positive.supports.map(\.id), result.supports.filter { !emptied.contains($0.record.mask) }.map(\.id))
        XCTAssertNotEqual(
            positive.segmentation.objectScore, result.segmentation.objectScore, "the empty supports took part")
    }

    /// A prompt refines the retrieved result exactly as the memory model does with the same supports and
    /// prompt (the parity of that path with the official predictor is in SAM2Tests); bad prompts name the image.
    func testPromptRefinesTheRetrievedResult() throws {
        let bank = try makeBank()
        let segmenter = try RetrievalSegmenter(bank: bank, retrieval: retrieval, support: support)
        let target = try PNG.read(sources[6].image)
        let prompt = SAM2Prompt(
            points: [SAM2Point(x: 48, y: 50.5, label: 1), SAM2Point(x: 5, y: 100, label: 0)],
            box: SAM2Box(x0: 20, y0: 25, x1: 80, y1: 90))
        let plain = try segmenter.segment(target, name: "target", k: 3)
        let prompted = try segmenter.segment(target, name: "target", k: 3, prompt: prompt)
        XCTAssertEqual(
            prompted.supports.map(\.id), plain.supports.map(\.id), "the prompt does not change the retrieval")
        let memories = try plain.supports.map { hit -> SupportMemory in try XCTUnwrap(try bank.memory(hit.id, label: 1))
        }
        let model = support.sam2, features = try support.features(target)
        let direct = try model.segment(
            features, supports: memories, outputSize: (height: height, width: width), prompt: prompt)
        XCTAssertTrue(
            prompted.segmentation.logits.data == direct.logits.data,
            "retrieval path == memory model with the same supports")
        XCTAssertEqual(prompted.segmentation.iou, direct.iou)
        XCTAssertEqual(prompted.segmentation.objectScore, direct.objectScore)
        XCTAssertEqual(prompted.segmentation.iou.count, 1, "a box and two clicks: single-mask output")
        // ... which is the refinement of the prompt-free result on the same conditioned features.
        let conditioned = model.conditionedFeatures(features, bank: try model.memoryBank.assemble(memories))
        let promptFree = model.decodeTarget(conditioned, features, outputSize: (height: height, width: width)).result
        XCTAssertTrue(promptFree.logits.data == plain.segmentation.logits.data, "prompt-free decode == plain query")
        let refined = try model.refine(
            conditioned, features, previous: promptFree, prompt: prompt, outputSize: (height: height, width: width))
        XCTAssertTrue(refined.result.logits.data == prompted.segmentation.logits.data, "refine == segment(prompt:)")
        // The tiny random models may gate both to "no object"; the scores show the prompt took effect.
        XCTAssertNotEqual(prompted.segmentation.objectScore, plain.segmentation.objectScore)
        XCTAssertEqual(plain.segmentation.iou.count, 3, "prompt-free: multimask")

        XCTAssertThrowsError(
            try segmenter.segment(
                target, name: "target.png", k: 3,
                prompt: SAM2Prompt(points: [SAM2Point(x: 96, y: 3, label: 1)]))
        ) { error in
            XCTAssertEqual(
                "\(error)", "target.png: point 96,3 lies outside the 96x112 image (x in 0..<96, y in 0..<112)")
        }
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
        let other = SAM2SupportEncoder(
            sam2: support.sam2,
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
        XCTAssertEqual(encoder.sam2.config, FixtureModels.sam2Config(hiddenDim: 64, memoryDim: 16))
        XCTAssertEqual(encoder.imageSize, 128)
        XCTAssertEqual(encoder.model.variant, "memory-path fixture")
    }

    func testMissingAndMalformedFilesNameTheFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ragseg-ckpt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let missing = dir.appendingPathComponent("none.safetensors").path
        XCTAssertThrowsError(try SAM2Checkpoint.supportEncoder(path: missing)) {
            XCTAssertTrue("\($0)".contains(missing), "\($0)")
        }
        // A copy of the fixture weights with a broken sidecar.
        let copy = dir.appendingPathComponent("w.safetensors").path
        try FileManager.default.copyItem(atPath: FixtureModels.sam2, toPath: copy)
        try Data("{ not json".utf8).write(to: URL(fileURLWithPath: SAM2ModelDescription.sidecarPath(for: copy)))
        XCTAssertThrowsError(try SAM2Checkpoint.supportEncoder(path: copy)) {
            XCTAssertTrue("\($0)".contains("w.safetensors.json"), "\($0)")
        }
    }
}

extension RetrievalSegmenterTests {
    func testEvalLeaveOneOutScoresEachCaseWithoutItself() throws {
        let bank = try makeBank()
        let segmenter = try RetrievalSegmenter(bank: bank, retrieval: retrieval, support: support)
        let rows = try EvaluationRun.leaveOneOut(segmenter, k: 2)
        let records = try bank.allRecords()
        XCTAssertEqual(rows.count, 6)
        for (row, record) in zip(rows, records) {
            XCTAssertEqual(row.image, record.image)
            XCTAssertFalse(row.retrieved.contains { $0.id == record.id }, "own case excluded")
            XCTAssertEqual(row.retrieved.count, 2)
            // Dice and IoU recomputed here by plain counting from the segmentation and the mask file.
            let image = try PNG.read(record.image), truth = try PNG.read(record.mask).pixels.map { $0 != 0 }
            let predicted = try segmenter.segment(image, name: record.image, k: 2, excluding: [record.id]).mask
            let both = zip(predicted, truth).filter { $0 && $1 }.count
            let p = predicted.filter { $0 }.count, g = truth.filter { $0 }.count
            let dice = p + g == 0 ? 1.0 : 2 * Double(both) / Double(p + g)
            let iou = p + g - both == 0 ? 1.0 : Double(both) / Double(p + g - both)
            XCTAssertEqual(row.scores.dice, dice, accuracy: 1e-12)
            XCTAssertEqual(row.scores.iou, iou, accuracy: 1e-12)
        }
        let csv = EvaluationRun.csv(rows).split(separator: "\n")
        XCTAssertEqual(csv.count, 7)
        XCTAssertTrue(csv[0].hasPrefix("image,mask,label,label_name,dice,iou,hd95"))
        let summary = try XCTUnwrap(EvaluationRun.summaries(rows).first)
        XCTAssertEqual(summary.label, "object")
        XCTAssertEqual(summary.dice?.mean ?? -1, rows.map { $0.scores.dice }.reduce(0, +) / 6, accuracy: 1e-12)
    }
}

// Parity of the SAM 2 image encoder with the official `sam2` code. Fixtures come from
// tools/make_sam2_fixtures.py: a shrunken encoder built from the real classes (Hiera with windowed,
// padded and global blocks and q-pool at every stage change; FpnNeck with nearest top-down; sine PEs;
// conv_s0/conv_s1), random weights, 128x128 input. Tolerance everywhere: max |diff| <= 1e-4 * max(1, max |reference|).
import Foundation
import RAGSegIO
import TensorCore
import XCTest
@testable import SAM2

let fixtureConfig = SAM2Config(
    name: "fixture", embedDim: 8, numHeads: 1, stages: [1, 2, 3, 2], globalAttentionBlocks: [5],
    windowSpec: [8, 4, 6, 3], positionEmbeddingBackgroundSize: [5, 5], neckDim: 32, imageSize: 128)

func fixturePath(_ relative: String) -> String {
    Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent(relative).path
}

func fixture(_ relative: String) throws -> Tensor {
    try NPY.read(fixturePath(relative))
}

/// Asserts equal shapes and max |a - b| <= 1e-4 * max(1, max |reference|); returns the max error.
@discardableResult
func assertClose(
    _ actual: Tensor, _ reference: Tensor, _ what: String, relative: Float = 1e-4,
    file: StaticString = #filePath, line: UInt = #line
) -> Float {
    XCTAssertEqual(actual.shape, reference.shape, "\(what): shape", file: file, line: line)
    guard actual.shape == reference.shape else { return .infinity }
    var maxError: Float = 0, scale: Float = 0
    for i in 0..<reference.count {
        maxError = max(maxError, abs(actual.data[i] - reference.data[i]))
        scale = max(scale, abs(reference.data[i]))
    }
    let tolerance = relative * max(1, scale)
    XCTAssertLessThanOrEqual(
        maxError, tolerance, "\(what): max error \(maxError) (scale \(scale))", file: file, line: line)
    print("\(what): max |diff| \(maxError) at scale \(scale)")
    return maxError
}

final class ImageEncoderTests: XCTestCase {
    // One trace for all parity checks (the model is tiny; encoding takes milliseconds).
    nonisolated(unsafe) static var cached: SAM2ImageEncoderTrace?

    func trace() throws -> SAM2ImageEncoderTrace {
        if let t = Self.cached { return t }
        let weights = try SAM2Weights(path: fixturePath("encoder/weights_official.safetensors"))
        let encoder = try SAM2ImageEncoder(weights: weights, config: fixtureConfig)
        let t = encoder.trace(try fixture("encoder/input.npy"))
        Self.cached = t
        return t
    }

    func testPatchEmbeddingWithPositionEmbedding() throws {
        assertClose(try trace().embedded, try fixture("encoder/patch_embed.npy"), "patch embed + PE")
    }

    func testEveryHieraBlock() throws {
        let t = try trace()
        XCTAssertEqual(t.blocks.count, 8)
        for (i, block) in t.blocks.enumerated() {
            assertClose(block, try fixture(String(format: "encoder/block%02d.npy", i)), "block \(i)")
        }
    }

    func testHieraStages() throws {
        let t = try trace()
        XCTAssertEqual(t.stages.count, 4)
        for (j, stage) in t.stages.enumerated() {
            assertClose(stage, try fixture("encoder/stage\(j).npy"), "stage \(j)")
        }
    }

    func testFPNLevels() throws {
        let t = try trace()
        XCTAssertEqual(t.fpn.count, 4)
        for (j, level) in t.fpn.enumerated() {
            assertClose(level, try fixture("encoder/fpn\(j).npy"), "FPN level \(j)")
        }
        // scalp 1: the kept vision features are level 2.
        assertClose(t.features.visionFeatures, try fixture("encoder/fpn2.npy"), "vision_features")
    }

    func testPositionEncodings() throws {
        let t = try trace()
        for (j, pe) in t.fpnPositionEncodings.enumerated() {
            assertClose(pe, try fixture("encoder/pos\(j).npy"), "sine PE level \(j)")
        }
        XCTAssertEqual(t.features.positionEncodings.count, 3)
    }

    func testHighResolutionProjections() throws {
        let t = try trace()
        assertClose(t.features.highResolution0, try fixture("encoder/conv_s0.npy"), "conv_s0(L0)")
        assertClose(t.features.highResolution1, try fixture("encoder/conv_s1.npy"), "conv_s1(L1)")
    }

    func testHuggingFaceLayoutGivesIdenticalOutputs() throws {
        let official = try SAM2Weights(path: fixturePath("encoder/weights_official.safetensors"))
        let hf = try SAM2Weights(path: fixturePath("encoder/weights_hf.safetensors"))
        XCTAssertEqual(official.layout, .official)
        XCTAssertEqual(hf.layout, .huggingFace)
        let image = try fixture("encoder/input.npy")
        let a = try SAM2ImageEncoder(weights: official, config: fixtureConfig).encode(image)
        let b = try SAM2ImageEncoder(weights: hf, config: fixtureConfig).encode(image)
        XCTAssertEqual(a.highResolution0, b.highResolution0)
        XCTAssertEqual(a.highResolution1, b.highResolution1)
        XCTAssertEqual(a.visionFeatures, b.visionFeatures)
        XCTAssertEqual(a.positionEncodings, b.positionEncodings)
        assertClose(b.visionFeatures, try fixture("encoder/fpn2.npy"), "HF layout vision_features")
    }

    func testMissingAndMisshapenTensorsAreNamedErrors() throws {
        let source = try SafeTensors(path: fixturePath("encoder/weights_hf.safetensors"))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sam2-weights-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }

        let dropped = "vision_encoder.backbone.blocks.3.mlp.proj_in.weight"
        let missingPath = dir.appendingPathComponent("missing.safetensors").path
        try SafeTensors.write(
            try source.names.filter { $0 != dropped }.map { ($0, try source.tensor($0)) }, to: missingPath)
        XCTAssertThrowsError(try SAM2ImageEncoder(weights: SAM2Weights(path: missingPath), config: fixtureConfig)) {
            error in
            let text = String(describing: error)
            XCTAssertTrue(text.contains(dropped) && text.contains(missingPath), text)
        }

        let bent = "vision_encoder.neck.convs.1.weight"
        let wrongPath = dir.appendingPathComponent("wrong.safetensors").path
        try SafeTensors.write(
            try source.names.map { name in
                let t = try source.tensor(name)
                return (name, name == bent ? t.reshaped([t.dim(0) / 2, t.dim(1) * 2, 1, 1]) : t)
            }, to: wrongPath)
        XCTAssertThrowsError(try SAM2ImageEncoder(weights: SAM2Weights(path: wrongPath), config: fixtureConfig)) {
            error in
            let text = String(describing: error)
            XCTAssertTrue(text.contains(bent) && text.contains("shape"), text)
        }

        let notSAM = dir.appendingPathComponent("other.safetensors").path
        try SafeTensors.write([("encoder.weight", Tensor(zeros: [2, 2]))], to: notSAM)
        XCTAssertThrowsError(try SAM2Weights(path: notSAM)) { error in
            XCTAssertTrue(String(describing: error).contains("not a SAM 2 checkpoint"))
        }
    }

    /// The fixture layout is not a published size: inference must refuse it rather than guess.
    func testInferenceRejectsUnpublishedLayout() throws {
        let weights = try SAM2Weights(path: fixturePath("encoder/weights_official.safetensors"))
        XCTAssertThrowsError(try weights.inferImageEncoderConfig()) { error in
            XCTAssertTrue(String(describing: error).contains("matches no published"), String(describing: error))
        }
    }
}

import Foundation
import RAGSegIO
import TensorCore
import XCTest
@testable import DINOv2

/// Parity of the DINOv2 encoder with transformers 5.x `Dinov2Model` / `Dinov2WithRegistersModel`.
///
/// Fixtures: tools/make_dinov2_fixtures.py (random non-trivial weights, D = 128, 2 heads of 64, 2 blocks,
/// 10x10 position table). Tolerance for every comparison: max |ours - reference| <= 1e-4 · max |reference|
/// (the final-normed tokens have scale ~5, so about 5e-4 absolute); float32 accumulation-order noise is ~1e-6.
final class DINOv2ParityTests: XCTestCase {
    static let relativeTolerance: Float = 1e-4

    static func fixture(_ name: String) -> String {
        Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent(name).path
    }

    /// The network input: committed uint8 noise mapped exactly to (u - 128) / 64, [1, 3, H, W].
    static func input(height: Int, width: Int) throws -> Tensor {
        let array = try NPY.readArray(fixture("input_\(height)x\(width).u8.npy"))
        guard case .uint8(let bytes) = array.values else { throw XCTSkip("fixture is not uint8") }
        XCTAssertEqual(array.shape, [3, height, width])
        return Tensor(shape: [1, 3, height, width], data: bytes.map { (Float($0) - 128) / 64 })
    }

    /// max |a - b| / max |b|, asserting equal shapes.
    static func relativeError(_ ours: Tensor, _ reference: Tensor, file: StaticString = #filePath, line: UInt = #line)
        -> Float
    {
        XCTAssertEqual(ours.shape, reference.shape, file: file, line: line)
        guard ours.shape == reference.shape else { return .infinity }
        var maxDiff: Float = 0, scale: Float = 0
        for i in 0..<reference.count {
            maxDiff = max(maxDiff, abs(ours.data[i] - reference.data[i]))
            scale = max(scale, abs(reference.data[i]))
        }
        return maxDiff / scale
    }

    func checkTokens(
        model: DINOv2Model, reference name: String, height: Int, width: Int,
        file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let expected = try NPY.read(Self.fixture("\(name)_tokens_\(height)x\(width).npy"))
        let tokens = try model.forward(try Self.input(height: height, width: width))
        XCTAssertEqual(tokens.shape, [1] + expected.shape, file: file, line: line)
        let all = Self.relativeError(tokens.reshaped(expected.shape), expected, file: file, line: line)
        let cls = Self.relativeError(
            sliced(tokens.reshaped(expected.shape), axis: 0, range: 0..<1),
            sliced(expected, axis: 0, range: 0..<1), file: file, line: line)
        print(
            """
            DINOv2 parity \(name) \(height)x\(width) [\(model.keyLayout)]: all tokens rel err \(all), CLS rel err \(cls)
            """
        )
        XCTAssertLessThanOrEqual(all, Self.relativeTolerance, "all tokens", file: file, line: line)
        XCTAssertLessThanOrEqual(cls, Self.relativeTolerance, "CLS", file: file, line: line)
    }

    // MARK: network parity

    func testPlainModelMatchesTransformers() throws {
        let model = try DINOv2Model(path: Self.fixture("plain"))  // directory: model.safetensors + config.json
        XCTAssertEqual(model.config.registers, 0)
        XCTAssertEqual(model.config.positionResampling, .bicubic)
        XCTAssertEqual(model.keyLayout, .huggingFace(prefix: ""))
        try checkTokens(model: model, reference: "plain", height: 224, width: 224)
        try checkTokens(model: model, reference: "plain", height: 112, width: 168)
    }

    func testRegisterSwiGLUModelMatchesTransformers() throws {
        let model = try DINOv2Model(path: Self.fixture("reg/model.safetensors"))
        XCTAssertEqual(model.config.registers, 4)
        XCTAssertEqual(model.config.feedForward, .swiGLU(hidden: 88))
        XCTAssertEqual(model.config.positionResampling, .bicubicAntialiased)
        try checkTokens(model: model, reference: "reg", height: 224, width: 224)
        try checkTokens(model: model, reference: "reg", height: 112, width: 168)
    }

    /// The same register weights in the torch-hub key layout, with no config.json: architecture from shapes.
    func testTorchHubLayoutWithInferredConfigMatches() throws {
        let model = try DINOv2Model(path: Self.fixture("reg_official.safetensors"))
        XCTAssertEqual(model.keyLayout, .torchHub)
        XCTAssertEqual(model.config, try DINOv2Config(configJSON: Self.fixture("reg/config.json")))
        try checkTokens(model: model, reference: "reg", height: 224, width: 224)
        try checkTokens(model: model, reference: "reg", height: 112, width: 168)
    }

    /// Shape inference on the Hugging Face layout gives what config.json says.
    func testInferredConfigEqualsConfigJSON() throws {
        for name in ["plain", "reg"] {
            let loader = try CheckpointLoader(file: try SafeTensors(path: Self.fixture("\(name)/model.safetensors")))
            XCTAssertEqual(
                try loader.inferConfig(), try DINOv2Config(configJSON: Self.fixture("\(name)/config.json")), name)
        }
    }

    /// Two images in one forward give each image's own result, and clsEmbeddings is row 0 of the tokens.
    func testBatchedForwardMatchesReferencePerImage() throws {
        let model = try DINOv2Model(path: Self.fixture("plain"))
        let x = try Self.input(height: 224, width: 224)
        let flipped = Tensor(shape: x.shape, data: x.data.reversed())
        let batch = concatenated([flipped, x], axis: 0)
        let tokens = try model.forward(batch)
        let expected = try NPY.read(Self.fixture("plain_tokens_224x224.npy"))
        let second = sliced(tokens, axis: 0, range: 1..<2).reshaped(expected.shape)
        XCTAssertLessThanOrEqual(Self.relativeError(second, expected), Self.relativeTolerance)
        let alone = try model.forward(flipped)
        XCTAssertLessThanOrEqual(Self.relativeError(sliced(tokens, axis: 0, range: 0..<1), alone), 1e-5)
        let cls = try model.clsEmbeddings(batch)
        XCTAssertEqual(cls.shape, [2, 128])
        XCTAssertEqual(Array(cls.data[128..<256]), Array(second.data[0..<128]))
        // One image group per core: same numbers as the op-parallel forward.
        let previous = Threads.count
        Threads.set(2)
        defer { Threads.set(previous) }
        let grouped = try model.forwardImageParallel(concatenated([batch, x], axis: 0))
        XCTAssertEqual(grouped.shape, [3, 257, 128])
        XCTAssertEqual(Threads.count, 2)
        XCTAssertLessThanOrEqual(Self.relativeError(sliced(grouped, axis: 0, range: 0..<2), tokens), 1e-6)
        XCTAssertLessThanOrEqual(
            Self.relativeError(sliced(grouped, axis: 0, range: 2..<3).reshaped(expected.shape), expected),
            Self.relativeTolerance)
    }

    func testConfigsListPublishedSizes() {
        XCTAssertEqual(DINOv2Config.giant.feedForward, .swiGLU(hidden: 4096))
        XCTAssertEqual(DINOv2Config.small.headDim, 64)
        XCTAssertEqual(DINOv2Config.published["vitb14_reg"]?.registers, 4)
        // docs/dinov2.md#flop-counts: ViT-S/14 at 224² is 6.12 GMAC, ViT-B/14 23.16 GMAC.
        XCTAssertEqual(DINOv2Config.small.flops(height: 224, width: 224) / 2e9, 6.12, accuracy: 0.01)
        XCTAssertEqual(DINOv2Config.base.flops(height: 224, width: 224) / 2e9, 23.16, accuracy: 0.01)
    }

    // MARK: errors

    func temporaryDirectory() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dinov2-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    /// Rewrites the plain fixture through `edit` into a temporary file and returns the error loading it raises.
    func loadError(editing edit: ([(String, Tensor)]) -> [(String, Tensor)]) throws -> String {
        let source = try SafeTensors(path: Self.fixture("plain/model.safetensors"))
        let tensors = try source.names.map { ($0, try source.tensor($0)) }
        let path = try temporaryDirectory() + "/model.safetensors"
        try SafeTensors.write(edit(tensors), to: path)
        do {
            _ = try DINOv2Model(path: path)
            XCTFail("loading \(path) should fail")
            return ""
        } catch {
            return "\(error)"
        }
    }

    func testMissingTensorIsNamed() throws {
        let message = try loadError { $0.filter { $0.0 != "encoder.layer.1.layer_scale2.lambda1" } }
        XCTAssertTrue(message.contains("missing tensor 'encoder.layer.1.layer_scale2.lambda1'"), message)
    }

    func testWrongShapeIsNamed() throws {
        let message = try loadError {
            $0.map { $0.0 == "encoder.layer.0.mlp.fc2.weight" ? ($0.0, Tensor(zeros: [128, 255])) : $0 }
        }
        XCTAssertTrue(
            message.contains("'encoder.layer.0.mlp.fc2.weight' has shape [128, 255], expected [128, 256]"), message)
    }

    func testUnknownLayoutIsRejected() throws {
        let message = try loadError { $0.map { ("model." + $0.0, $0.1) } }
        XCTAssertTrue(message.contains("unknown DINOv2 key layout"), message)
    }

    func testInputSizeMustBeMultipleOfPatch() throws {
        let model = try DINOv2Model(path: Self.fixture("plain"))
        XCTAssertThrowsError(try model.forward(Tensor(zeros: [1, 3, 224, 220]))) { error in
            XCTAssertTrue("\(error)".contains("not a positive multiple of the patch size 14"), "\(error)")
        }
        XCTAssertThrowsError(try model.forward(Tensor(zeros: [1, 1, 224, 224])))
    }

    /// The hub's config.json fields for facebook/dinov2-giant and dinov2-with-registers-small give the published
    /// configs.
    func testHubConfigJSONGivesPublishedVariants() throws {
        let dir = try temporaryDirectory()
        let giant = #"""
            {"model_type": "dinov2", "hidden_size": 1536, "num_hidden_layers": 40, "num_attention_heads": 24,
            "mlp_ratio": 4, "hidden_act": "gelu", "image_size": 518, "patch_size": 14, "layer_norm_eps": 1e-06,
            "qkv_bias": true, "use_swiglu_ffn": true, "num_channels": 3}
            """#
        let smallReg = #"""
            {"model_type": "dinov2_with_registers", "hidden_size": 384, "num_hidden_layers": 12,
            "num_attention_heads": 6, "mlp_ratio": 4, "hidden_act": "gelu", "image_size": 518, "patch_size": 14,
            "layer_norm_eps": 1e-06, "num_register_tokens": 4, "use_swiglu_ffn": false}
            """#
        for (name, text, expected) in [
            ("giant", giant, DINOv2Config.giant), ("small-reg", smallReg, DINOv2Config.small.withRegisters()),
        ] {
            let path = dir + "/\(name).json"
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            XCTAssertEqual(try DINOv2Config(configJSON: path), expected, name)
        }
    }

    func testBadConfigJSONIsReported() throws {
        let dir = try temporaryDirectory()
        let path = dir + "/config.json"
        try Data(#"{"model_type": "vit", "hidden_size": 128}"#.utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try DINOv2Config(configJSON: path)) { error in
            XCTAssertTrue("\(error)".contains("is not a DINOv2 model"), "\(error)")
        }
    }
}

// Block layout and size inference against the tables of docs/sam2.md#published-variants,
// which were read off the official code, not computed by this package.
import XCTest
@testable import SAM2

final class ConfigTests: XCTestCase {
    func testTinyBlockLayoutMatchesTheReferenceTable() {
        let blocks = SAM2Config.tiny.blocks
        XCTAssertEqual(blocks.count, 12)
        XCTAssertEqual(blocks.map(\.window), [8, 8, 4, 4, 14, 0, 14, 0, 14, 0, 14, 7])
        XCTAssertEqual(blocks.map(\.heads), [1, 2, 2, 4, 4, 4, 4, 4, 4, 4, 8, 8])
        XCTAssertEqual(blocks.indices.filter { blocks[$0].qPool }, [1, 3, 10])
        XCTAssertEqual(blocks.map(\.dimOut), [96, 192, 192, 384, 384, 384, 384, 384, 384, 384, 768, 768])
        XCTAssertEqual(blocks[1].dimIn, 96)
        XCTAssertEqual(SAM2Config.tiny.stageEnds, [0, 2, 9, 11])
    }

    func testQPoolBlocksOfEverySize() {
        let expected: [String: [Int]] = [
            "tiny": [1, 3, 10], "small": [1, 3, 14], "base_plus": [2, 5, 21], "large": [2, 8, 44],
        ]
        for config in SAM2Config.published {
            let b = config.blocks
            XCTAssertEqual(b.indices.filter { b[$0].qPool }, expected[config.name], config.name)
            XCTAssertEqual(b.last!.dimOut, config.embedDim * 8, config.name)
            // Head dim is constant per model: tiny/small 96, b+ 56, large 72.
            let headDims = Set(b.map { $0.dimOut / $0.heads })
            XCTAssertEqual(
                headDims, [["tiny": 96, "small": 96, "base_plus": 56, "large": 72][config.name]!], config.name)
        }
    }

    /// Shapes as the official checkpoints hold them (docs/sam2.md#published-variants): width and blocks per stage.
    func testSizeInferenceFromShapes() throws {
        let cases: [(name: String, c0: Int, stages: [Int], bkg: Int)] = [
            ("tiny", 96, [1, 2, 7, 2], 7), ("small", 96, [1, 2, 11, 2], 7),
            ("base_plus", 112, [2, 3, 16, 3], 14), ("large", 144, [2, 6, 36, 4], 7),
        ]
        for c in cases {
            var shapes: [String: [Int]] = [
                "image_encoder.trunk.patch_embed.proj.weight": [c.c0, 3, 7, 7],
                "image_encoder.trunk.pos_embed": [1, c.c0, c.bkg, c.bkg],
                "image_encoder.neck.convs.0.conv.weight": [256, c.c0 * 8, 1, 1],
            ]
            var block = 0
            for (s, n) in c.stages.enumerated() {
                for i in 0..<n {
                    let dOut = c.c0 << s
                    let dIn = (i == 0 && s > 0) ? dOut / 2 : dOut
                    shapes["image_encoder.trunk.blocks.\(block).attn.qkv.weight"] = [3 * dOut, dIn]
                    block += 1
                }
            }
            let config = try SAM2Weights.inferImageEncoderConfig(shapeOf: { shapes[$0] })
            XCTAssertEqual(config.name, c.name)
            XCTAssertEqual(config.positionEmbeddingBackgroundSize, [c.bkg, c.bkg])
        }
    }

    func testHuggingFaceNames() {
        let pairs = [
            ("image_encoder.trunk.blocks.1.norm1.weight", "vision_encoder.backbone.blocks.1.layer_norm1.weight"),
            ("image_encoder.trunk.blocks.1.mlp.layers.0.weight", "vision_encoder.backbone.blocks.1.mlp.proj_in.weight"),
            ("image_encoder.trunk.blocks.1.proj.weight", "vision_encoder.backbone.blocks.1.proj.weight"),
            ("image_encoder.trunk.patch_embed.proj.weight", "vision_encoder.backbone.patch_embed.projection.weight"),
            ("image_encoder.trunk.pos_embed_window", "vision_encoder.backbone.pos_embed_window"),
            ("image_encoder.neck.convs.0.conv.weight", "vision_encoder.neck.convs.0.weight"),
            ("sam_mask_decoder.conv_s0.weight", "mask_decoder.conv_s0.weight"),
        ]
        for (official, hf) in pairs { XCTAssertEqual(SAM2Weights.huggingFaceName(official).name, hf) }
    }
}

/// FLOP counts against the ones measured with torch.utils.flop_counter (docs/sam2.md#flop-counts).
final class FLOPTests: XCTestCase {
    func testTinyMatchesMeasuredCounts() {
        let f = SAM2Config.tiny.flops
        let measured = [16.1, 21.3, 14.7, 20.6, 16.9, 40.3, 16.9, 40.3, 16.9, 40.3, 22.9, 15.6]
        for (i, g) in f.blocks.enumerated() { XCTAssertEqual(g / 1e9, measured[i], accuracy: 0.051, "block \(i)") }
        XCTAssertEqual(f.patchEmbed / 1e9, 1.85, accuracy: 0.01)
        XCTAssertEqual(f.neck / 1e9, 6.04, accuracy: 0.01)
        XCTAssertEqual(f.highResolution / 1e9, 1.61, accuracy: 0.01)
        XCTAssertEqual(f.total / 1e9, 292.4, accuracy: 0.2)
    }

    func testOtherSizesMatchMeasuredTotals() {
        XCTAssertEqual(SAM2Config.small.flops.total / 1e9, 360.1, accuracy: 0.2)
        XCTAssertEqual(SAM2Config.basePlus.flops.total / 1e9, 646.8, accuracy: 0.2)
        XCTAssertEqual(SAM2Config.large.flops.total / 1e9, 1822.8, accuracy: 0.3)
    }
}

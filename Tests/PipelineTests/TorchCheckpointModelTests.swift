import Foundation
import XCTest
import RAGSegIO
import RAGSegTestSupport
import SAM2
import SupportBank
@testable import RAGSegPipeline

/// The official SAM 2 layout, `{"model": state_dict}` in a torch.save file (the fixture model saved so by
/// tools/make_pt_fixtures.py, with its sidecar as weights.pt.json): the same tensors, configuration and
/// support memories as from the safetensors file, and the bank identity is the .pt file's own SHA-256.
final class TorchCheckpointModelTests: XCTestCase {
    static let sam2PT = FixtureModels.testsDirectory.appendingPathComponent("SAM2Tests/Fixtures/memory/weights.pt")
        .path

    func testOfficialLayoutCheckpointHoldsTheSameTensorsAndConfig() throws {
        let pt = try SAM2Weights(path: Self.sam2PT), safeTensors = try SAM2Weights(path: FixtureModels.sam2)
        XCTAssertEqual((pt.file as? TorchCheckpoint)?.stateDictKey, "model")
        XCTAssertEqual(pt.layout, .official)
        XCTAssertEqual(pt.file.names, safeTensors.file.names)
        for name in safeTensors.file.names {
            let a = try pt.file.tensor(name), b = try safeTensors.file.tensor(name)
            XCTAssertEqual(a.shape, b.shape, name)
            XCTAssertEqual(a.data.map(\.bitPattern), b.data.map(\.bitPattern), name)
        }
        XCTAssertEqual(try pt.inferConfig(), try safeTensors.inferConfig())
    }

    func testSupportMemoriesAreIdenticalAndTheIdentityIsTheFileHash() throws {
        let fromPT = try SAM2Checkpoint.supportEncoder(path: Self.sam2PT)
        let fromSafeTensors = try FixtureModels.supportEncoder()
        XCTAssertEqual(fromPT.model.variant, fromSafeTensors.model.variant)
        XCTAssertEqual(fromPT.model.sha256, hexString(try SHA256.hash(fileAt: Self.sam2PT)))
        XCTAssertNotEqual(fromPT.model.sha256, fromSafeTensors.model.sha256)
        let c = SyntheticCases.make(seed: 5, width: 96, height: 112)
        let image = PNGImage(width: 96, height: 112, channels: 1, bitDepth: 8, pixels: c.image.map(UInt16.init))
        let a = try fromPT.encodeSupport(image: image, mask: c.mask)
        let b = try fromSafeTensors.encodeSupport(image: image, mask: c.mask)
        XCTAssertEqual(a.memoryBits, b.memoryBits)
        XCTAssertEqual(a.pointer.map(\.bitPattern), b.pointer.map(\.bitPattern))
        XCTAssertFalse(a.isEmpty)
    }
}

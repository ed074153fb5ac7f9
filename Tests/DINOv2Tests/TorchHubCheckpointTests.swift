import XCTest
import RAGSegIO
import TensorCore
@testable import DINOv2

/// torch hub's DINOv2 files are bare PyTorch state dicts with hub key names (`dinov2_vits14_pretrain.pth`):
/// the fixture is reg_official.safetensors saved that way by tools/make_pt_fixtures.py.
final class TorchHubCheckpointTests: XCTestCase {
    func testTorchHubStateDictGivesTheSameModelAsSafeTensors() throws {
        let fromPTH = try DINOv2Model(path: DINOv2ParityTests.fixture("reg_official.pth"))
        let fromSafeTensors = try DINOv2Model(path: DINOv2ParityTests.fixture("reg_official.safetensors"))
        XCTAssertEqual(fromPTH.keyLayout, .torchHub)
        XCTAssertEqual(fromPTH.config, fromSafeTensors.config, "architecture inferred from the same shapes")
        let input = try DINOv2ParityTests.input(height: 112, width: 168)
        let a = try fromPTH.forward(input), b = try fromSafeTensors.forward(input)
        XCTAssertEqual(a.shape, b.shape)
        XCTAssertTrue(zip(a.data, b.data).allSatisfy { $0.bitPattern == $1.bitPattern }, "tokens differ")
    }

    func testEveryTensorOfThePTHEqualsTheSafeTensors() throws {
        let pth = try TensorFiles.open(DINOv2ParityTests.fixture("reg_official.pth"))
        let safeTensors = try SafeTensors(path: DINOv2ParityTests.fixture("reg_official.safetensors"))
        XCTAssertTrue(pth is TorchCheckpoint)
        XCTAssertEqual(pth.names, safeTensors.names)
        for name in safeTensors.names {
            let a = try pth.tensor(name), b = try safeTensors.tensor(name)
            XCTAssertEqual(a.shape, b.shape, name)
            XCTAssertEqual(a.data.map(\.bitPattern), b.data.map(\.bitPattern), name)
        }
    }
}

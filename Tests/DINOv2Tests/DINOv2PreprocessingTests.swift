import Foundation
import RAGSegIO
import TensorCore
import XCTest
@testable import DINOv2

/// PNG -> RGB float -> antialiased bicubic resize -> ImageNet normalization, against PyTorch's
/// `F.interpolate(bicubic, antialias=True)` on float (tools/make_dinov2_fixtures.py `preprocess_reference`).
/// Kept apart from the network test. Tolerance: max abs error <= 1e-5 · max |reference| (scale ~2.6): both
/// sides compute in float32 from the same integers, so only filter-weight rounding differs.
/// Sizes: gray8 50x70 (rows up, columns down), rgb16 30x40 (both up), rgba8 64x48 (rows down, columns up).
final class DINOv2PreprocessingTests: XCTestCase {
    func check(_ name: String, channels: Int, bitDepth: Int) throws {
        let image = try PNG.read(DINOv2ParityTests.fixture("preprocess_\(name).png"))
        XCTAssertEqual(image.channels, channels)
        XCTAssertEqual(image.bitDepth, bitDepth)
        let ours = try DINOv2Preprocessing.pixels(image, size: 56)
        let expected = try NPY.read(DINOv2ParityTests.fixture("preprocess_\(name)_56.npy"))
        let error = DINOv2ParityTests.relativeError(ours, expected)
        print("DINOv2 preprocessing \(name): rel err \(error)")
        XCTAssertLessThanOrEqual(error, 1e-5)
    }

    func testGray8() throws { try check("gray8", channels: 1, bitDepth: 8) }
    func testRGB16() throws { try check("rgb16", channels: 3, bitDepth: 16) }
    func testRGBA8() throws { try check("rgba8", channels: 4, bitDepth: 8) }
}

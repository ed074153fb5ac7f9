// Preprocessing parity: PNG -> [0,1] -> antialiased bilinear resize -> ImageNet normalization,
// reference = torch F.interpolate(bilinear, antialias=True) on the float image (tools/make_sam2_fixtures.py).
// Tolerance 1e-4 * max(1, scale) (values are O(2)).
import RAGSegIO
import TensorCore
import XCTest
@testable import SAM2

final class PreprocessTests: XCTestCase {
    func check(_ png: String, _ reference: String, height: Int, width: Int) throws {
        let image = try PNG.read(fixturePath("preprocess/\(png)"))
        let tensor = try SAM2Preprocess.imageTensor(image, height: height, width: width, name: png)
        assertClose(tensor, try fixture("preprocess/\(reference)"), "\(png) -> \(height)x\(width)")
    }

    func testGray8Downsampled() throws { try check("gray8.png", "gray8_32x48.npy", height: 32, width: 48) }
    func testGray8Resampled() throws { try check("gray8.png", "gray8_64x64.npy", height: 64, width: 64) }
    func testGray16() throws { try check("gray16.png", "gray16_32x48.npy", height: 32, width: 48) }
    func testRGB8Upsampled() throws { try check("rgb8.png", "rgb8_64x64.npy", height: 64, width: 64) }
}

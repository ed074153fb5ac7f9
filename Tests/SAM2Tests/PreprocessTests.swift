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

    /// Alpha is ignored: gray+alpha equals gray, RGBA equals RGB (same pixels, any alpha).
    func testAlphaIsIgnored() throws {
        let gray = try PNG.read(fixturePath("preprocess/gray8.png"))
        let withAlpha = PNGImage(
            width: gray.width, height: gray.height, channels: 2, bitDepth: 8,
            pixels: gray.pixels.flatMap { [$0, 17] })
        XCTAssertEqual(
            try SAM2Preprocess.imageTensor(withAlpha, height: 32, width: 48),
            try SAM2Preprocess.imageTensor(gray, height: 32, width: 48))
        let rgb = try PNG.read(fixturePath("preprocess/rgb8.png"))
        var rgba: [UInt16] = []
        for p in 0..<(rgb.width * rgb.height) { rgba += rgb.pixels[(3 * p)..<(3 * p + 3)] + [200] }
        let withAlphaRGB = PNGImage(width: rgb.width, height: rgb.height, channels: 4, bitDepth: 8, pixels: rgba)
        XCTAssertEqual(
            try SAM2Preprocess.imageTensor(withAlphaRGB, height: 64, width: 64),
            try SAM2Preprocess.imageTensor(rgb, height: 64, width: 64))
    }

    func testBadImagesAreNamedErrors() {
        let cases = [
            PNGImage(width: 2, height: 2, channels: 1, bitDepth: 4, pixels: [0, 1, 2, 3]),
            PNGImage(width: 2, height: 2, channels: 3, bitDepth: 8, pixels: [0, 1, 2]),
            PNGImage(width: 0, height: 2, channels: 1, bitDepth: 8, pixels: []),
        ]
        for image in cases {
            XCTAssertThrowsError(try SAM2Preprocess.imageTensor(image, size: 8, name: "bad.png")) { error in
                XCTAssertTrue(String(describing: error).hasPrefix("bad.png: "), String(describing: error))
            }
        }
    }
}

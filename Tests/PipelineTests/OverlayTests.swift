import XCTest
import RAGSegIO
@testable import RAGSegPipeline

final class OverlayTests: XCTestCase {
    func testOutlineTintAndCaption() {
        let w = 40, h = 30
        let image = PNGImage(
            width: w, height: h, channels: 1, bitDepth: 8, pixels: [UInt16](repeating: 100, count: w * h))
        var mask = [Bool](repeating: false, count: w * h)
        for y in 15..<25 { for x in 20..<35 { mask[y * w + x] = true } }
        let rgb = Overlay.render(image, mask: mask, caption: "#7")
        func px(_ x: Int, _ y: Int) -> [UInt8] { Array(rgb[((y * w + x) * 3)..<((y * w + x) * 3 + 3)]) }
        XCTAssertEqual(px(20, 15), [255, 230, 0], "boundary pixel is outlined")
        XCTAssertEqual(px(34, 24), [255, 230, 0], "boundary pixel is outlined")
        XCTAssertEqual(
            px(27, 20), [138, 138, 100], "interior is tinted: (3*100+255)/4 = 138 (integer) on red and green")
        XCTAssertEqual(px(5, 28), [100, 100, 100], "outside the mask and the caption: the image")
        // Caption box at the top-left: '#' at scale 2 inks (2,2); the box background is black.
        XCTAssertEqual(px(2, 2), [255, 255, 255])
        XCTAssertEqual(px(0, 0), [0, 0, 0])
        XCTAssertEqual(px(12, 2), [255, 255, 255], "second glyph '7' top row")
    }
}

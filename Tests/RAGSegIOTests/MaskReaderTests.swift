import Foundation
import XCTest
@testable import RAGSegIO

/// The one mask rule on masks stored every way a PNG can hold them (tools/make_mask_fixtures.py). The
/// expected masks are the two rules that script documents, restated here.
final class MaskReaderTests: XCTestCase {
    let width = 24, height = 20

    func onObject(_ x: Int, _ y: Int) -> Bool { (5..<17).contains(x) && (4..<14).contains(y) || (x == 20 && y == 17) }
    func label(_ x: Int, _ y: Int) -> UInt16 { !onObject(x, y) ? 0 : (x < 11 ? 1 : 2) }

    func expected(_ value: (Int, Int) -> UInt16) -> [UInt16] {
        (0..<height).flatMap { y -> [UInt16] in (0..<width).map { x -> UInt16 in value(x, y) } }
    }

    func mask(_ name: String) -> String { fixture("masks/" + name) }

    func testEveryKindOfBinaryMaskReadsAsTheSameObject() throws {
        let object = expected { x, y -> UInt16 in self.onObject(x, y) ? 1 : 0 }
        XCTAssertEqual(object.filter { $0 == 1 }.count, 12 * 10 + 1)
        for name in [
            "object_gray8_255", "object_gray8_1", "object_gray16", "object_gray1", "object_gray_alpha",
            "object_gray_trns",
            "object_rgb", "object_rgba", "object_rgb16", "object_palette", "object_palette2",
        ] {
            let read = try MaskReader.read(mask(name + ".png"), labelCount: 1)
            XCTAssertEqual([read.width, read.height], [width, height], name)
            XCTAssertEqual(read.labels, object, name)
            XCTAssertEqual(read.presentLabels, [1], name)
            XCTAssertEqual(read.binary(1).map(UInt16.init), object, name)
        }
    }

    /// Palette masks are read by index: the colours (red background, black object) would invert the mask.
    func testPaletteMasksAreReadByIndexNotColour() throws {
        let decoded = try PNG.read(mask("object_palette.png"))
        XCTAssertEqual(decoded.channels, 4, "the ordinary decode expands the palette (and its tRNS) to RGBA")
        XCTAssertEqual(Array(decoded.pixels[0..<4]), [200, 30, 30, 0], "pixel 0,0 is background, red")
        let read = try MaskReader.read(mask("object_palette.png"), labelCount: 1)
        XCTAssertEqual(read.labels[0], 0)
        XCTAssertEqual(read.labels[4 * width + 5], 1, "pixel 5,4 is the object, black")
    }

    func testLabelMapsOfEveryKindGiveTheLabels() throws {
        let labels = expected(label)
        for name in ["labels_gray8", "labels_gray16", "labels_gray2", "labels_rgb", "labels_palette"] {
            let read = try MaskReader.read(mask(name + ".png"), labelCount: 2)
            XCTAssertEqual(read.labels, labels, name)
            XCTAssertEqual(read.presentLabels, [1, 2], name)
            XCTAssertEqual(read.binary(2).map(UInt16.init), labels.map { $0 == 2 ? 1 : 0 }, name)
            // With one label every nonzero value is the object.
            XCTAssertEqual(
                try MaskReader.read(mask(name + ".png"), labelCount: 1).labels, labels.map { $0 != 0 ? 1 : 0 }, name)
        }
        // More declared labels than present is fine.
        XCTAssertEqual(try MaskReader.read(mask("labels_gray8.png"), labelCount: 5).presentLabels, [1, 2])
    }

    func testAColourPixelIsAnErrorNamingTheFileAndTheFirstSuchPixel() {
        for labelCount in [1, 3] {
            assertIOError(
                try MaskReader.read(mask("error_color.png"), labelCount: labelCount), names: "error_color.png",
                contains: "mask is a color image (pixel 7,5 is RGB 255,0,0, not gray)")
        }
    }

    func testAValueBeyondTheLabelsIsAnErrorNamingTheValueAndPixel() throws {
        assertIOError(
            try MaskReader.read(mask("error_label3.png"), labelCount: 2), names: "error_label3.png",
            contains: "mask value 3 at pixel 9,6 is not a declared label (0...2)")
        // A 0/255 mask is a binary mask, not a label map of 2 labels.
        assertIOError(
            try MaskReader.read(mask("object_gray8_255.png"), labelCount: 2), names: "object_gray8_255.png",
            contains: "mask value 255 at pixel 5,4 is not a declared label (0...2)")
        XCTAssertEqual(try MaskReader.read(mask("error_label3.png"), labelCount: 3).presentLabels, [1, 2, 3])
    }

    func testUnreadableFilesAreErrorsNamingTheFile() throws {
        let dir = try TemporaryDirectory()
        let garbage = try dir.write([1, 2, 3, 4, 5, 6, 7, 8, 9], "garbage.png")
        assertIOError(try MaskReader.read(garbage, labelCount: 1), names: "garbage.png", contains: "cannot decode PNG")
        assertIOError(
            try MaskReader.read(dir.path("missing.png"), labelCount: 1), names: "missing.png", contains: "cannot open")
    }

    /// The bytes path is the file path.
    func testReadingBytesMatchesReadingTheFile() throws {
        let bytes = try fixtureBytes("masks/labels_palette.png")
        XCTAssertEqual(
            try MaskReader.read(data: bytes, name: "upload", labelCount: 2),
            try MaskReader.read(mask("labels_palette.png"), labelCount: 2))
    }
}

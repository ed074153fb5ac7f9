import Foundation
import XCTest
@testable import RAGSegIO

/// A PNG whose header declares width x height 8-bit gray pixels, followed by a token IDAT and IEND: libpng
/// reads the header (and stops at IDAT) before any pixel is decoded, so only the size matters.
func headerOnlyPNG(width: UInt32, height: UInt32) -> [UInt8] {
    func be(_ v: UInt32) -> [UInt8] {
        [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)]
    }
    func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let body = Array(type.utf8) + data
        return be(UInt32(data.count)) + body + crc32BigEndian(body)
    }
    return [137, 80, 78, 71, 13, 10, 26, 10] + chunk("IHDR", be(width) + be(height) + [8, 0, 0, 0, 0])
        + chunk("IDAT", [0x78, 0x9C, 0x03, 0x00]) + chunk("IEND", [])
}

final class PixelLimitTests: XCTestCase {
    override func tearDown() {
        PNG.setMaxPixels(nil)
        unsetenv(PNG.maxPixelsVariable)
    }

    func testDefaultLimitIsTwoToThe25Pixels() throws {
        XCTAssertEqual(PNG.defaultMaxPixels, 33_554_432)
        XCTAssertEqual(try PNG.maxPixels(), 33_554_432)
    }

    /// The 16000x16000 canvas is refused from its header, before gigabytes are allocated; the
    /// message names the file, the size, the limit and both ways to raise it.
    func testAHugeCanvasIsRefusedBeforeDecoding() throws {
        let dir = try TemporaryDirectory()
        let path = try dir.write(headerOnlyPNG(width: 16000, height: 16000), "canvas.png")
        assertIOError(
            try PNG.read(path), names: "canvas.png",
            contains:
                """
                image is 16000x16000 (256000000 pixels), over the limit of 33554432 pixels; raise it with --max-pixels \
                N or RAGSEG_MAX_PIXELS=N
                """
        )
        // Just over the limit (5793 x 5793 = 33558849) is refused too; the refusal is about size, not the
        // token pixel data, which a raised limit then reaches (and rejects as the broken data it is).
        let over = try dir.write(headerOnlyPNG(width: 5793, height: 5793), "over.png")
        assertIOError(try PNG.read(over), names: "over.png", contains: "over the limit of 33554432 pixels")
        PNG.setMaxPixels(5793 * 5793)
        do {
            _ = try PNG.read(over)
            XCTFail("token pixel data decoded")
        } catch let error as RAGSegIOError {
            XCTAssertFalse(error.message.contains("over the limit"), error.message)
            XCTAssertTrue(error.message.hasPrefix("cannot decode PNG"), error.message)
        }
    }

    /// The environment variable sets the limit; `setMaxPixels` (the commands' --max-pixels) overrides it.
    func testEnvironmentVariableAndOverride() throws {
        let dir = try TemporaryDirectory()
        let pixels = [UInt8](repeating: 7, count: 32 * 32)
        let path = dir.path("small.png")
        try PNG.writeGray8(pixels, width: 32, height: 32, to: path)
        XCTAssertEqual(try PNG.read(path).pixels.count, 1024)
        setenv(PNG.maxPixelsVariable, "1023", 1)
        assertIOError(
            try PNG.read(path), names: "small.png",
            contains: "image is 32x32 (1024 pixels), over the limit of 1023 pixels")
        setenv(PNG.maxPixelsVariable, "1024", 1)
        XCTAssertEqual(try PNG.read(path).pixels.map(UInt8.init), pixels, "exactly at the limit is allowed")
        PNG.setMaxPixels(100)
        assertIOError(try PNG.read(path), names: "small.png", contains: "over the limit of 100 pixels")
        PNG.setMaxPixels(nil)
        setenv(PNG.maxPixelsVariable, "lots", 1)
        assertIOError(
            try PNG.read(path), names: "RAGSEG_MAX_PIXELS", contains: "must be a positive number of pixels, got 'lots'")
        setenv(PNG.maxPixelsVariable, "0", 1)
        assertIOError(try PNG.read(path), names: "RAGSEG_MAX_PIXELS", contains: "got '0'")
    }
}

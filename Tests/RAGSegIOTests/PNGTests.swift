import Foundation
import XCTest
import TensorCore
@testable import RAGSegIO

/// PNG: fixtures written by Pillow (and two hand-encoded ones: 16-bit RGB, 2-bit gray); expected
/// samples decoded by Pillow/numpy and stored as int32 .npy. Tolerance: exact.
final class PNGTests: XCTestCase {
    private func check(_ name: String, channels: Int, bitDepth: Int, file: StaticString = #filePath, line: UInt = #line)
        throws
    {
        let image = try PNG.read(fixture("\(name).png"))
        let expected = try NPY.readArray(fixture("\(name).npy"))
        XCTAssertEqual(image.height, expected.shape[0], "\(name) height", file: file, line: line)
        XCTAssertEqual(image.width, expected.shape[1], "\(name) width", file: file, line: line)
        XCTAssertEqual(image.channels, channels, "\(name) channels", file: file, line: line)
        XCTAssertEqual(
            expected.shape.count == 3 ? expected.shape[2] : 1, channels, "\(name) fixture channels", file: file,
            line: line)
        XCTAssertEqual(image.bitDepth, bitDepth, "\(name) bit depth", file: file, line: line)
        XCTAssertEqual(image.pixels.map { Int64($0) }, expected.int64, "\(name) pixels", file: file, line: line)
    }

    func testGray8() throws { try check("png_gray8", channels: 1, bitDepth: 8) }
    func testGray16KeepsSixteenBitsInHostOrder() throws { try check("png_gray16", channels: 1, bitDepth: 16) }
    func testGrayAlpha() throws { try check("png_gray_alpha", channels: 2, bitDepth: 8) }
    func testRGB() throws { try check("png_rgb", channels: 3, bitDepth: 8) }
    func testRGBA() throws { try check("png_rgba", channels: 4, bitDepth: 8) }
    func testRGB16() throws { try check("png_rgb16", channels: 3, bitDepth: 16) }
    func testPaletteExpandsToRGB() throws { try check("png_palette", channels: 3, bitDepth: 8) }
    func testPaletteWithTransparencyExpandsToRGBA() throws { try check("png_palette_trns", channels: 4, bitDepth: 8) }
    func testOneBitExpandsTo0And255() throws { try check("png_1bit", channels: 1, bitDepth: 8) }
    func testTwoBitGrayExpandsByReplication() throws { try check("png_gray2", channels: 1, bitDepth: 8) }

    func testReadFromMemoryMatchesFile() throws {
        let bytes = try fixtureBytes("png_rgba.png")
        XCTAssertEqual(try PNG.read(data: bytes, name: "upload.png"), try PNG.read(fixture("png_rgba.png")))
    }

    func testFloatHelpers() throws {
        let gray16 = try PNG.read(fixture("png_gray16.png"))
        let g = gray16.grayscaleFloat()
        XCTAssertEqual(g.shape, [gray16.height, gray16.width])
        XCTAssertEqual(g.data[5], Float(gray16.pixels[5]) / 65535)

        let rgba = try PNG.read(fixture("png_rgba.png"))
        let expected = try NPY.readArray(fixture("png_rgba.npy")).int64!  // [H, W, 4]
        let rgb = rgba.rgbFloat()
        XCTAssertEqual(rgb.shape, [3, rgba.height, rgba.width])
        let (y, x) = (3, 11), n = rgba.width * rgba.height
        for c in 0..<3 {
            XCTAssertEqual(
                rgb.data[c * n + y * rgba.width + x], Float(expected[(y * rgba.width + x) * 4 + c]) / 255,
                accuracy: 1e-7)
        }
        let luma = rgba.grayscaleFloat().data[y * rgba.width + x]
        let (r, gg, b) = (
            Float(expected[(y * rgba.width + x) * 4]), Float(expected[(y * rgba.width + x) * 4 + 1]),
            Float(expected[(y * rgba.width + x) * 4 + 2])
        )
        XCTAssertEqual(luma, (0.299 * r + 0.587 * gg + 0.114 * b) / 255, accuracy: 1e-6)

        let gray8 = try PNG.read(fixture("png_gray8.png"))
        let replicated = gray8.rgbFloat()
        XCTAssertEqual(
            Array(replicated.data[0..<(gray8.width * gray8.height)]),
            Array(replicated.data[(gray8.width * gray8.height)...].prefix(gray8.width * gray8.height)))
        XCTAssertEqual(replicated.data[7], Float(gray8.pixels[7]) / 255)
    }

    func testWriteGrayAndRGBRoundTrip() throws {
        let dir = try TemporaryDirectory()
        let (w, h) = (17, 9)
        let gray = (0..<(w * h)).map { UInt8(($0 * 37) & 0xFF) }
        try PNG.writeGray8(gray, width: w, height: h, to: dir.path("gray.png"))
        let g = try PNG.read(dir.path("gray.png"))
        XCTAssertEqual([g.width, g.height, g.channels, g.bitDepth], [w, h, 1, 8])
        XCTAssertEqual(g.pixels, gray.map(UInt16.init))

        let rgb = (0..<(w * h * 3)).map { UInt8(($0 * 11 + 5) & 0xFF) }
        try PNG.writeRGB8(rgb, width: w, height: h, to: dir.path("rgb.png"))
        let c = try PNG.read(dir.path("rgb.png"))
        XCTAssertEqual([c.width, c.height, c.channels, c.bitDepth], [w, h, 3, 8])
        XCTAssertEqual(c.pixels, rgb.map(UInt16.init))

        let encoded = PNG.encodeGray8(gray, width: w, height: h)
        XCTAssertEqual(Array(encoded.prefix(8)), [137, 80, 78, 71, 13, 10, 26, 10])
        XCTAssertEqual(try PNG.read(data: encoded, name: "memory").pixels, gray.map(UInt16.init))
        XCTAssertEqual(
            try PNG.read(data: PNG.encodeRGB8(rgb, width: w, height: h), name: "memory").pixels, rgb.map(UInt16.init))

        assertIOError(
            try PNG.writeGray8([1, 2, 3], width: 2, height: 2, to: dir.path("short.png")), names: "short.png",
            contains: "needs 4 bytes")
        assertIOError(try PNG.writeRGB8([], width: 0, height: 0, to: dir.path("empty.png")), names: "empty.png")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path("short.png")))
    }

    // MARK: bad input: errors name the file, never a crash.

    func testTruncatedPNGsThrow() throws {
        let good = try fixtureBytes("png_rgb.png")
        let dir = try TemporaryDirectory()
        // Inside the signature, inside IHDR, right after IHDR, mid-IDAT, and just before/inside IEND.
        for cut in [0, 4, 8, 20, 33, 45, good.count / 2, good.count - 12, good.count - 5, good.count - 1] {
            let p = try dir.write(Array(good[..<cut]), "cut\(cut).png")
            assertIOError(try PNG.read(p), names: "cut\(cut).png")
        }
    }

    func testGarbageAndWrongSignatureThrow() throws {
        let dir = try TemporaryDirectory()
        var generator = SystemRandomNumberGenerator()
        let noise = (0..<300).map { _ in UInt8.random(in: 0...255, using: &generator) }
        assertIOError(try PNG.read(dir.write(noise, "noise.png")), names: "noise.png")
        assertIOError(try PNG.read(fixture("np_f4.npy")), names: "np_f4.npy", contains: "signature")
        // The right signature followed by garbage.
        let signed = [137, 80, 78, 71, 13, 10, 26, 10] + noise
        assertIOError(try PNG.read(dir.write(signed, "signed.png")), names: "signed.png")
        var wrongSignature = try fixtureBytes("png_gray8.png")
        wrongSignature[1] = 0x51
        assertIOError(try PNG.read(dir.write(wrongSignature, "sig.png")), names: "sig.png", contains: "signature")
        assertIOError(try PNG.read(dir.path("absent.png")), names: "absent.png")
        assertIOError(try PNG.read(data: [], name: "upload-0"), names: "upload-0")
    }

    func testCRCCorruptedChunksThrow() throws {
        let good = try fixtureBytes("png_rgb.png")
        let dir = try TemporaryDirectory()
        // IHDR data starts at byte 16 (8 signature + 4 length + 4 type); its CRC no longer matches.
        var ihdr = good
        ihdr[20] ^= 0x01
        assertIOError(try PNG.read(dir.write(ihdr, "ihdr.png")), names: "ihdr.png", contains: "CRC")
        // Corrupt one byte of IDAT data, found by scanning chunks.
        var offset = 8
        var idatData: Int?
        while offset + 8 <= good.count {
            let length = good[offset..<(offset + 4)].reduce(0) { $0 << 8 | Int($1) }
            if String(decoding: good[(offset + 4)..<(offset + 8)], as: UTF8.self) == "IDAT" {
                idatData = offset + 8; break
            }
            offset += 12 + length
        }
        let start = try XCTUnwrap(idatData)
        let idatLength = good[(start - 8)..<(start - 4)].reduce(0) { $0 << 8 | Int($1) }
        // A flipped bit in the compressed data: zlib or the CRC check catches it, whichever runs first.
        var idat = good
        idat[start + 10] ^= 0x40
        assertIOError(try PNG.read(dir.write(idat, "idat.png")), names: "idat.png")
        // Intact data, wrong CRC field.
        var idatCRC = good
        idatCRC[start + idatLength] ^= 0x01
        assertIOError(try PNG.read(dir.write(idatCRC, "idatcrc.png")), names: "idatcrc.png", contains: "CRC")
    }

    /// An IHDR that claims an absurd size (with a valid CRC) is refused before any allocation.
    func testOversizedHeaderIsRefused() throws {
        var png: [UInt8] = [137, 80, 78, 71, 13, 10, 26, 10]
        // 1048576 x 1048576 RGBA
        let ihdr: [UInt8] = Array("IHDR".utf8) + [0x00, 0x10, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 8, 6, 0, 0, 0]
        png += [0, 0, 0, 13] + ihdr + crc32BigEndian(ihdr)
        let dir = try TemporaryDirectory()
        assertIOError(try PNG.read(dir.write(png, "huge.png")), names: "huge.png", contains: "limit")
    }
}

/// CRC-32 (PNG/zlib polynomial), computed bit by bit: independent of libpng.
func crc32BigEndian(_ bytes: [UInt8]) -> [UInt8] {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in bytes {
        crc ^= UInt32(byte)
        for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
    }
    crc ^= 0xFFFF_FFFF
    return [UInt8(crc >> 24), UInt8((crc >> 16) & 0xFF), UInt8((crc >> 8) & 0xFF), UInt8(crc & 0xFF)]
}

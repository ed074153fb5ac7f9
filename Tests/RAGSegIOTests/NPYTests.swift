import Foundation
import XCTest
import TensorCore
@testable import RAGSegIO

/// .npy: files written by numpy (tools/make_io_fixtures.py); the expected values below are the
/// formulas the script used. Tolerance: exact (float64 -> float32 compares against Float(Double)).
final class NPYTests: XCTestCase {
    func testReadsNumpyFloat32() throws {
        let t = try NPY.read(fixture("np_f4.npy"))
        XCTAssertEqual(t.shape, [2, 3])
        XCTAssertEqual(t.data, [-1, -0.5, 0, 0.5, 1, 1.5])
        let cube = try NPY.readArray(fixture("np_f4_3d.npy"))
        XCTAssertEqual(cube.shape, [2, 3, 4])
        XCTAssertEqual(cube.float32, (0..<24).map(Float.init))
    }

    func testReadsNumpyFloat64AsFloat32() throws {
        let t = try NPY.read(fixture("np_f8.npy"))
        XCTAssertEqual(t.shape, [3])
        XCTAssertEqual(t.data, [Float(1.0 / 3.0), -2, Float(1e-3)])
    }

    func testReadsNumpyUInt8AndBool() throws {
        let u = try NPY.readArray(fixture("np_u1.npy"))
        XCTAssertEqual(u.shape, [2, 2])
        XCTAssertEqual(u.values, .uint8([0, 1, 128, 255]))
        XCTAssertEqual(try NPY.read(fixture("np_u1.npy")).data, [0, 1, 128, 255])
        let b = try NPY.readArray(fixture("np_b1.npy"))
        XCTAssertEqual(b.values, .uint8([1, 0, 1]))
    }

    func testReadsNumpyInt64AndInt32() throws {
        let i = try NPY.readArray(fixture("np_i8.npy"))
        XCTAssertEqual(i.shape, [4])
        XCTAssertEqual(i.int64, [-(1 << 40), -1, 0, (1 << 40) + 1])
        let k = try NPY.readArray(fixture("np_i4.npy"))
        XCTAssertEqual(k.values, .int64([-5, 2147483647]))
    }

    func testReadsScalarAndVersion2() throws {
        let s = try NPY.read(fixture("np_scalar.npy"))
        XCTAssertEqual(s.shape, [])
        XCTAssertEqual(s.data, [3.5])
        let v2 = try NPY.read(fixture("np_v2.npy"))
        XCTAssertEqual(v2.shape, [1, 2])
        XCTAssertEqual(v2.data, [1.5, 2.5])
    }

    func testRoundTripsAllWriteTypes() throws {
        let dir = try TemporaryDirectory()
        let t = Tensor(shape: [2, 1, 3], data: [1, -2.5, .infinity, -0.0, 1e-38, 3.4e38])
        try NPY.write(t, to: dir.path("f.npy"))
        let back = try NPY.read(dir.path("f.npy"))
        XCTAssertEqual(back.shape, t.shape)
        assertBitwiseEqual(back.data, t.data, "f4")
        try NPY.write(Tensor(shape: [5], data: [1, 2, 3, 4, 5]), to: dir.path("one.npy"))
        XCTAssertEqual(try NPY.read(dir.path("one.npy")).shape, [5])
        try NPY.write(Tensor(shape: [], data: [9]), to: dir.path("scalar.npy"))
        XCTAssertEqual(try NPY.read(dir.path("scalar.npy")).shape, [])

        try NPY.write(uint8: [0, 7, 255, 128], shape: [2, 2], to: dir.path("u.npy"))
        XCTAssertEqual(
            try NPY.readArray(dir.path("u.npy")), NPYArray(shape: [2, 2], values: .uint8([0, 7, 255, 128])))
        try NPY.write(int64: [Int64.min, -1, Int64.max], shape: [3], to: dir.path("i.npy"))
        XCTAssertEqual(
            try NPY.readArray(dir.path("i.npy")), NPYArray(shape: [3], values: .int64([Int64.min, -1, Int64.max])))

        // numpy's layout: header padded so the data starts on a 64-byte boundary, v1.0, ends in '\n'.
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: dir.path("u.npy"))))
        let headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
        XCTAssertEqual(Array(bytes[6..<8]), [1, 0])
        XCTAssertEqual((10 + headerLength) % 64, 0)
        XCTAssertEqual(bytes[10 + headerLength - 1], 0x0A)
        let header = String(decoding: bytes[10..<(10 + headerLength)], as: UTF8.self)
        XCTAssertTrue(header.hasPrefix("{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2), }"), header)

        assertIOError(try NPY.write(uint8: [1, 2, 3], shape: [2, 2], to: dir.path("bad.npy")), names: "bad.npy")
    }

    // MARK: bad input

    func testFortranOrderAndBigEndianAreRejected() {
        assertIOError(try NPY.read(fixture("np_fortran.npy")), names: "np_fortran.npy", contains: "Fortran")
        assertIOError(try NPY.read(fixture("np_bigendian.npy")), names: "np_bigendian.npy", contains: ">f4")
    }

    func testTruncatedAndGarbageFilesThrow() throws {
        let good = try fixtureBytes("np_f4_3d.npy")
        let dir = try TemporaryDirectory()
        for cut in [0, 5, 9, 40, 128, good.count - 1] {
            let p = try dir.write(Array(good[..<cut]), "cut\(cut).npy")
            assertIOError(try NPY.read(p), names: "cut\(cut).npy")
        }
        assertIOError(try NPY.read(dir.write(good + [0], "long.npy")), names: "long.npy")
        assertIOError(
            try NPY.read(dir.write(Array("hello, this is not an npy file at all".utf8), "text.npy")), names: "text.npy",
            contains: "magic")
        var badHeader = good
        badHeader.replaceSubrange(10..<20, with: Array("[[[[[[[[[[".utf8))
        assertIOError(try NPY.read(dir.write(badHeader, "header.npy")), names: "header.npy", contains: "header")
        assertIOError(try NPY.read(dir.path("absent.npy")), names: "absent.npy")
        // Deeply nested header (v2.0, 200000 '(' characters): rejected, no stack overflow.
        let nested = [UInt8](repeating: 0x28, count: 200_000)
        let deep: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 2, 0, 0x40, 0x0D, 0x03, 0x00] + nested
        assertIOError(try NPY.read(dir.write(deep, "deep.npy")), names: "deep.npy", contains: "header")
    }
}

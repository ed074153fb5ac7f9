import Foundation
import XCTest
import TensorCore
@testable import RAGSegIO

/// safetensors: fixtures written by the `safetensors` Python package (numpy and torch back ends),
/// expected values saved by numpy/torch as .npy. Tolerance: exact (F16/BF16 -> F32 is lossless).
final class SafeTensorsTests: XCTestCase {
    func testReadsF32FixtureWithMetadata() throws {
        let file = try SafeTensors(path: fixture("st_f32.safetensors"))
        XCTAssertEqual(file.names, ["a", "b.weight", "scalar"])
        XCTAssertEqual(file.metadata, ["format": "np"])
        XCTAssertTrue(file.contains("b.weight"))
        XCTAssertFalse(file.contains("__metadata__"))
        XCTAssertEqual(file.entry("a")?.dtype, "F32")
        XCTAssertEqual(file.entry("a")?.shape, [3, 5])
        XCTAssertNil(file.entry("missing"))
        let a = try file.tensor("a"), expectedA = try NPY.read(fixture("st_f32_a.npy"))
        XCTAssertEqual(a.shape, [3, 5])
        assertBitwiseEqual(a.data, expectedA.data, "a")
        let b = try file.tensor("b.weight"), expectedB = try NPY.read(fixture("st_f32_b.npy"))
        XCTAssertEqual(b.shape, [2, 2, 3])
        assertBitwiseEqual(b.data, expectedB.data, "b.weight")
        let scalar = try file.tensor("scalar")
        XCTAssertEqual(scalar.shape, [])
        XCTAssertEqual(scalar.data, [7.25])
    }

    func testReadsF16FixtureIncludingSubnormalsAndInfinities() throws {
        let file = try SafeTensors(path: fixture("st_f16.safetensors"))
        XCTAssertEqual(file.entry("h")?.dtype, "F16")
        let h = try file.tensor("h")
        XCTAssertEqual(h.shape, [4, 6])
        assertBitwiseEqual(h.data, try NPY.read(fixture("st_f16_h.npy")).data, "h")
        XCTAssertTrue(h.data.contains(.infinity) && h.data.contains(-.infinity))
        XCTAssertTrue(h.data.contains { $0 != 0 && abs($0) < 6.1e-5 }, "fixture should contain a subnormal half")
        let odd = try file.tensor("odd")
        assertBitwiseEqual(odd.data, try NPY.read(fixture("st_f16_odd.npy")).data, "odd")
    }

    func testReadsBF16FixtureWrittenByTorch() throws {
        let file = try SafeTensors(path: fixture("st_bf16.safetensors"))
        XCTAssertEqual(file.entry("w")?.dtype, "BF16")
        XCTAssertEqual(file.metadata["format"], "pt")
        let w = try file.tensor("w")
        XCTAssertEqual(w.shape, [3, 8])
        assertBitwiseEqual(w.data, try NPY.read(fixture("st_bf16_w.npy")).data, "w")
    }

    func testConvertsIntegerFloat64AndBoolTensors() throws {
        let file = try SafeTensors(path: fixture("st_mixed.safetensors"))
        XCTAssertEqual(file.entry("d")?.dtype, "F64")
        XCTAssertEqual(try file.tensor("d").data, [1.5, -2.25, 1e10])
        XCTAssertEqual(file.entry("i")?.dtype, "I64")
        XCTAssertEqual(try file.tensor("i").data, [-3, 0, 7, 123456])
        XCTAssertEqual(try file.tensor("i").shape, [2, 2])
        XCTAssertEqual(try file.tensor("k").data, [-7, 9])
        XCTAssertEqual(try file.tensor("u").data, [0, 255, 17])
        XCTAssertEqual(file.entry("flag")?.dtype, "BOOL")
        XCTAssertEqual(try file.tensor("flag").data, [1, 0, 1])
    }

    func testRoundTripSortsNamesAndAlignsData() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path("round.safetensors")
        let z = Tensor(shape: [2, 3], data: [1, -2, 3.5, .infinity, -0.0, 1e-30])
        let a = Tensor(shape: [4], data: [0.1, 0.2, 0.3, 0.4])
        let empty = Tensor(shape: [0, 5], data: [])
        let name = "blocks.0.\"odd\\name\""
        try SafeTensors.write([("z", z), (name, a), ("empty", empty)], to: path)
        let file = try SafeTensors(path: path)
        XCTAssertEqual(file.names, [name, "empty", "z"].sorted())
        assertBitwiseEqual(try file.tensor("z").data, z.data, "z")
        XCTAssertEqual(try file.tensor("z").shape, [2, 3])
        assertBitwiseEqual(try file.tensor(name).data, a.data, "a")
        XCTAssertEqual(try file.tensor("empty").shape, [0, 5])
        // The data area starts on an 8-byte boundary and the header padding is spaces.
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let headerLength = bytes[0..<8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        XCTAssertEqual((8 + headerLength) % 8, 0)
        let headerText = String(decoding: bytes[8..<(8 + headerLength)], as: UTF8.self)
        XCTAssertTrue(headerText.hasPrefix("{") && headerText.drop { $0 != "}" }.count > 0)
        let trimmed = headerText.reversed().drop { $0 == " " }
        XCTAssertEqual(trimmed.first, "}", "header padding must be spaces after the JSON object")
        XCTAssertEqual(bytes.count, 8 + headerLength + 4 * (6 + 4))
        XCTAssertThrowsError(try SafeTensors.write([("x", a), ("x", a)], to: dir.path("dup.safetensors")))
    }

    /// A hand-built file whose data area starts at an odd offset: reads must not assume alignment.
    func testReadsUnalignedData() throws {
        let values: [Float] = [1.5, -2, 3.25]
        let bytes = safetensorsBytes(
            header: #"{"x":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}}"#,
            data: values.flatMap { v in withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } })
        let header = #"{"x":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}}"#
        XCTAssertNotEqual((8 + header.utf8.count) % 4, 0, "test needs an unaligned data start")
        let dir = try TemporaryDirectory()
        let file = try SafeTensors(path: dir.write(bytes, "unaligned.safetensors"))
        XCTAssertEqual(try file.tensor("x").data, values)
    }

    // MARK: bad input: every case throws an error naming the file, never traps.

    func testMissingTensorNamesFileAndTensor() throws {
        let file = try SafeTensors(path: fixture("st_f32.safetensors"))
        assertIOError(try file.tensor("blocks.9.nope"), names: "st_f32.safetensors", contains: "blocks.9.nope")
    }

    func testMissingAndEmptyFiles() throws {
        let dir = try TemporaryDirectory()
        assertIOError(try SafeTensors(path: dir.path("absent.safetensors")), names: "absent.safetensors")
        assertIOError(
            try SafeTensors(path: dir.write([], "empty.safetensors")), names: "empty.safetensors", contains: "too short"
        )
        assertIOError(try SafeTensors(path: dir.url.path), names: dir.url.lastPathComponent)
    }

    func testTruncatedFilesThrow() throws {
        let good = try fixtureBytes("st_f32.safetensors")
        let dir = try TemporaryDirectory()
        let headerLength = Int(good[0]) | Int(good[1]) << 8
        for cut in [3, 8, 8 + headerLength / 2, 8 + headerLength, good.count - 1] {
            let p = try dir.write(Array(good[..<cut]), "cut\(cut).safetensors")
            assertIOError(try SafeTensors(path: p), names: "cut\(cut).safetensors")
        }
    }

    func testGarbageThrows() throws {
        let dir = try TemporaryDirectory()
        var generator = SystemRandomNumberGenerator()
        let noise = (0..<256).map { _ in UInt8.random(in: 0...255, using: &generator) }
        assertIOError(try SafeTensors(path: dir.write(noise, "noise.safetensors")), names: "noise.safetensors")
        // Plausible length prefix, then non-JSON.
        let fake = safetensorsBytes(header: "this is {not json", data: [])
        assertIOError(
            try SafeTensors(path: dir.write(fake, "fake.safetensors")), names: "fake.safetensors", contains: "JSON")
        let array = safetensorsBytes(header: "[1,2,3]", data: [])
        assertIOError(
            try SafeTensors(path: dir.write(array, "array.safetensors")), names: "array.safetensors",
            contains: "not an object")
        let badDtype = safetensorsBytes(header: #"{"x":{"dtype":"Q7","shape":[1],"data_offsets":[0,1]}}"#, data: [0])
        assertIOError(
            try SafeTensors(path: dir.write(badDtype, "dtype.safetensors")), names: "dtype.safetensors",
            contains: "unknown dtype 'Q7'")
        let badShape = safetensorsBytes(
            header: #"{"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0])
        assertIOError(
            try SafeTensors(path: dir.write(badShape, "shape.safetensors")), names: "shape.safetensors", contains: "'x'"
        )
        let badOffsets = safetensorsBytes(
            header: #"{"x":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}"#, data: [0, 0, 0, 0])
        assertIOError(
            try SafeTensors(path: dir.write(badOffsets, "offsets.safetensors")), names: "offsets.safetensors",
            contains: "'x'")
        let huge = safetensorsBytes(
            header: #"{"x":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,0]}}"#, data: [])
        assertIOError(
            try SafeTensors(path: dir.write(huge, "huge.safetensors")), names: "huge.safetensors", contains: "'x'")
    }

    func testHeaderLyingAboutSizeThrows() throws {
        let dir = try TemporaryDirectory()
        let lying = safetensorsBytes(
            header: #"{"blocks.0.attn.qkv.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}}"#,
            data: [UInt8](repeating: 0, count: 20))
        assertIOError(
            try SafeTensors(path: dir.write(lying, "model.safetensors")), names: "model.safetensors",
            contains: "tensor 'blocks.0.attn.qkv.weight' claims 2x3 F32 (24 bytes) but its data range is 20 bytes")
        // A length prefix larger than the file.
        var prefix = safetensorsBytes(header: "{}", data: [])
        prefix[0] = 0xFF; prefix[5] = 0x7F
        assertIOError(
            try SafeTensors(path: dir.write(prefix, "prefix.safetensors")), names: "prefix.safetensors",
            contains: "header claims")
    }

    func testOverlappingRangesThrow() throws {
        let dir = try TemporaryDirectory()
        let overlap = safetensorsBytes(
            header: #"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"#
                + #""b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}"#,
            data: [UInt8](repeating: 0, count: 24))
        assertIOError(
            try SafeTensors(path: dir.write(overlap, "overlap.safetensors")), names: "overlap.safetensors",
            contains: "overlapping")
    }

    func testOffsetsBeyondEndThrow() throws {
        let dir = try TemporaryDirectory()
        let beyond = safetensorsBytes(
            header: #"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, data: [UInt8](repeating: 0, count: 8))
        assertIOError(
            try SafeTensors(path: dir.write(beyond, "beyond.safetensors")), names: "beyond.safetensors",
            contains: "past the end")
    }
}

/// length prefix (little-endian) + header text + data, built by hand (independent of the writer).
func safetensorsBytes(header: String, data: [UInt8]) -> [UInt8] {
    let h = Array(header.utf8)
    var out = (0..<8).map { UInt8((h.count >> (8 * $0)) & 0xFF) }
    out += h
    out += data
    return out
}

import Foundation
import RAGSegTestSupport
import SAM2
import TensorCore
import XCTest
@testable import SupportBank

/// `--memory-codec int8`: per-channel int8 memories with an fp32 scale, decoded to bf16 on read.
final class MemoryCodecTests: XCTestCase {
    let shape = MemoryShape(channels: 3, height: 4, width: 4, pointerDimension: 2)

    func memory(_ values: [Float]) -> SupportMemory {
        SupportMemory(
            channels: shape.channels, height: shape.height, width: shape.width,
            memoryBits: values.map(bfloat16Bits), pointer: [0.25, -4], isEmpty: false)
    }

    /// Hand-computed values: channel 0 has max |x| 1.984375 = 127/64, so scale 1/64 and x -> round(x * 64) / 64
    /// (halves away from zero; inputs are bf16 first, e.g. 0.3 is 0.30078125 = 19.25/64 -> 19/64); every
    /// result is exact in fp32 and bf16. Channel 1 is all zeros (scale 0); channel 2 is negative-only.
    func testInt8RoundTripMatchesHandComputedValues() throws {
        var values = [Float](repeating: 0, count: 48)
        let channel0: [Float] = [
            1.984375, -1.984375, 1, -0.5, 0.0078125, -0.0078125, 0.0390625, 0.01, 0.02, 0.03, 0.3, -0.3, 1.5, 0, 0.1,
            1.2,
        ]
        let expected0: [Float] = [
            1.984375, -1.984375, 1, -0.5, 0.015625, -0.015625, 0.046875, 0.015625, 0.015625, 0.03125, 0.296875,
            -0.296875, 1.5, 0, 0.09375, 1.203125,
        ]
        let channel2: [Float] = (0..<16).map { -Float($0) * 8.5 + (($0 == 15) ? -0.5 : 0) }  // 0 ... -128
        for i in 0..<16 {
            values[i] = channel0[i]
            values[32 + i] = channel2[i]
        }
        let bank = try SupportBank.create(
            at: temporaryDirectory(),
            metadata: {
                var m = makeMetadata(dimension: 4, shape: shape)
                m.memoryCodec = .int8
                return m
            }())
        XCTAssertEqual(bank.metadata.formatVersion, 3)
        var rng = SeededGenerator(seed: 1)
        var prepared = makeCase(0, dimension: 4, rng: &rng, shape: shape)
        prepared.memories = [(1, memory(values))]
        let id = try bank.add([prepared])[0].id
        let decoded = try XCTUnwrap(try bank.memory(id, label: 1))
        let out = decoded.memoryBits.map { float(fromBFloat16: $0) }
        XCTAssertEqual(Array(out[0..<16]), expected0)
        XCTAssertEqual(Array(out[16..<32]), [Float](repeating: 0, count: 16), "a zero channel stays zero")
        // Channel 2: max |x| is 128, scale 128 / 127; each value within half a step (plus bf16 rounding).
        for i in 0..<16 {
            let x = float(fromBFloat16: bfloat16Bits(channel2[i]))
            XCTAssertEqual(out[32 + i], x, accuracy: 128 / 127 / 2 + abs(x) / 256, "\(i)")
            XCTAssertLessThanOrEqual(out[32 + i], 0)
        }
        XCTAssertEqual(decoded.pointer, [0.25, -4], "the object pointer stays fp32")
        // The record: 24-byte header (version 2) + 3 fp32 scales + 48 int8 + 2 fp32.
        let raw = try bank.read { txn in try txn.get(bank.memories, key: Codec.memoryKey(id, label: 1)) }
        XCTAssertEqual(raw?.count, 24 + 12 + 48 + 8)
        XCTAssertEqual(raw.map { Int($0[4]) | Int($0[5]) << 8 }, 2)
        XCTAssertEqual(MemoryCodec.int8.recordBytes(.sam2), 24 + 256 + 262_144 + 1024)
        XCTAssertTrue(bank.verify().ok)
    }

    /// Non-finite values cannot be scaled: refused before anything is written. A memory record of the other
    /// codec (bf16 in an int8 bank) is reported by verify and by reads, naming both codecs.
    func testInt8RefusesNonFiniteAndVerifyNamesAForeignRecord() throws {
        var metadata = makeMetadata(dimension: 4, shape: shape)
        metadata.memoryCodec = .int8
        let bank = try SupportBank.create(at: temporaryDirectory(), metadata: metadata)
        var rng = SeededGenerator(seed: 2)
        var bad = makeCase(0, dimension: 4, rng: &rng, shape: shape)
        var values = [Float](repeating: 1, count: 48)
        values[7] = .infinity
        bad.memories = [(1, memory(values))]
        XCTAssertThrowsError(try bank.add([bad])) { error in
            XCTAssertTrue("\(error)".contains("non-finite"), "\(error)")
        }
        XCTAssertEqual(try bank.statistics().cases, 0)

        let good = makeCase(1, dimension: 4, rng: &rng, shape: shape)
        let id = try bank.add([good])[0].id
        XCTAssertTrue(bank.verify().ok)
        try bank.env.write { txn in
            try txn.put(
                bank.memories, key: Codec.memoryKey(id, label: 1),
                value: Codec.encodeMemory(good.memories[0].memory, label: 1, shape: shape, codec: .bf16))
        }
        let report = bank.verify()
        XCTAssertFalse(report.ok)
        XCTAssertTrue(
            report.problems.contains { $0.contains("memory record is encoded bf16, the bank stores int8") },
            "\(report.problems)")
        XCTAssertThrowsError(try bank.memory(id, label: 1))
    }

    /// bf16-zstd is lossless, whatever the bits (NaN and infinity patterns included), and smaller for memory-like
    /// values; a frame that does not decode to the shape's values is reported, not trusted.
    func testZstdIsLosslessAndRejectsAForeignFrame() throws {
        let shape = MemoryShape(channels: 8, height: 16, width: 16, pointerDimension: 4)
        var metadata = makeMetadata(dimension: 4, shape: shape)
        metadata.memoryCodec = .bf16Zstd
        let bank = try SupportBank.create(at: temporaryDirectory(), metadata: metadata)
        XCTAssertEqual(bank.metadata.formatVersion, 3)
        var rng = SeededGenerator(seed: 3)
        var cases = [PreparedCase]()
        // Memory-like values (a few exponents), and arbitrary bit patterns.
        let smooth = (0..<shape.memoryCount).map { _ in bfloat16Bits(rng.gaussian() * 3) }
        let arbitrary = (0..<shape.memoryCount).map { _ in UInt16(truncatingIfNeeded: rng.next()) }
        for (n, bits) in [smooth, arbitrary].enumerated() {
            var c = makeCase(n, dimension: 4, rng: &rng, shape: shape)
            c.memories = [
                (
                    1,
                    SupportMemory(
                        channels: 8, height: 16, width: 16, memoryBits: bits, pointer: [1, 2, 3, 4], isEmpty: false)
                )
            ]
            cases.append(c)
        }
        let ids = try bank.add(cases).map(\.id)
        for (id, c) in zip(ids, cases) {
            XCTAssertEqual(try bank.memory(id, label: 1)?.memoryBits, c.memories[0].memory.memoryBits, "lossless")
        }
        let raw = try bank.read { txn in try txn.get(bank.memories, key: Codec.memoryKey(ids[0], label: 1)) }
        XCTAssertEqual(raw.map { Int($0[4]) }, 3, "record version 3")
        XCTAssertLessThan(try XCTUnwrap(raw).count, 24 + 4096 * 2 * 3 / 4 + 16, "memory-like values pack below 3/4")
        XCTAssertTrue(bank.verify().ok)

        // A valid frame (checksum right) of fewer values than the bank's shape.
        let small = SupportMemory(
            channels: 1, height: 16, width: 16, memoryBits: Array(smooth.prefix(256)), pointer: [1, 2, 3, 4],
            isEmpty: false)
        try bank.env.write { txn in
            try txn.put(
                bank.memories, key: Codec.memoryKey(ids[0], label: 1),
                value: Codec.encodeMemory(small, label: 1, shape: shape, codec: .bf16Zstd))
        }
        let report = bank.verify()
        XCTAssertTrue(
            report.problems.contains { $0.contains("bf16-zstd payload does not decode to 2048 values") },
            "\(report.problems)")
        XCTAssertThrowsError(try bank.memory(ids[0], label: 1))
    }

    /// Through the binary: create --memory-codec int8, add, info and verify; a bf16 bank's records stay
    /// version 1 (what every bank before codecs wrote); an unknown codec is refused.
    func testCLIMemoryCodec() throws {
        let dir = temporaryDirectory()
        let (images, masks) = try writeDataset(dir, count: 4)
        for codec in ["int8", "bf16", "bf16-zstd"] {
            let bank = dir + "/bank-\(codec)"
            let create = try runRagseg([
                "index", "create", bank, "--stand-in", "--dinov2-variant", "vits14", "--memory-shape", "8,16,16,16",
                "--memory-codec", codec,
            ])
            XCTAssertEqual(create.status, 0, create.stderr)
            let add = try runRagseg(["index", "add", bank, "--images", images, "--masks", masks, "--stand-in"])
            XCTAssertEqual(add.status, 0, add.stderr)
            let info = try runRagseg(["index", "info", bank])
            XCTAssertTrue(info.stdout.contains("stored \(codec)"), info.stdout)
            XCTAssertTrue(info.stdout.contains("format          \(codec == "bf16" ? 2 : 3)"), info.stdout)
            let verify = try runRagseg(["index", "verify", bank])
            XCTAssertEqual(verify.status, 0, verify.stdout)
            let opened = try SupportBank.open(at: bank, readOnly: true)
            let raw = try opened.read { txn in try txn.get(opened.memories, key: Codec.memoryKey(1, label: 1)) }
            XCTAssertEqual(raw.map { Int($0[4]) }, ["bf16": 1, "int8": 2, "bf16-zstd": 3][codec])
            if codec != "bf16-zstd" {
                let expectedBytes: Int = codec == "int8" ? 2168 : 4184  // 24 + 8*4 + 2048 + 16*4; 24 + 4096 + 64
                XCTAssertEqual(raw?.count, expectedBytes)
            }
        }
        let bad = try runRagseg(["index", "create", dir + "/bad", "--stand-in", "--memory-codec", "fp8"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("unknown --memory-codec fp8"), bad.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/bad/data.mdb"))
    }
}

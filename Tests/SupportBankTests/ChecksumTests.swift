import XCTest
@testable import SupportBank

final class ChecksumTests: XCTestCase {
    // FIPS 180-4 / NIST CAVP example digests.
    func testSHA256KnownVectors() {
        XCTAssertEqual(
            hexString(SHA256.hash([UInt8]())), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(
            hexString(SHA256.hash(Array("abc".utf8))),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(
            hexString(SHA256.hash(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(
            hexString(
                SHA256.hash(
                    Array(
                        ("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
                            + "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu")
                            .utf8))),
            "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1")
        XCTAssertEqual(
            hexString(SHA256.hash([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000))),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    /// Feeding the message in odd-sized pieces must give the same digest as one piece.
    func testSHA256IncrementalEqualsOneShot() {
        var rng = SeededGenerator(seed: 7)
        let message = (0..<1000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        var h = SHA256()
        var i = 0
        for size in [1, 63, 64, 65, 3, 200, 0, 604] {
            h.update(message[i..<(i + size)])
            i += size
        }
        XCTAssertEqual(i, 1000)
        XCTAssertEqual(h.finalize(), SHA256.hash(message))
    }

    func testSHA256OfFile() throws {
        let path = temporaryDirectory() + ".bin"
        try Data("abc".utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertEqual(
            hexString(try SHA256.hash(fileAt: path)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        )
        XCTAssertThrowsError(try SHA256.hash(fileAt: path + ".missing")) { error in
            XCTAssertTrue("\(error)".contains(".missing"), "error names the file: \(error)")
        }
    }

    /// The standard CRC-32 check value.
    func testCRC32CheckValue() {
        XCTAssertEqual(CRC32.checksum(Array("123456789".utf8)), 0xCBF4_3926)
    }

    /// Long and unaligned buffers, and chaining through `initial`, against a bit-at-a-time CRC-32 written here.
    func testCRC32MatchesABitwiseReference() {
        func reference(_ bytes: ArraySlice<UInt8>, _ initial: UInt32 = 0) -> UInt32 {
            var c = ~initial
            for b in bytes {
                c ^= UInt32(b)
                for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
            }
            return ~c
        }
        var rng = SeededGenerator(seed: 11)
        let data = (0..<(300_000 + 3)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let whole = data.withUnsafeBytes { CRC32.checksum($0) }
        XCTAssertEqual(whole, reference(data[...]))
        let tail = data.withUnsafeBytes { CRC32.checksum(UnsafeRawBufferPointer(rebasing: $0[3...])) }
        XCTAssertEqual(tail, reference(data[3...]))
        let head = data.withUnsafeBytes { CRC32.checksum(UnsafeRawBufferPointer(rebasing: $0[..<1000])) }
        let chained = data.withUnsafeBytes {
            CRC32.checksum(UnsafeRawBufferPointer(rebasing: $0[1000...]), initial: head)
        }
        XCTAssertEqual(chained, whole)
        XCTAssertEqual(CRC32.checksum([]), 0)
    }
}

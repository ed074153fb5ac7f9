import Foundation
import XCTest
import RAGSegIO

/// `ragseg sample-data`: the quick start's synthetic dataset, run as the built executable.
final class SampleDataCommandTests: XCTestCase {
    private func files(_ dir: String) throws -> [String: Data] {
        var result = [String: Data]()
        for sub in ["images", "masks"] {
            for name in try FileManager.default.contentsOfDirectory(atPath: dir + "/" + sub) {
                result[sub + "/" + name] = try Data(contentsOf: URL(fileURLWithPath: dir + "/" + sub + "/" + name))
            }
        }
        return result
    }

    func testSameSeedSameBytesOtherSeedOtherBytes() throws {
        let dir = temporaryDirectory()
        for (name, seed) in [("a", "5"), ("b", "5"), ("c", "6")] {
            let r = try runRagseg(["sample-data", dir + "/" + name, "--cases", "3", "--size", "40", "--seed", seed])
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        let a = try files(dir + "/a"), b = try files(dir + "/b"), c = try files(dir + "/c")
        let expected = [
            "images/case_000.png", "images/case_001.png", "images/case_002.png",
            "masks/case_000.png", "masks/case_001.png", "masks/case_002.png",
        ]
        XCTAssertEqual(a.keys.sorted(), expected)
        XCTAssertEqual(a, b, "same seed, same files")
        XCTAssertEqual(c.keys.sorted(), expected)
        for name in expected {
            XCTAssertNotEqual(a[name], c[name], "\(name): seeds 5 and 6 gave the same file")
        }
        // Cases differ from one another too (the generator draws each case afresh).
        XCTAssertNotEqual(a["masks/case_000.png"], a["masks/case_001.png"])
    }

    func testImagesAndMasks() throws {
        let dir = temporaryDirectory()
        let r = try runRagseg(["sample-data", dir, "--cases", "4", "--size", "64"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("wrote 4 synthetic cases (64x64"), r.stdout)
        for i in 0..<4 {
            let name = String(format: "case_%03d.png", i)
            let image = try PNG.read(dir + "/images/" + name)
            let mask = try PNG.read(dir + "/masks/" + name)
            for png in [image, mask] {
                XCTAssertEqual([png.width, png.height, png.channels, png.bitDepth], [64, 64, 1, 8], name)
            }
            XCTAssertTrue(mask.pixels.allSatisfy { $0 == 0 || $0 == 255 }, "\(name): mask values other than 0/255")
            let inside = zip(image.pixels, mask.pixels).filter { $0.1 == 255 }.map { Double($0.0) }
            let outside = zip(image.pixels, mask.pixels).filter { $0.1 == 0 }.map { Double($0.0) }
            XCTAssertGreaterThan(inside.count, 0, "\(name): empty mask")
            XCTAssertGreaterThan(outside.count, 0, "\(name): mask covers the whole image")
            let meanInside = inside.reduce(0, +) / Double(inside.count)
            let meanOutside = outside.reduce(0, +) / Double(outside.count)
            XCTAssertGreaterThan(
                meanInside, meanOutside + 30, "\(name): the object is not brighter than the background")
            // Not a flat image: noise and texture are there.
            XCTAssertGreaterThan(Set(image.pixels).count, 20, name)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/images/case_004.png"))
    }

    /// --empty-every N: cases N, 2N, ... have no object and an empty mask; the others are unchanged.
    func testEmptyEveryLeavesEveryNthCaseWithoutTheObject() throws {
        let dir = temporaryDirectory()
        var r = try runRagseg(["sample-data", dir + "/plain", "--cases", "7", "--size", "48"])
        XCTAssertEqual(r.status, 0, r.stderr)
        r = try runRagseg(["sample-data", dir + "/gaps", "--cases", "7", "--size", "48", "--empty-every", "3"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("2 without an object"), r.stdout)
        let plain = try files(dir + "/plain"), gaps = try files(dir + "/gaps")
        for i in 0..<7 {
            let name = String(format: "case_%03d.png", i)
            let mask = try PNG.read(dir + "/gaps/masks/" + name)
            if i == 2 || i == 5 {
                XCTAssertTrue(mask.pixels.allSatisfy { $0 == 0 }, "\(name) should have an empty mask")
                XCTAssertNotEqual(
                    gaps["images/" + name], plain["images/" + name], "\(name): the object is gone from the image")
                XCTAssertGreaterThan(
                    Set(try PNG.read(dir + "/gaps/images/" + name).pixels).count, 20, "\(name): still a textured image")
            } else {
                XCTAssertEqual(gaps["images/" + name], plain["images/" + name], name)
                XCTAssertEqual(gaps["masks/" + name], plain["masks/" + name], name)
            }
        }
        r = try runRagseg(["sample-data", dir + "/bad", "--empty-every=-1"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("--empty-every must be 0 (none) or positive, got -1"), r.stderr)
    }

    func testBadArgumentsAreRejected() throws {
        let dir = temporaryDirectory()
        var r = try runRagseg(["sample-data", dir, "--cases", "0"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("--cases must be in 1...10000, got 0"), r.stderr)
        r = try runRagseg(["sample-data", dir, "--size", "8"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("--size must be in 32...4096, got 8"), r.stderr)
        r = try runRagseg(["sample-data", dir, "--seed", "-1"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("--seed"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir), "nothing written on bad arguments")

        // A folder that already holds files is left alone.
        try FileManager.default.createDirectory(atPath: dir + "/images", withIntermediateDirectories: true)
        let keep = Data("not a png".utf8)
        try keep.write(to: URL(fileURLWithPath: dir + "/images/case_000.png"))
        r = try runRagseg(["sample-data", dir, "--cases", "2", "--size", "32"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains(dir + "/images") && r.stderr.contains("is not empty"), r.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir + "/images/case_000.png")), keep)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/masks/case_000.png"))

        // OUT_DIR is a file.
        let file = dir + "/plain-file"
        try keep.write(to: URL(fileURLWithPath: file))
        r = try runRagseg(["sample-data", file])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains(file) && r.stderr.contains("not a folder"), r.stderr)
    }
}

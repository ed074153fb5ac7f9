import Foundation
import RAGSegIO
import RAGSegTestSupport
import SupportBank
import XCTest
@testable import RAGSegPipeline

let tinyShape = MemoryShape(channels: 4, height: 4, width: 4, pointerDimension: 8)

/// A fresh path under the system's temporary folder, named after the test.
func temporaryDirectory(_ name: String = #function) -> String {
    let safe = name.filter { $0.isLetter || $0.isNumber }
    return FileManager.default.temporaryDirectory
        .appendingPathComponent("ragseg-ingest-tests-\(getpid())/\(safe)-\(UUID().uuidString.prefix(8))").path
}

final class CaseInputTests: XCTestCase {
    func testBinaryMaskTreatsAnyNonzeroAsForeground() throws {
        let dir = temporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try writeGray(dir + "/i.png", 8, 4) { x, _ in UInt8(x * 10) }
        try writeGray(dir + "/m.png", 8, 4) { x, y in x == 2 && y == 1 ? 7 : (x == 5 ? 255 : 0) }
        let loaded = try CaseLoader.load(CaseSource(image: dir + "/i.png", mask: dir + "/m.png"), labelCount: 1)
        XCTAssertEqual(loaded.labels, [1])
        XCTAssertEqual(loaded.labelMap.filter { $0 == 1 }.count, 5)  // (2,1) and column 5
        XCTAssertEqual(loaded.labelMap[1 * 8 + 2], 1)
    }

    func testLabelMapGivesOneMemoryPerPresentLabel() throws {
        let dir = temporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try writeGray(dir + "/i.png", 8, 8) { x, y in UInt8(x * 20 + y) }
        try writeGray(dir + "/m.png", 8, 8) { x, _ in x < 2 ? 1 : (x > 5 ? 3 : 0) }
        let loaded = try CaseLoader.load(CaseSource(image: dir + "/i.png", mask: dir + "/m.png"), labelCount: 3)
        XCTAssertEqual(loaded.labels, [1, 3])
        let support = StandInSupportEncoder(variant: .tiny, memoryShape: tinyShape)
        let prepared = try CaseLoader.prepare(
            loaded, retrieval: StandInRetrievalEncoder(variant: .vits14), support: support)
        // Label 2 is absent: the case also gets the memory of an empty mask (label 0).
        XCTAssertEqual(prepared.memories.map(\.label), [0, 1, 3])
        XCTAssertEqual(prepared.embedding.count, 384)
        // Each memory is the support encoder's output for that label's binary mask.
        let image = try PNG.read(dir + "/i.png")
        let mask1 = (0..<64).map { UInt8($0 % 8 < 2 ? 1 : 0) }
        let mask3 = (0..<64).map { UInt8($0 % 8 > 5 ? 1 : 0) }
        XCTAssertEqual(
            prepared.memories[0].memory, try support.encodeSupport(image: image, mask: [UInt8](repeating: 0, count: 64))
        )
        XCTAssertEqual(prepared.memories[1].memory, try support.encodeSupport(image: image, mask: mask1))
        XCTAssertEqual(prepared.memories[2].memory, try support.encodeSupport(image: image, mask: mask3))
        XCTAssertNotEqual(prepared.memories[0].memory, prepared.memories[1].memory)
        XCTAssertNotEqual(prepared.memories[1].memory, prepared.memories[2].memory)
    }

    /// The empty-mask memory exists exactly when a declared label is absent: never for a mask with every
    /// label, always for an empty mask (whose case then has no label memory at all).
    func testEmptyMaskMemoryOnlyWhereALabelIsAbsent() throws {
        let dir = temporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try writeGray(dir + "/i.png", 8, 8) { x, y in UInt8(x * 20 + y) }
        try writeGray(dir + "/all.png", 8, 8) { x, _ in UInt8(x % 3 + 1) }
        try writeGray(dir + "/none.png", 8, 8) { _, _ in 0 }
        let support = StandInSupportEncoder(variant: .tiny, memoryShape: tinyShape)
        let retrieval = StandInRetrievalEncoder(variant: .vits14)
        func labels(_ mask: String, _ count: Int) throws -> [Int] {
            let loaded = try CaseLoader.load(
                CaseSource(image: dir + "/i.png", mask: dir + "/" + mask), labelCount: count)
            return try CaseLoader.prepare(loaded, retrieval: retrieval, support: support).memories.map(\.label)
        }
        XCTAssertEqual(try labels("all.png", 3), [1, 2, 3])
        XCTAssertEqual(try labels("none.png", 3), [0])
        XCTAssertEqual(try labels("none.png", 1), [0])
        XCTAssertEqual(try labels("all.png", 1), [1], "binary bank: any nonzero pixel is the label")
    }

    func testBadInputsGetErrorsNamingTheFiles() throws {
        let dir = temporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try writeGray(dir + "/i.png", 8, 8) { _, _ in 1 }
        try writeGray(dir + "/small.png", 4, 8) { _, _ in 0 }
        try writeGray(dir + "/m7.png", 8, 8) { x, _ in x == 3 ? 7 : 0 }
        try Data("not a png".utf8).write(to: URL(fileURLWithPath: dir + "/broken.png"))
        try PNG.writeRGB8(
            [UInt8](repeating: 0, count: 64 * 3).enumerated().map { $0.offset == 4 ? 9 : $0.element },
            width: 8, height: 8, to: dir + "/color.png")

        func message(_ image: String, _ mask: String, labels: Int) -> String {
            do {
                _ = try CaseLoader.load(
                    CaseSource(image: dir + "/" + image, mask: dir + "/" + mask), labelCount: labels)
                return "no error"
            } catch { return "\(error)" }
        }
        let unreadable = message("broken.png", "m7.png", labels: 1)
        XCTAssertTrue(unreadable.contains("broken.png") && unreadable.contains("cannot read image"), unreadable)
        let sizes = message("i.png", "small.png", labels: 1)
        XCTAssertTrue(sizes.contains("small.png") && sizes.contains("i.png") && sizes.contains("4x8"), sizes)
        let values = message("i.png", "m7.png", labels: 3)
        XCTAssertTrue(values.contains("m7.png") && values.contains("value 7"), values)
        let color = message("i.png", "color.png", labels: 1)
        XCTAssertTrue(color.contains("color.png") && color.contains("color"), color)
        XCTAssertEqual(message("i.png", "m7.png", labels: 7), "no error")
    }

    func testContentHashIgnoresPathsButNotPixels() throws {
        let dir = temporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try writeGray(dir + "/a.png", 8, 8) { x, _ in UInt8(x) }
        try writeGray(dir + "/b.png", 8, 8) { x, _ in UInt8(x) }
        try writeGray(dir + "/m.png", 8, 8) { x, _ in x > 3 ? 1 : 0 }
        try writeGray(dir + "/m2.png", 8, 8) { x, _ in x > 4 ? 1 : 0 }
        let a = try CaseLoader.load(CaseSource(image: dir + "/a.png", mask: dir + "/m.png"), labelCount: 1)
        let b = try CaseLoader.load(CaseSource(image: dir + "/b.png", mask: dir + "/m.png"), labelCount: 1)
        let c = try CaseLoader.load(CaseSource(image: dir + "/a.png", mask: dir + "/m2.png"), labelCount: 1)
        XCTAssertEqual(a.contentHash, b.contentHash)
        XCTAssertNotEqual(a.contentHash, c.contentHash)
    }

    func testPairsByStemAndNNUNetLayout() throws {
        let dir = temporaryDirectory()
        let images = dir + "/imagesTr", labels = dir + "/labelsTr"
        try FileManager.default.createDirectory(atPath: images, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: labels, withIntermediateDirectories: true)
        for name in ["liver_001", "liver_002"] {
            try writeGray("\(images)/\(name)_0000.png", 4, 4) { _, _ in 0 }
            try writeGray("\(images)/\(name)_0001.png", 4, 4) { _, _ in 0 }  // second channel: not used
            try writeGray("\(labels)/\(name).png", 4, 4) { _, _ in 0 }
        }
        try Data(#"{"labels": {"background": 0, "liver": 1, "tumour": 2}, "file_ending": ".png"}"#.utf8)
            .write(to: URL(fileURLWithPath: dir + "/dataset.json"))
        let pairs = try CaseSources.nnUNet(dir)
        XCTAssertEqual(
            pairs,
            [
                CaseSource(image: "\(images)/liver_001_0000.png", mask: "\(labels)/liver_001.png"),
                CaseSource(image: "\(images)/liver_002_0000.png", mask: "\(labels)/liver_002.png"),
            ])
        XCTAssertEqual(try CaseSources.nnUNetLabels(dir), ["liver", "tumour"])
        try Data(#"{"labels": {"0": "background", "1": "heart"}}"#.utf8).write(
            to: URL(fileURLWithPath: dir + "/dataset.json"))
        XCTAssertEqual(try CaseSources.nnUNetLabels(dir), ["heart"])
        // A mask without image is an error naming it.
        try writeGray("\(labels)/orphan.png", 4, 4) { _, _ in 0 }
        XCTAssertThrowsError(try CaseSources.nnUNet(dir)) { XCTAssertTrue("\($0)".contains("orphan.png"), "\($0)") }
    }

    func testCSVList() throws {
        let dir = temporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try Data("image,mask\na.png, m/a.png\n\n/abs/b.png,/abs/mb.png\n".utf8).write(
            to: URL(fileURLWithPath: dir + "/pairs.csv"))
        XCTAssertEqual(
            try CaseSources.list(dir + "/pairs.csv"),
            [
                CaseSource(image: dir + "/a.png", mask: dir + "/m/a.png"),
                CaseSource(image: "/abs/b.png", mask: "/abs/mb.png"),
            ])
        try Data("a.png\n".utf8).write(to: URL(fileURLWithPath: dir + "/bad.csv"))
        XCTAssertThrowsError(try CaseSources.list(dir + "/bad.csv")) {
            XCTAssertTrue("\($0)".contains("line 1"), "\($0)")
        }
    }

    func testStandInEncodersAreDeterministicAndShaped() throws {
        let image = PNGImage(
            width: 20, height: 10, channels: 1, bitDepth: 8, pixels: (0..<200).map { UInt16($0 % 256) })
        let other = PNGImage(
            width: 20, height: 10, channels: 1, bitDepth: 8, pixels: (0..<200).map { UInt16(($0 * 7) % 256) })
        let r = StandInRetrievalEncoder(variant: .vitb14)
        let e = try r.embed(image)
        XCTAssertEqual(e.count, 768)
        XCTAssertEqual(e.reduce(0) { $0 + $1 * $1 }, 1, accuracy: 1e-4)
        XCTAssertEqual(e, try r.embed(image))
        XCTAssertNotEqual(e, try r.embed(other))
        let s = StandInSupportEncoder(variant: .tiny)
        let mask = (0..<200).map { UInt8($0 < 50 ? 1 : 0) }
        let m = try s.encodeSupport(image: image, mask: mask)
        XCTAssertEqual(m.shape, .sam2)
        XCTAssertFalse(m.isEmpty)
        XCTAssertEqual(m, try s.encodeSupport(image: image, mask: mask))
        XCTAssertNotEqual(m, try s.encodeSupport(image: image, mask: mask.map { 1 - $0 }))
        XCTAssertNotEqual(StandIn.retrievalModel(.vits14), StandIn.retrievalModel(.vitb14))
    }
}

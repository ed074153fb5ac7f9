import Foundation
import XCTest
import RAGSegIO
import RAGSegTestSupport
import SAM2
import SupportBank
import TensorCore
@testable import RAGSegPipeline

/// A mask file gives the same mask, and so the same support memory, through `ragseg segment --support`
/// (SAM2.SupportSegmenter) and `ragseg index add` (SupportBank.CaseLoader), whatever way the PNG stores it
/// (tools/make_mask_fixtures.py: gray 8/16/1-bit, gray+alpha, tRNS, RGB(A), 16-bit RGB, palettes).
final class MaskPathsTests: XCTestCase {
    let width = 24, height = 20
    static let masks = FixtureModels.testsDirectory.appendingPathComponent("RAGSegIOTests/Fixtures/masks")
    var directory: URL!
    var image: String!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("ragseg-masks-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        image = directory.appendingPathComponent("image.png").path
        let pixels: [UInt8] = (0..<width * height).map { i -> UInt8 in UInt8(truncatingIfNeeded: i * 37 + i / 24 * 11) }
        try PNG.writeGray8(pixels, width: width, height: height, to: image)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    func mask(_ name: String) -> String { Self.masks.appendingPathComponent(name + ".png").path }

    static let objectKinds = [
        "object_gray8_255", "object_gray8_1", "object_gray16", "object_gray1", "object_gray_alpha",
        "object_gray_trns", "object_rgb", "object_rgba", "object_rgb16", "object_palette", "object_palette2",
    ]

    func testBothPathsReadEveryKindOfMaskAsTheSameObject() throws {
        // The object as tools/make_mask_fixtures.py draws it.
        func onObject(_ x: Int, _ y: Int) -> Bool {
            (5..<17).contains(x) && (4..<14).contains(y) || (x == 20 && y == 17)
        }
        let object: [Float] = (0..<height).flatMap { y -> [Float] in
            (0..<width).map { x -> Float in onObject(x, y) ? 1 : 0 }
        }
        for name in Self.objectKinds {
            let support = try SupportSegmenter.loadSupport(imagePath: image, maskPath: mask(name))
            XCTAssertEqual(support.mask.shape, [height, width], name)
            XCTAssertEqual(support.mask.data, object, "segment --support, \(name)")
            let loaded = try CaseLoader.load(CaseSource(image: image, mask: mask(name)), labelCount: 1)
            XCTAssertEqual(loaded.labelMap.map(Float.init), object, "index add, \(name)")
            XCTAssertEqual(loaded.labels, [1], name)
        }
        // Several labels (index add of a multi-label bank): the label values, whatever the storage.
        let reference = try CaseLoader.load(CaseSource(image: image, mask: mask("labels_gray8")), labelCount: 2)
            .labelMap
        XCTAssertEqual(Set(reference), [0, 1, 2])
        for name in ["labels_gray16", "labels_gray2", "labels_rgb", "labels_palette"] {
            XCTAssertEqual(
                try CaseLoader.load(CaseSource(image: image, mask: mask(name)), labelCount: 2).labelMap, reference, name
            )
        }
    }

    /// The memories themselves, on the tiny real SAM 2: the `--support` path and the bank's encoder agree
    /// with each other and with the plain 0/255 gray mask for 0/1, 16-bit, gray+alpha, RGB and palette masks.
    func testBothPathsGiveTheSameSupportMemory() throws {
        let encoder = try FixtureModels.supportEncoder()
        let direct = SupportSegmenter(model: encoder.sam2)
        func viaSupport(_ name: String) throws -> SupportMemory {
            try direct.encodeSupport(imagePath: image, maskPath: mask(name))
        }
        func viaIndexAdd(_ name: String) throws -> SupportMemory {
            let loaded = try CaseLoader.load(CaseSource(image: image, mask: mask(name)), labelCount: 1)
            let prepared = try CaseLoader.prepare(
                loaded, retrieval: StandInRetrievalEncoder(variant: .vits14), support: encoder)
            XCTAssertEqual(prepared.memories.map { $0.label }, [1], name)
            return prepared.memories[0].memory
        }
        let reference = try viaSupport("object_gray8_255")
        XCTAssertEqual(try viaIndexAdd("object_gray8_255"), reference)
        for name in ["object_gray8_1", "object_gray16", "object_gray_alpha", "object_rgb", "object_palette"] {
            XCTAssertEqual(try viaSupport(name), reference, "segment --support, \(name)")
            XCTAssertEqual(try viaIndexAdd(name), reference, "index add, \(name)")
        }
    }

    func testBothPathsRefuseColourMasksAndUndeclaredValuesNamingTheFile() throws {
        XCTAssertThrowsError(try SupportSegmenter.loadSupport(imagePath: image, maskPath: mask("error_color"))) {
            error in
            let text = "\(error)"
            XCTAssertTrue(
                text.hasPrefix(mask("error_color") + ": ") && text.contains("pixel 7,5 is RGB 255,0,0, not gray"), text)
        }
        XCTAssertThrowsError(try CaseLoader.load(CaseSource(image: image, mask: mask("error_color")), labelCount: 1)) {
            error in
            guard case BankError.input(let path, let message) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(path, mask("error_color"))
            XCTAssertTrue(message.contains("mask is a color image (pixel 7,5 is RGB 255,0,0, not gray)"), message)
        }
        XCTAssertThrowsError(try CaseLoader.load(CaseSource(image: image, mask: mask("error_label3")), labelCount: 2)) {
            error in
            guard case BankError.input(let path, let message) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(path, mask("error_label3"))
            XCTAssertEqual(message, "mask value 3 at pixel 9,6 is not a declared label (0...2)")
        }
    }
}

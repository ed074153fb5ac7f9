import XCTest
@testable import RAGSegPipeline

/// The written mask from per-label logits, against values worked out by hand.
final class MaskCompositionTests: XCTestCase {
    func testOneLabelIsABinaryMaskOfPositiveLogits() {
        XCTAssertEqual(
            MaskComposition.mask(logits: [[-1, 0, 0.5, 3, -0.0]], labels: [1], foreground: 255), [0, 0, 255, 255, 0])
        XCTAssertEqual(
            MaskComposition.mask(logits: [[2, -2]], labels: [7], foreground: 1), [1, 0],
            "one label: foreground value, not the label")
    }

    func testLabelMapTakesTheHighestPositiveLogit() {
        let liver: [Float] = [-1, 2, 5, 1, 0, 3]
        let tumour: [Float] = [-2, 4, 1, -1, 0, 3]
        // pixel 0: none positive; 1: tumour higher; 2: liver higher; 3: only liver; 4: zeros are not positive;
        // 5: a tie goes to the first label listed.
        XCTAssertEqual(
            MaskComposition.mask(logits: [liver, tumour], labels: [1, 2], foreground: 255), [0, 2, 1, 1, 0, 1])
        XCTAssertEqual(
            MaskComposition.mask(logits: [tumour, liver], labels: [2, 1], foreground: 255), [0, 2, 1, 1, 0, 2])
        XCTAssertEqual(
            MaskComposition.mask(logits: [[1, -1], [-1, -1], [0.5, 9]], labels: [3, 40, 255], foreground: 1), [3, 255])
    }

    func testLabelVolumeSlicesKeepLabelNumbersPast255() {
        // The rule of the label map, in 16 bits: label 300 where its logit is the highest positive one; one label
        // is written as its own number (a label volume holds label numbers, not a foreground value).
        XCTAssertEqual(
            MaskComposition.labelMap(logits: [[1, -1, 2], [3, -2, 2]], labels: [2, 300]), [300, 0, 2])
        XCTAssertEqual(MaskComposition.labelMap(logits: [[0.5, 0, -1]], labels: [7]), [7, 0, 0])
    }
}

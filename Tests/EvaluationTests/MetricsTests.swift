import Foundation
import RAGSegIO
import XCTest
@testable import Evaluation

/// Dice, IoU and HD95 against values computed independently with scipy (tools/make_eval_fixtures.py).
final class MetricsTests: XCTestCase {
    struct Expected: Decodable {
        let name: String
        let spacing: [Double]
        let dice: Double
        let iou: Double
        let hd95: Double?
    }

    func fixture(_ name: String) throws -> String {
        try XCTUnwrap(
            Bundle.module.path(forResource: name, ofType: nil, inDirectory: "Fixtures"), "missing fixture \(name)")
    }

    func mask(_ name: String) throws -> BinaryMask {
        let array = try NPY.readArray(try fixture(name + ".npy"))
        let values = try XCTUnwrap(array.uint8, "\(name) is not uint8")
        XCTAssertEqual(array.shape.count, 2)
        return BinaryMask(width: array.shape[1], height: array.shape[0], values: values)
    }

    func testScoresMatchScipyReference() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: try fixture("expected.json")))
        let cases = try JSONDecoder().decode([Expected].self, from: data)
        XCTAssertEqual(cases.count, 6)
        for c in cases {
            let scores = segmentationScores(
                prediction: try mask(c.name + "_pred"), truth: try mask(c.name + "_truth"),
                spacing: (c.spacing[0], c.spacing[1]))
            // Exact arithmetic on counts and distances: only floating-point rounding separates us from scipy.
            XCTAssertEqual(scores.dice, c.dice, accuracy: 1e-12, c.name)
            XCTAssertEqual(scores.iou, c.iou, accuracy: 1e-12, c.name)
            if let expected = c.hd95 {
                let hd95 = try XCTUnwrap(scores.hd95, c.name)
                XCTAssertEqual(hd95, expected, accuracy: 1e-9, c.name)
            } else {
                XCTAssertNil(scores.hd95, c.name)
            }
        }
    }

    func testHandWorkedExample() {
        // Two 1-pixel masks 3 columns apart: every surface distance is 3, so HD95 = 3; no overlap.
        var a = [Bool](repeating: false, count: 5 * 5), b = a
        a[2 * 5 + 0] = true
        b[2 * 5 + 3] = true
        let s = segmentationScores(
            prediction: BinaryMask(width: 5, height: 5, pixels: a),
            truth: BinaryMask(width: 5, height: 5, pixels: b))
        XCTAssertEqual(s.dice, 0)
        XCTAssertEqual(s.iou, 0)
        XCTAssertEqual(s.hd95, 3)
        let same = segmentationScores(
            prediction: BinaryMask(width: 5, height: 5, pixels: a),
            truth: BinaryMask(width: 5, height: 5, pixels: a))
        XCTAssertEqual(same.dice, 1)
        XCTAssertEqual(same.hd95, 0)
    }

    func testPercentileAndSummaryFollowNumPy() {
        // np.percentile([1, 2, 3, 4], 95) = 3.85; median of [5, 1, 3] = 3.
        XCTAssertEqual(percentile([4, 1, 3, 2], 95), 3.85, accuracy: 1e-12)
        let s = Summary([5, 1, 3])
        XCTAssertEqual(s?.median, 3)
        XCTAssertEqual(s?.mean, 3)
        XCTAssertNil(Summary([]))
    }
}

// SAM2Prompt without a model: parsing of the --point/--box (and point=/box=) values, bounds checks, the
// scaling to model-input pixels and the multimask rule. The model-level behaviour is checked against
// the official predictor in MemoryPathTests (checkRefinementMatchesReference).
import XCTest

@testable import SAM2

final class PromptTests: XCTestCase {
    func message(_ body: () throws -> Void) -> String {
        do { try body() } catch { return "\(error)" }
        return "no error"
    }

    func testParsing() throws {
        XCTAssertEqual(try SAM2Prompt.parsePoint("12,30.5"), SAM2Point(x: 12, y: 30.5, label: 1))
        XCTAssertEqual(try SAM2Prompt.parsePoint("12, 30 ,0"), SAM2Point(x: 12, y: 30, label: 0))
        XCTAssertEqual(try SAM2Prompt.parsePoint("1e1,2,1"), SAM2Point(x: 10, y: 2, label: 1))
        XCTAssertEqual(try SAM2Prompt.parseBox("1,2,30.25,40"), SAM2Box(x0: 1, y0: 2, x1: 30.25, y1: 40))
        let prompt = try SAM2Prompt.parse(points: ["1,2", "3,4,0"], boxes: ["0,0,5,6"])
        XCTAssertEqual(prompt.points.map(\.label), [1, 0])
        XCTAssertEqual(prompt.box, SAM2Box(x0: 0, y0: 0, x1: 5, y1: 6))
        XCTAssertTrue(try SAM2Prompt.parse(points: [], boxes: []).isEmpty)

        XCTAssertEqual(message { _ = try SAM2Prompt.parsePoint("12") }, "point '12' must be x,y or x,y,label")
        XCTAssertEqual(message { _ = try SAM2Prompt.parsePoint("1,2,1,4") }, "point '1,2,1,4' must be x,y or x,y,label")
        XCTAssertEqual(message { _ = try SAM2Prompt.parsePoint("12,abc") }, "point '12,abc': y 'abc' is not a number")
        XCTAssertEqual(message { _ = try SAM2Prompt.parsePoint(",3") }, "point ',3': x '' is not a number")
        XCTAssertEqual(message { _ = try SAM2Prompt.parsePoint("nan,3") }, "point 'nan,3': x 'nan' is not a number")
        XCTAssertEqual(message { _ = try SAM2Prompt.parsePoint("inf,3") }, "point 'inf,3': x 'inf' is not a number")
        XCTAssertEqual(
            message { _ = try SAM2Prompt.parsePoint("1,3,2") },
            "point '1,3,2': label '2' must be 1 (positive) or 0 (negative)")
        XCTAssertEqual(
            message { _ = try SAM2Prompt.parsePoint("1,3,yes") },
            "point '1,3,yes': label 'yes' must be 1 (positive) or 0 (negative)")
        XCTAssertEqual(message { _ = try SAM2Prompt.parseBox("1,2,3") }, "box '1,2,3' must be x0,y0,x1,y1")
        XCTAssertEqual(message { _ = try SAM2Prompt.parseBox("1,2,3,z") }, "box '1,2,3,z': y1 'z' is not a number")
        XCTAssertEqual(
            message { _ = try SAM2Prompt.parse(points: [], boxes: ["0,0,1,1", "0,0,2,2"]) },
            "at most one box may be given, got 2")
    }

    func testBounds() throws {
        let inside = SAM2Prompt(
            points: [SAM2Point(x: 0, y: 0, label: 1), SAM2Point(x: 69.5, y: 44.9, label: 0)],
            box: SAM2Box(x0: 0, y0: 0, x1: 70, y1: 45))
        XCTAssertNoThrow(try inside.validate(width: 70, height: 45))
        XCTAssertEqual(
            message { try SAM2Prompt(points: [SAM2Point(x: 70, y: 3, label: 1)]).validate(width: 70, height: 45) },
            "point 70,3 lies outside the 70x45 image (x in 0..<70, y in 0..<45)")
        XCTAssertEqual(
            message { try SAM2Prompt(points: [SAM2Point(x: 2.5, y: -1, label: 1)]).validate(width: 70, height: 45) },
            "point 2.5,-1 lies outside the 70x45 image (x in 0..<70, y in 0..<45)")
        XCTAssertEqual(
            message { try SAM2Prompt(points: [SAM2Point(x: 1, y: 1, label: 3)]).validate(width: 70, height: 45) },
            "point 1,1 has label 3; use 1 (positive) or 0 (negative)")
        XCTAssertEqual(
            message { try SAM2Prompt(box: SAM2Box(x0: 0, y0: 0, x1: 71, y1: 10)).validate(width: 70, height: 45) },
            "box 0,0,71,10 lies outside the 70x45 image (x in 0...70, y in 0...45)")
        XCTAssertEqual(
            message { try SAM2Prompt(box: SAM2Box(x0: 30, y0: 0, x1: 10, y1: 10)).validate(width: 70, height: 45) },
            "box 30,0,10,10 is empty or reversed; give x0,y0,x1,y1 with x0 < x1 and y0 < y1 (top-left, bottom-right)")
        XCTAssertThrowsError(try SAM2Prompt(box: SAM2Box(x0: 5, y0: 5, x1: 5, y1: 9)).validate(width: 70, height: 45))
    }

    /// Box corners (labels 2, 3) first, then the clicks, scaled x·S/W, y·S/H (add_new_points_or_box with
    /// normalize_coords); multimask only with exactly one point in all.
    func testModelPointsAndMultimask() {
        let prompt = SAM2Prompt(
            points: [SAM2Point(x: 35, y: 9, label: 0)], box: SAM2Box(x0: 7, y0: 4.5, x1: 70, y1: 45))
        let points = prompt.modelPoints(imageSize: 128, width: 70, height: 45)
        XCTAssertEqual(points.map(\.label), [2, 3, 0])
        XCTAssertEqual(points.map(\.x), [12.8, 128, 64])
        XCTAssertEqual(points.map(\.y), [12.8, 128, 25.6])
        XCTAssertFalse(prompt.usesMultimask)
        XCTAssertTrue(SAM2Prompt(points: [SAM2Point(x: 1, y: 1, label: 1)]).usesMultimask)
        XCTAssertTrue(SAM2Prompt(points: [SAM2Point(x: 1, y: 1, label: 0)]).usesMultimask)
        XCTAssertFalse(
            SAM2Prompt(points: [SAM2Point(x: 1, y: 1, label: 1), SAM2Point(x: 2, y: 2, label: 1)]).usesMultimask)
        XCTAssertFalse(SAM2Prompt(box: SAM2Box(x0: 0, y0: 0, x1: 3, y1: 3)).usesMultimask)
    }
}

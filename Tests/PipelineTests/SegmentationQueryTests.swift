import Foundation
import XCTest
import SAM2
@testable import RAGSegPipeline

/// The query rules both front ends rely on, without models: label resolution, the one-label prompt rule,
/// the 8-bit label map limit, and the report's JSON keys.
final class SegmentationQueryTests: XCTestCase {
    let click = SAM2Prompt(points: [SAM2Point(x: 3, y: 4, label: 1)])

    func error(_ body: () throws -> SegmentationQuery) -> SegmentationQueryError? {
        do { _ = try body() } catch let error as SegmentationQueryError { return error } catch { XCTFail("\(error)") }
        return nil
    }

    func testLabelsResolveByNameOrAll() throws {
        XCTAssertEqual(LabelSelection(nil), .all)
        XCTAssertEqual(LabelSelection("all"), .all)
        XCTAssertEqual(LabelSelection("liver"), .named("liver"))
        XCTAssertEqual(try SegmentationQuery(bankLabels: ["liver", "tumour"], selection: .all, k: 2).labels, [1, 2])
        let one = try SegmentationQuery(bankLabels: ["liver", "tumour"], selection: .named("tumour"), k: 2)
        XCTAssertEqual(one.labels, [2])
        XCTAssertEqual(one.name(of: 2), "tumour")
        XCTAssertEqual(
            error { try SegmentationQuery(bankLabels: ["liver", "tumour"], selection: .named("Liver"), k: 2) },
            .unknownLabel("Liver", labels: ["liver", "tumour"]))
    }

    func testAPromptNeedsOneLabel() throws {
        XCTAssertEqual(
            error { try SegmentationQuery(bankLabels: ["liver", "tumour"], selection: .all, k: 2, prompt: click) },
            .promptNeedsOneLabel(labels: ["liver", "tumour"]))
        XCTAssertEqual(
            try SegmentationQuery(bankLabels: ["liver", "tumour"], selection: .named("liver"), k: 2, prompt: click)
                .labels, [1])
        XCTAssertEqual(try SegmentationQuery(bankLabels: ["object"], selection: .all, k: 2, prompt: click).labels, [1])
    }

    func testALabelMapHoldsAtMost255Labels() throws {
        let names = (1...256).map { "organ\($0)" }
        XCTAssertEqual(
            error { try SegmentationQuery(bankLabels: names, selection: .all, k: 1) },
            .labelMapTooSmall(labelCount: 256))
        XCTAssertEqual(
            try SegmentationQuery(bankLabels: names, selection: .all, k: 1, maskPerLabel: true).labels.count, 256)
        XCTAssertEqual(try SegmentationQuery(bankLabels: names, selection: .named("organ256"), k: 1).labels, [256])
        XCTAssertEqual(
            try SegmentationQuery(bankLabels: Array(names.prefix(255)), selection: .all, k: 1).labels.count, 255)
        // Both faults: the prompt rule is reported first (picking one label fixes both).
        XCTAssertEqual(
            error { try SegmentationQuery(bankLabels: names, selection: .all, k: 1, prompt: click) },
            .promptNeedsOneLabel(labels: names))
    }

    /// Stage names are today's JSON keys, in the order the stages run.
    func testStageNamesAndReportKeys() throws {
        XCTAssertEqual(
            QueryStage.allCases.map(\.rawValue), ["embed", "encode", "search", "load", "attend", "decode", "total"])
        var report = QueryReport(width: 3, height: 2, labels: [], prompt: PromptReport(click))
        XCTAssertEqual(
            String(decoding: try QueryReport.json(report, pretty: false), as: UTF8.self),
            #"{"height":2,"labels":[],"prompt":{"points":[[3,4,1]]},"width":3}"#)
        report.k = 4
        report.mask = "/tmp/m.png"
        report.prompt = nil
        XCTAssertEqual(
            String(decoding: try QueryReport.json(report, pretty: false), as: UTF8.self),
            #"{"height":2,"k":4,"labels":[],"mask":"\/tmp\/m.png","width":3}"#)
        let seconds = StageSeconds([(.embed, 0.5), (.total, 2)])
        XCTAssertEqual(
            String(decoding: try QueryReport.json(seconds, pretty: false), as: UTF8.self), #"{"embed":0.5,"total":2}"#)
        XCTAssertEqual(
            try JSONDecoder().decode(StageSeconds.self, from: try QueryReport.json(seconds, pretty: false)), seconds)
    }
}

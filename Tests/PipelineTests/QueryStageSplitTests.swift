import XCTest
@testable import RAGSegPipeline

/// The figures `ragseg bench query` derives from a query's stage seconds (values worked out by hand).
final class QueryStageSplitTests: XCTestCase {
    func testDerivedFigures() {
        let split = QueryStageSplit([("embed", 0.25), ("search", 0.002), ("load", 0.006), ("encode", 1.5),
                                     ("embed+encode", 1.6), ("attend", 0.3), ("decode", 0.09), ("total", 2.0)])
        XCTAssertEqual(split.total, 2.0)
        XCTAssertEqual(split.retrievalAndLoad, 0.008, accuracy: 1e-12)
        XCTAssertEqual(split.retrievalAndLoadShare, 0.004, accuracy: 1e-12)  // 0.008 / 2.0
        XCTAssertEqual(split.concurrencySaving(embedAlone: 0.05, encodeAlone: 1.1), -0.45, accuracy: 1e-12)  // 0.05 + 1.1 - 1.6
        XCTAssertEqual(split.concurrencySaving(embedAlone: 0.2, encodeAlone: 1.5), 0.1, accuracy: 1e-12)
        XCTAssertEqual(split.untimed, 0.002, accuracy: 1e-12)               // 2.0 - (1.6 + 0.002 + 0.006 + 0.3 + 0.09)
    }

    func testMissingStagesCountAsZero() {
        let split = QueryStageSplit([("search", 0.5), ("total", 0)])
        XCTAssertEqual(split["load"], 0)
        XCTAssertEqual(split.retrievalAndLoad, 0.5)
        XCTAssertEqual(split.retrievalAndLoadShare, 0, "no division by a zero total")
    }
}

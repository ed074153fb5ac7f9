import XCTest
@testable import RAGSegPipeline

/// The figures `ragseg-bench query` derives from a query's stage seconds (values worked out by hand).
final class QueryStageSplitTests: XCTestCase {
    func testDerivedFigures() {
        let split = QueryStageSplit([
            ("embed", 0.05), ("encode", 1.5), ("search", 0.002), ("load", 0.006),
            ("attend", 0.3), ("decode", 0.09), ("total", 1.95),
        ])
        XCTAssertEqual(split.total, 1.95)
        XCTAssertEqual(split.retrievalAndLoad, 0.008, accuracy: 1e-12)
        XCTAssertEqual(split.retrievalAndLoadShare, 0.008 / 1.95, accuracy: 1e-12)
        XCTAssertEqual(split.untimed, 0.002, accuracy: 1e-12)  // 1.95 - (0.05 + 1.5 + 0.002 + 0.006 + 0.3 + 0.09)
    }

    func testMissingStagesCountAsZero() {
        let split = QueryStageSplit([("search", 0.5), ("total", 0)])
        XCTAssertEqual(split["load"], 0)
        XCTAssertEqual(split.retrievalAndLoad, 0.5)
        XCTAssertEqual(split.retrievalAndLoadShare, 0, "no division by a zero total")
    }
}

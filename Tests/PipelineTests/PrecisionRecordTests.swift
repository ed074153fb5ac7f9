import Foundation
import RAGSegIO
import RAGSegTestSupport
import TensorCore
import XCTest

@testable import RAGSegPipeline
@testable import SupportBank

/// A case prepared under --precision bf16 says so in its record; an fp32 case's record is unchanged.
final class PrecisionRecordTests: XCTestCase {
    func testBFloat16CaseIsRecordedAndFP32RecordHasNoField() throws {
        let dir = temporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try writeGray(dir + "/i.png", 8, 8) { x, y in UInt8(x * 20 + y) }
        try writeGray(dir + "/m.png", 8, 8) { x, _ in x < 4 ? 1 : 0 }
        let loaded = try CaseLoader.load(CaseSource(image: dir + "/i.png", mask: dir + "/m.png"), labelCount: 1)
        let support = StandInSupportEncoder(variant: .tiny, memoryShape: tinyShape)
        let retrieval = StandInRetrievalEncoder(variant: .vits14)
        let fp32 = try CaseLoader.prepare(loaded, retrieval: retrieval, support: support)
        XCTAssertNil(fp32.precision)
        let record = CaseRecord(
            id: 1, image: "i", mask: "m", contentHash: "00", width: 8, height: 8, labels: [1], added: 0)
        XCTAssertFalse(String(decoding: try JSONEncoder().encode(record), as: UTF8.self).contains("precision"))

        guard OneDNN.hasNativeBFloat16 else { throw XCTSkip("no native bf16 on this CPU") }
        try Precision.use(.bf16)
        defer { try? Precision.use(.fp32) }
        let bf16 = try CaseLoader.prepare(loaded, retrieval: retrieval, support: support)
        XCTAssertEqual(bf16.precision, "bf16")
        var stored = record
        stored.precision = bf16.precision
        let decoded = try JSONDecoder().decode(CaseRecord.self, from: try JSONEncoder().encode(stored))
        XCTAssertEqual(decoded.precision, "bf16")
    }
}

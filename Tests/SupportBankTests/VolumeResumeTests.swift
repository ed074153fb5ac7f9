import Foundation
import XCTest
import RAGSegIO
@testable import SupportBank

/// A volume `index add` killed part-way keeps the batches it committed, and re-running it resumes: the
/// committed slices are reported as already in the bank and the rest are added.
final class VolumeResumeTests: XCTestCase {
    func testKilledVolumeAddResumes() throws {
        let dir = temporaryDirectory()
        let data = dir + "/Dataset"
        try VolumeTestData.sampleDataset(data, cases: 2, slices: 8)
        let pristine = dir + "/pristine"
        XCTAssertEqual(try VolumeTestData.createBank(pristine, ["--dataset", data]).status, 0)
        let add = ["--dataset", data, "--stand-in", "--batch", "2", "--empty-slices", "2"]

        // Uninterrupted, under the shim only to count its file-changing calls.
        let full = dir + "/full"
        try CrashPoints.restore(pristine, to: full)
        let complete = try CrashPoints.run(["index", "add", full] + add, fault: nil)
        XCTAssertEqual(complete.result.status, 0, complete.result.stderr)
        let all = VolumeTestData.lines(complete.result.stdout, "added\t").map { $0.split(separator: "\t")[2] }
        XCTAssertGreaterThan(all.count, 6, "several batches")

        let bank = dir + "/bank"
        try CrashPoints.restore(pristine, to: bank)
        let killed = try CrashPoints.run(["index", "add", bank] + add, fault: .kill(at: complete.calls.count / 2))
        XCTAssertTrue(killed.killed)
        let committed = VolumeTestData.lines(killed.result.stdout, "added\t").map { $0.split(separator: "\t")[2] }
        let stored = try SupportBank.open(at: bank, readOnly: true).allRecords().map(\.image)
        XCTAssertEqual(stored, committed.map(String.init), "stdout lists exactly what is committed")
        XCTAssertTrue(!stored.isEmpty && stored.count < all.count, "killed part-way: \(stored.count) of \(all.count)")
        XCTAssertEqual(Array(all.prefix(stored.count)).map(String.init), stored)

        let resumed = try runRagseg(["index", "add", bank] + add)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertEqual(VolumeTestData.lines(resumed.stdout, "duplicate\t").count, stored.count)
        XCTAssertEqual(VolumeTestData.lines(resumed.stdout, "added\t").count, all.count - stored.count)
        XCTAssertTrue(resumed.stderr.contains("\(stored.count) slices already in the bank"), resumed.stderr)
        let verify = try runRagseg(["index", "verify", bank])
        XCTAssertEqual(verify.status, 0, verify.stdout)
        XCTAssertEqual(
            try SupportBank.open(at: bank, readOnly: true).allRecords().map(\.contentHash),
            try SupportBank.open(at: full, readOnly: true).allRecords().map(\.contentHash))
    }
}

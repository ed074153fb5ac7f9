import Foundation
import XCTest

@testable import SupportBank

/// Kills `index merge` before each of its file-changing calls (CrashPoints.swift): the target is then missing
/// (at most a staging folder beside it, which `open` refuses and names) or a complete, verified bank; running the
/// merge again completes and removes the killed one's staging folder; the inputs are never changed.
final class MergeCrashPointTests: XCTestCase {
    func testMergeKilledAnywhereLeavesNoBankOrAWholeOneAndRerunningCompletes() throws {
        let dir = temporaryDirectory()
        let template = makeMetadata(dimension: 8, labels: ["liver", "spleen"])
        for (name, seeds) in [("a", Array(0..<6)), ("b", Array(6..<12) + [2])] {
            let bank = try SupportBank.create(
                at: dir + "/" + name, metadata: SupportBank.metadata(fromTemplate: template))
            var rng = SeededGenerator(seed: 3)
            try bank.add(seeds.map { makeCase($0, dimension: 8, rng: &rng, labels: $0 % 2 == 0 ? [0, 1] : [1, 2]) })
        }
        func files(_ bank: String) throws -> [String: Data] {
            try Dictionary(
                uniqueKeysWithValues: FileManager.default.contentsOfDirectory(atPath: bank).map {
                    ($0, try Data(contentsOf: URL(fileURLWithPath: bank + "/" + $0)))
                })
        }
        let inputsBefore = try [files(dir + "/a"), files(dir + "/b")]
        let parent = dir + "/out", out = parent + "/merged"
        let merge = ["index", "merge", out, dir + "/a", dir + "/b", "--quiet"]
        func entries() -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? []).sorted() }
        func checkComplete(_ what: String) throws {
            let verify = try runRagseg(["index", "verify", out])
            XCTAssertEqual(verify.status, 0, "\(what): \(verify.stdout)\(verify.stderr)")
            XCTAssertTrue(
                verify.stdout.contains("12 cases, 24 memories, 12 index vectors (0 tombstones): OK"), verify.stdout)
        }
        var sawNone = false, sawWhole = false, sawStaging = false
        let points = try CrashPoints.forEachCrashPoint(
            merge,
            prepare: {
                try? FileManager.default.removeItem(atPath: parent)
                try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
            },
            check: { point, call in
                let what = "killed before call \(point) (\(call))"
                if FileManager.default.fileExists(atPath: out) {
                    sawWhole = true
                    try checkComplete(what)
                    return
                }
                sawNone = true
                let opened = try runRagseg(["index", "info", out])
                XCTAssertEqual(opened.status, 1, what)
                if let leftover = entries().first {
                    sawStaging = true
                    XCTAssertTrue(leftover.hasPrefix(".merged.creating-"), "\(what): left \(entries())")
                    XCTAssertTrue(opened.stderr.contains("was stopped before it finished"), "\(what): \(opened.stderr)")
                    let staged = try runRagseg(["index", "info", parent + "/" + leftover])
                    XCTAssertEqual(staged.status, 1, "\(what): the staging folder opened as a bank")
                } else {
                    XCTAssertTrue(opened.stderr.contains("no bank here"), "\(what): \(opened.stderr)")
                }
                let again = try runRagseg(merge)
                XCTAssertEqual(again.status, 0, "\(what): \(again.stderr)")
                XCTAssertEqual(entries(), ["merged"], "\(what): the new merge removes the killed one's staging")
                try checkComplete(what)
            })
        XCTAssertTrue(sawNone && sawStaging, "some kills came before the rename, with a staging folder")
        XCTAssertTrue(sawWhole, "some kills came after the rename (the parent's sync)")
        print("index merge: \(points) crash points")
        XCTAssertGreaterThanOrEqual(points, 10)
        XCTAssertEqual(try [files(dir + "/a"), files(dir + "/b")], inputsBefore, "the inputs were never written")
    }
}

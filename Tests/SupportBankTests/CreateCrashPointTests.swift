import Foundation
import XCTest
@testable import SupportBank

/// Kills `index create` before each of its file-changing calls (CrashPoints.swift): the target is then
/// missing, or a complete bank that opens and verifies; a second create works in the first case and
/// removes the first one's staging folder, and nothing left behind is taken for a bank.
final class CreateCrashPointTests: XCTestCase {
    let createArguments = ["--stand-in", "--dinov2-variant", "vits14", "--memory-shape", "4,8,8,16"]

    func entries(_ directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
    }

    func testCreateKilledBeforeAnyFileChangeLeavesNoBankOrAWholeOne() throws {
        let parent = temporaryDirectory() + "/banks"
        let bank = parent + "/bank"
        var sawNone = false, sawWhole = false
        let points = try CrashPoints.forEachCrashPoint(
            ["index", "create", bank] + createArguments,
            prepare: {
                try? FileManager.default.removeItem(atPath: parent)
                try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
            },
            check: { point, call in
                let what = "killed before call \(point) (\(call))"
                if FileManager.default.fileExists(atPath: bank) {
                    let verify = try runRagseg(["index", "verify", bank])
                    XCTAssertEqual(verify.status, 0, "\(what): \(verify.stdout)\(verify.stderr)")
                    XCTAssertEqual(try SupportBank.open(at: bank, readOnly: true).allRecords().count, 0, what)
                    sawWhole = true
                    let again = try runRagseg(["index", "create", bank] + createArguments)
                    XCTAssertEqual(again.status, 1, "\(what): a second create must refuse the bank")
                    XCTAssertTrue(again.stderr.contains("directory is not empty"), "\(what): \(again.stderr)")
                } else {
                    sawNone = true
                    // Whatever the kill left beside the target is a hidden staging folder, never a bank.
                    for leftover in entries(parent) {
                        XCTAssertTrue(leftover.hasPrefix(".bank.creating-"), "\(what): left \(leftover)")
                        let opened = try runRagseg(["index", "info", parent + "/" + leftover])
                        XCTAssertNotEqual(opened.status, 0, "\(what): \(leftover) opened as a bank")
                        XCTAssertFalse(opened.stderr.contains("Fatal error"), opened.stderr)
                    }
                    let again = try runRagseg(["index", "create", bank] + createArguments)
                    XCTAssertEqual(again.status, 0, "\(what): \(again.stderr)")
                    XCTAssertEqual(entries(parent), ["bank"], "\(what): the new create removes the old staging")
                    XCTAssertEqual(try runRagseg(["index", "verify", bank]).status, 0, what)
                }
            })
        XCTAssertTrue(sawNone, "some kill came before the rename")
        XCTAssertTrue(sawWhole, "some kill came after the rename (the parent's sync, the index file)")
        print("index create: \(points) crash points")
        XCTAssertGreaterThanOrEqual(points, 6, "LMDB's writes and syncs, the folder sync, the rename at least")
        XCTAssertEqual(entries(parent), ["bank"])
    }

    /// An empty target directory is used (the rename replaces it); a non-empty one is refused untouched;
    /// the staging folder of a create that is still running (its process alive) is left alone.
    func testEmptyTargetIsUsedAndLiveStagingIsKept() throws {
        let parent = temporaryDirectory()
        let bank = parent + "/bank"
        try FileManager.default.createDirectory(atPath: bank, withIntermediateDirectories: true)
        let live = parent + "/.bank.creating-\(getpid())-7"  // this test process is alive
        try FileManager.default.createDirectory(atPath: live, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: live + "/" + BankCreation.markerName, contents: Data())
        let created = try runRagseg(["index", "create", bank] + createArguments)
        XCTAssertEqual(created.status, 0, created.stderr)
        XCTAssertEqual(try runRagseg(["index", "verify", bank]).status, 0)
        XCTAssertEqual(entries(parent), [".bank.creating-\(getpid())-7", "bank"])
        let refused = try runRagseg(["index", "info", live])
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains("no bank here"), refused.stderr)

        let other = parent + "/other"
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: other + "/notes.txt", contents: Data("keep".utf8))
        let r = try runRagseg(["index", "create", other] + createArguments)
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("directory is not empty"), r.stderr)
        XCTAssertEqual(entries(other), ["notes.txt"])
        XCTAssertEqual(entries(parent), [".bank.creating-\(getpid())-7", "bank", "other"], "no staging left")
    }
}

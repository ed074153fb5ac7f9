import Foundation
import RAGSegIO
import RAGSegTestSupport
import SupportBank
import XCTest

/// The published downloads as they are: `--sam2 x.pt` / `--dinov2 x.pth` wherever safetensors work, and
/// `ragseg weights convert` (fixtures from tools/make_pt_fixtures.py).
final class TorchWeightsCLITests: XCTestCase {
    let tests = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    var sam2PT: String { tests.appendingPathComponent("SAM2Tests/Fixtures/memory/weights.pt").path }
    var sam2SafeTensors: String { tests.appendingPathComponent("SAM2Tests/Fixtures/memory/weights.safetensors").path }
    var dinov2PTH: String { tests.appendingPathComponent("DINOv2Tests/Fixtures/reg_official.pth").path }
    var dinov2SafeTensors: String { tests.appendingPathComponent("DINOv2Tests/Fixtures/reg_official.safetensors").path }

    /// A bank built from the .pt/.pth files and one built from the safetensors files segment a query alike.
    func testBanksFromCheckpointsAndSafeTensorsGiveTheSameMasks() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (images, masks) = try writeDataset(dir, count: 3)
        let query = images + "/case001.png"
        for (name, dinov2, sam2) in [("pt", dinov2PTH, sam2PT), ("st", dinov2SafeTensors, sam2SafeTensors)] {
            let bank = dir + "/bank-" + name
            var r = try runRagseg(["index", "create", bank, "--dinov2", dinov2, "--sam2", sam2])
            XCTAssertEqual(r.status, 0, r.stderr)
            r = try runRagseg(["index", "add", bank, "--images", images, "--masks", masks, "--quiet"])
            XCTAssertEqual(r.status, 0, r.stderr)
            r = try runRagseg(["segment", "--index", bank, "--k", "2", "--out", dir + "/seg-" + name, query])
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        let info = try runRagseg(["index", "info", dir + "/bank-pt"])
        for file in [dinov2PTH, sam2PT] {
            XCTAssertTrue(info.stdout.contains(hexString(try SHA256.hash(fileAt: file))), info.stdout)
        }
        let a = try Data(contentsOf: URL(fileURLWithPath: dir + "/seg-pt/case001.png"))
        let b = try Data(contentsOf: URL(fileURLWithPath: dir + "/seg-st/case001.png"))
        XCTAssertEqual(a, b, "masks from the .pt/.pth bank and the safetensors bank differ")
    }

    func testWeightsConvertGivesTheSameTensorsAndRefusesHostileFiles() throws {
        let dir = temporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let out = dir + "/sam2.safetensors"
        var r = try runRagseg(["weights", "convert", sam2PT, out])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("387 tensors"), r.stdout)
        let converted = try SafeTensors(path: out), original = try SafeTensors(path: sam2SafeTensors)
        XCTAssertEqual(converted.names, original.names)
        for name in original.names {
            XCTAssertEqual(
                try converted.tensor(name).data.map(\.bitPattern), try original.tensor(name).data.map(\.bitPattern),
                name)
        }
        XCTAssertEqual(
            try Data(contentsOf: URL(fileURLWithPath: out + ".json")),
            try Data(contentsOf: URL(fileURLWithPath: sam2PT + ".json")), "the model description travels along")
        r = try runRagseg(["weights", "convert", sam2PT, out])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("already exists"), r.stderr)

        let hostile = tests.appendingPathComponent("RAGSegIOTests/Fixtures/torch/hostile_os_system.pt").path
        r = try runRagseg(["weights", "convert", hostile, dir + "/x.safetensors"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("hostile_os_system.pt") && r.stderr.contains("'os.system'"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/x.safetensors"))
        r = try runRagseg(["index", "create", dir + "/bank", "--dinov2", dinov2PTH, "--sam2", hostile])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("refuses global 'os.system'"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/bank"), "a refused model creates no bank")
    }
}

import Foundation
import RAGSegPipeline
import RAGSegTestSupport
import SupportBank
import XCTest

/// A bank records its models' effective configurations: the same SAM 2 weights under a changed model
/// description (`fpnTopDownLevels` in `<weights>.json`) make other memories, so `index add` and
/// `segment --index` refuse them like other weights, naming the field; the unchanged description works.
final class ModelConfigurationIdentityTests: XCTestCase {
    func testChangedSidecarIsRefusedLikeOtherWeights() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
            "ragseg-config-identity-\(getpid())-\(UUID().uuidString.prefix(8))"
        ).path
        try FileManager.default.createDirectory(atPath: dir + "/sam2", withIntermediateDirectories: true)
        let weights = dir + "/sam2/weights.safetensors"
        try FileManager.default.createSymbolicLink(atPath: weights, withDestinationPath: FixtureModels.sam2)
        let original = try Data(contentsOf: URL(fileURLWithPath: FixtureModels.sam2 + ".json"))
        try original.write(to: URL(fileURLWithPath: weights + ".json"))
        let (images, masks) = try writeDataset(dir + "/data", count: 2)
        let bank = dir + "/bank"

        var r = try RagsegBinary.run(["index", "create", bank, "--dinov2", FixtureModels.dinov2, "--sam2", weights])
        XCTAssertEqual(r.status, 0, r.stderr)
        let recorded = try SupportBank.open(at: bank, readOnly: true).metadata
        XCTAssertTrue(
            recorded.supportModel.configuration?.contains("\"fpnTopDownLevels\":[2,3]") ?? false,
            "\(recorded.supportModel)")
        XCTAssertTrue(
            recorded.retrievalModel.configuration?.contains("\"num_hidden_layers\":2") ?? false,
            "\(recorded.retrievalModel)")
        let add = ["index", "add", bank, "--images", images, "--masks", masks, "--quiet"]
        r = try RagsegBinary.run(add)
        XCTAssertEqual(r.status, 0, r.stderr)

        // The same weights (same SHA-256) with one top-down level less.
        var sidecar = try JSONSerialization.jsonObject(with: original) as! [String: Any]
        var encoder = sidecar["imageEncoder"] as! [String: Any]
        encoder["fpnTopDownLevels"] = [3]
        sidecar["imageEncoder"] = encoder
        try JSONSerialization.data(withJSONObject: sidecar).write(to: URL(fileURLWithPath: weights + ".json"))
        let expected =
            "was built with another support (SAM 2) configuration: fpnTopDownLevels [3] (the bank's: [2,3])"
        let before = try SupportBank.open(at: bank, readOnly: true).allRecords()
        r = try RagsegBinary.run(add)
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains(expected), r.stderr)
        let segment = ["segment", "--index", bank, "--k", "1", "--out", dir + "/out", images + "/case000.png"]
        r = try RagsegBinary.run(segment)
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains(expected), r.stderr)
        XCTAssertEqual(try SupportBank.open(at: bank, readOnly: true).allRecords(), before, "nothing stored changed")

        // Back to the description the bank was made with: both work again.
        try original.write(to: URL(fileURLWithPath: weights + ".json"))
        r = try RagsegBinary.run(segment)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/out/case000.png"))
    }

    /// Banks from before the configuration was recorded compare weights only.
    func testBankWithoutRecordedConfigurationComparesWeightsOnly() throws {
        let given = ModelIdentity(name: "sam2", variant: "v", sha256: "ab", configuration: "{\"a\":1}")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
            "ragseg-config-identity-old-\(getpid())-\(UUID().uuidString.prefix(8))"
        ).path
        let older = ModelIdentity(name: "sam2", variant: "v", sha256: "ab")
        let bank = try SupportBank.create(
            at: dir,
            metadata: BankMetadata(
                retrievalModel: older, supportModel: older, embeddingDimension: 4,
                memoryShape: MemoryShape(channels: 1, height: 1, width: 1, pointerDimension: 1), labels: ["x"]))
        XCTAssertNoThrow(try bank.requireModels(retrieval: given, support: given))
        var other = given
        other.sha256 = "cd"
        XCTAssertThrowsError(try bank.requireModels(retrieval: given, support: other))
        let encoded = String(decoding: try JSONEncoder().encode(older), as: UTF8.self)
        XCTAssertFalse(encoded.contains("configuration"), "older identities encode as before: \(encoded)")
    }
}

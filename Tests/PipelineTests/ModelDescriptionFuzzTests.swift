import DINOv2
import Foundation
import RAGSegIO
import RAGSegPipeline
import RAGSegTestSupport
import SAM2
import XCTest

/// Every numeric field of the tiny fixture models' descriptions (the SAM 2 sidecar `<weights>.json` and
/// DINOv2's config.json), list elements included, set to 0, -1, 1e9 and Int.max, and every list emptied:
/// loading the model either works (the values a model accepts) or throws an error that names the file and
/// the field; no trap, no hang. A few CLI runs show the same as exit status 1 with the message.
final class ModelDescriptionFuzzTests: XCTestCase {
    static let hostile: [Int] = [0, -1, 1_000_000_000, Int.max]

    /// One mutation of a JSON object: its description ("stages[2] = -1") and the changed object.
    struct Mutation {
        var field: String
        var label: String
        var object: [String: Any]
    }

    /// JSON true/false arrive as NSNumbers of type char; they are flags, not numeric fields.
    static func isBool(_ number: NSNumber) -> Bool { ["c", "B"].contains(String(cString: number.objCType)) }

    /// Every numeric value (top level and inside lists) set to each hostile value, every list emptied.
    static func mutations(of object: [String: Any]) -> [Mutation] {
        var result: [Mutation] = []
        for key in object.keys.sorted() {
            if let number = object[key] as? NSNumber, !isBool(number) {
                for value in hostile {
                    var changed = object
                    changed[key] = value
                    result.append(Mutation(field: key, label: "\(key) = \(value)", object: changed))
                }
            } else if let list = object[key] as? [Any] {
                var emptied = object
                emptied[key] = [Any]()
                result.append(Mutation(field: key, label: "\(key) = []", object: emptied))
                for (i, element) in list.enumerated() {
                    guard let number = element as? NSNumber, !isBool(number) else { continue }
                    for value in hostile {
                        var changedList = list
                        changedList[i] = value
                        var changed = object
                        changed[key] = changedList
                        result.append(Mutation(field: key, label: "\(key)[\(i)] = \(value)", object: changed))
                    }
                }
            }
        }
        return result
    }

    func write(_ object: [String: Any], to path: String) throws {
        try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]).write(to: URL(fileURLWithPath: path))
    }

    /// A folder with a link to the SAM 2 fixture weights and room for its sidecar; returns the weights path.
    func sam2Copy(_ dir: String) throws -> String {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let weights = dir + "/weights.safetensors"
        try FileManager.default.createSymbolicLink(atPath: weights, withDestinationPath: FixtureModels.sam2)
        return weights
    }

    /// A folder with a link to the DINOv2 fixture weights and room for its config.json.
    func dinov2Copy(_ dir: String) throws -> String {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(
            atPath: dir + "/model.safetensors", withDestinationPath: FixtureModels.dinov2 + "/model.safetensors")
        return dir
    }

    func temporaryDirectory(_ name: String = #function) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent(
            "ragseg-fuzz-\(getpid())-\(name.filter(\.isLetter))-\(UUID().uuidString.prefix(8))"
        ).path
    }

    func testEverySidecarFieldOutOfRangeIsAClearError() throws {
        let sidecar =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: FixtureModels.sam2 + ".json"))) as! [String: Any]
        let encoder = sidecar["imageEncoder"] as! [String: Any]
        let weights = try sam2Copy(temporaryDirectory())
        // Values the model accepts: a block (0) or level (0) picked for global attention / the top-down path,
        // or none at all. Everything else must be refused.
        let accepted: Set<String> = [
            "globalAttentionBlocks[0] = 0", "globalAttentionBlocks = []", "fpnTopDownLevels[0] = 0",
            "fpnTopDownLevels[1] = 0", "fpnTopDownLevels = []",
        ]
        let all = Self.mutations(of: encoder)
        XCTAssertGreaterThanOrEqual(all.count, 80, "6 numbers and 13 list elements x 4 values, 5 lists emptied")
        var refused = 0
        for mutation in all {
            try write(["imageEncoder": mutation.object], to: weights + ".json")
            do {
                let model = try SAM2Model(checkpoint: weights)
                XCTAssertTrue(accepted.contains(mutation.label), "\(mutation.label) was accepted")
                XCTAssertEqual(model.config.imageSize, 128)
            } catch let error as RAGSegIOError {
                refused += 1
                XCTAssertFalse(accepted.contains(mutation.label), "\(mutation.label): \(error)")
                XCTAssertEqual(error.path, weights + ".json", "\(mutation.label): \(error)")
                XCTAssertTrue(error.message.hasPrefix(mutation.field), "\(mutation.label): \(error)")
            }
        }
        XCTAssertEqual(refused, all.count - accepted.count)
    }

    /// The memory path's widths and versions come from the weights' shapes. A description may restate them; one
    /// that states other values (the description of another model) is refused with the field named, where it used
    /// to be overridden without a word.
    func testSidecarContradictingTheWeightsMemoryPathIsRefused() throws {
        let sidecar =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: FixtureModels.sam2 + ".json"))) as! [String: Any]
        let encoder = sidecar["imageEncoder"] as! [String: Any]
        let actual = try SAM2Model(checkpoint: FixtureModels.sam2).config
        let weights = try sam2Copy(temporaryDirectory())
        let fields: [(String, Any, Any)] = [
            ("memoryDim", actual.memoryDim, actual.memoryDim * 2),
            ("memorySlots", actual.memorySlots, actual.memorySlots + 1),
            ("pointerTemporalEncoding", actual.pointerTemporalEncoding, !actual.pointerTemporalEncoding),
            ("noObjectSpatialEmbedding", actual.noObjectSpatialEmbedding, !actual.noObjectSpatialEmbedding),
        ]
        for (field, same, other) in fields {
            var restated = encoder
            restated[field] = same
            try write(["imageEncoder": restated], to: weights + ".json")
            XCTAssertNoThrow(try SAM2Model(checkpoint: weights), "\(field) restated")
            var contradicted = encoder
            contradicted[field] = other
            try write(["imageEncoder": contradicted], to: weights + ".json")
            XCTAssertThrowsError(try SAM2Model(checkpoint: weights), field) { error in
                guard let error = error as? RAGSegIOError else { return XCTFail("\(field): \(error)") }
                XCTAssertEqual(error.path, weights + ".json", "\(field): \(error)")
                XCTAssertTrue(error.message.hasPrefix("\(field) \(other) does not match the weights"), "\(error)")
            }
        }
    }

    func testEveryConfigJSONFieldOutOfRangeIsAClearError() throws {
        let config =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: FixtureModels.dinov2 + "/config.json"))) as! [String: Any]
        let folder = try dinov2Copy(temporaryDirectory())
        // The fields the model is built from; the rest (dropouts, initializer, backbone outputs, names) are
        // training or wrapper settings it ignores, so any value loads.
        let used: Set<String> = [
            "hidden_size", "image_size", "layer_norm_eps", "mlp_ratio", "num_attention_heads", "num_channels",
            "num_hidden_layers", "patch_size",
        ]
        let all = Self.mutations(of: config)
        XCTAssertGreaterThanOrEqual(all.count, 50)
        var refused = 0
        for mutation in all {
            try write(mutation.object, to: folder + "/config.json")
            do {
                let model = try DINOv2Model(path: folder)
                XCTAssertFalse(used.contains(mutation.field), "\(mutation.label) was accepted")
                XCTAssertEqual(model.config.hiddenSize, 128)
            } catch let error as RAGSegIOError {
                refused += 1
                XCTAssertTrue(used.contains(mutation.field), "\(mutation.label): \(error)")
                XCTAssertEqual(error.path, folder + "/config.json", "\(mutation.label): \(error)")
                XCTAssertTrue(error.message.hasPrefix(mutation.field), "\(mutation.label): \(error)")
            }
        }
        XCTAssertEqual(refused, used.count * Self.hostile.count)
    }

    /// The reproductions through the command line: `index create` (documented as the check that
    /// the models load) and `embed` stop with status 1 and the file and field, never a signal.
    func testCommandsRefuseBadDescriptionsWithStatus1() throws {
        let dir = temporaryDirectory()
        let weights = try sam2Copy(dir + "/sam2")
        let dinov2 = try dinov2Copy(dir + "/dinov2")
        let sidecar =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: FixtureModels.sam2 + ".json"))) as! [String: Any]
        let config =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: FixtureModels.dinov2 + "/config.json"))) as! [String: Any]
        try write(config, to: dinov2 + "/config.json")
        let (images, masks) = try writeDataset(dir + "/data", count: 1)

        for (key, value, expected) in [
            ("numHeads", 0 as Any, "numHeads 0 must be >= 1"), ("stages", [Int]() as Any, "stages [] must list"),
            ("imageSize", -16 as Any, "imageSize -16 must be >= 32"), ("scalp", 5 as Any, "scalp 5 must be 1"),
            ("qPoolStages", 1 as Any, "qPoolStages 1 must be 3"),
            ("imageSize", 100_000 as Any, "imageSize 100000 must be <= 4096"),
        ] {
            var encoder = sidecar["imageEncoder"] as! [String: Any]
            encoder[key] = value
            try write(["imageEncoder": encoder], to: weights + ".json")
            let bank = dir + "/bank-\(key)"
            let r = try RagsegBinary.run(["index", "create", bank, "--dinov2", dinov2, "--sam2", weights])
            XCTAssertEqual(r.status, 1, "\(key) = \(value): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(weights + ".json: " + expected), "\(key) = \(value): \(r.stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: bank), "nothing created")
        }
        // segment reads the same description (this one crashed in the FPN before).
        var encoder = sidecar["imageEncoder"] as! [String: Any]
        encoder["qPoolStages"] = 1
        try write(["imageEncoder": encoder], to: weights + ".json")
        let segment = try RagsegBinary.run([
            "segment", "--sam2", weights, "--support", images + "/case000.png=" + masks + "/case000.png",
            "--out", dir + "/out", images + "/case000.png",
        ])
        XCTAssertEqual(segment.status, 1, segment.stderr)
        XCTAssertTrue(segment.stderr.contains(weights + ".json: qPoolStages 1 must be 3"), segment.stderr)

        for (key, value, expected) in [
            ("num_hidden_layers", -1, "num_hidden_layers -1 must be >= 1"),
            ("image_size", -140, "image_size -140 must be >= 1"),
        ] {
            var changed = config
            changed[key] = value
            try write(changed, to: dinov2 + "/config.json")
            let r = try RagsegBinary.run([
                "embed", "--dinov2", dinov2, images + "/case000.png", "--out", dir + "/e.npy",
            ])
            XCTAssertEqual(r.status, 1, "\(key) = \(value): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(dinov2 + "/config.json: " + expected), "\(key) = \(value): \(r.stderr)")
        }
    }
}

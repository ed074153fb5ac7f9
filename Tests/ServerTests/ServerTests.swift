import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import XCTest
import RAGSegIO
import RAGSegTestSupport
import RAGSegPipeline
import SAM2
import SupportBank
@testable import RAGSegServer

/// The server in-process on an ephemeral loopback port, over a bank built from the tiny fixture models
/// (the same models PipelineTests uses end to end), queried with real HTTP requests.
final class ServerTests: XCTestCase {
    let width = 96, height = 112
    var directory: URL!
    var sources: [CaseSource] = []
    var segmenter: RetrievalSegmenter!
    var server: SegmentationServer!
    var serverTask: Task<Void, Error>?
    var base: URL!

    override func setUp() async throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("ragseg-serve-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        sources = try (0..<7).map { i in
            try SyntheticCases.write(
                SyntheticCases.make(seed: UInt64(i + 1), width: width, height: height),
                index: i, width: width, height: height, to: directory)
        }
        let retrieval = try DINOv2RetrievalEncoder(path: FixtureModels.dinov2, inputSize: 112)
        let support = try SAM2Checkpoint.supportEncoder(path: FixtureModels.sam2)
        let metadata = BankMetadata(
            retrievalModel: retrieval.model, supportModel: support.model,
            embeddingDimension: retrieval.dimension, memoryShape: support.memoryShape,
            preprocessing: retrieval.preprocessing.merging(support.preprocessing) { a, _ in a },
            labels: ["object"])
        let bank = try SupportBank.create(at: directory.appendingPathComponent("bank").path, metadata: metadata)
        // Cases 0..<6 in the bank; case 6 is the held-out target (and the case tests add over HTTP).
        try bank.add(
            try sources.prefix(6).map {
                try CaseLoader.prepare(try CaseLoader.load($0, labelCount: 1), retrieval: retrieval, support: support)
            })
        segmenter = try RetrievalSegmenter(bank: bank, retrieval: retrieval, support: support)
        try await start(maxUploadBytes: 1 << 20)
    }

    override func tearDown() async throws {
        await server?.shutdown()
        _ = try? await serverTask?.value
        try? FileManager.default.removeItem(at: directory)
    }

    func start(maxUploadBytes: Int) async throws {
        server = try SegmentationServer(
            segmenter: segmenter,
            configuration: ServerConfiguration(
                host: "127.0.0.1", port: 0, k: 3, maxUploadBytes: maxUploadBytes,
                uploadsDirectory: directory.appendingPathComponent("uploads").path))
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let server = self.server!
        serverTask = Task {
            defer { continuation.finish() }
            try await server.run(gracefulShutdownSignals: []) { continuation.yield($0) }
        }
        var iterator = ports.makeAsyncIterator()
        let next = await iterator.next()
        let port = try XCTUnwrap(next, "server did not start")
        base = URL(string: "http://127.0.0.1:\(port)")!
    }

    // MARK: - HTTP helpers

    func send(_ method: String, _ path: String, body: Data? = nil, contentType: String? = nil) async throws -> Reply {
        try await HTTP.send(base, method, path, body: body, contentType: contentType)
    }

    func file(_ path: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path)) }

    func multipart(_ parts: [(name: String, data: Data)]) -> (Data, String) { HTTP.multipart(parts) }

    func addCase(_ i: Int) async throws -> Reply {
        let (body, type) = multipart([("image", try file(sources[i].image)), ("mask", try file(sources[i].mask))])
        return try await send("POST", "/cases", body: body, contentType: type)
    }

    func retrievedIDs(_ reply: Reply) -> [Int] {
        let labels = reply.json["labels"] as? [[String: Any]] ?? []
        return (labels.first?["retrieved"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? Int }
    }

    // MARK: - Tests

    func testHealthAndInfo() async throws {
        let health = try await send("GET", "/health")
        XCTAssertEqual(health.status, 200)
        XCTAssertEqual(health.json["status"] as? String, "ok")
        let info = try await send("GET", "/info")
        XCTAssertEqual(info.status, 200)
        XCTAssertEqual(info.json["cases"] as? Int, 6)
        XCTAssertEqual(info.json["labels"] as? [String], ["object"])
        let models = try XCTUnwrap(info.json["models"] as? [String: [String: String]])
        XCTAssertEqual(models["retrieval"]?["sha256"], segmenter.retrieval.model.sha256)
        XCTAssertEqual(models["support"]?["sha256"], segmenter.support.model.sha256)
        XCTAssertEqual(info.json["maxUploadBytes"] as? Int, 1 << 20)
    }

    func testSegmentReturnsTheSegmentersMaskAndRetrieval() async throws {
        let target = try PNG.read(sources[6].image)
        let expected = try segmenter.segment(target, name: "target", k: 3)

        let png = try await send(
            "POST", "/segment?format=png", body: try file(sources[6].image), contentType: "image/png")
        XCTAssertEqual(png.status, 200, png.text)
        XCTAssertEqual(png.headers["content-type"], "image/png")
        let mask = try PNG.read(data: [UInt8](png.body), name: "reply")
        XCTAssertEqual([mask.width, mask.height, mask.channels], [width, height, 1])
        XCTAssertEqual(mask.pixels, expected.mask.map { $0 ? 255 : 0 })
        XCTAssertEqual(
            png.headers["x-ragseg-retrieved"],
            expected.supports.map(\.id).sorted().map(String.init).joined(separator: ","))

        let json = try await send("POST", "/segment?format=json&k=3&label=object", body: try file(sources[6].image))
        XCTAssertEqual(json.status, 200, json.text)
        XCTAssertEqual(retrievedIDs(json), expected.supports.map { Int($0.id) })
        let label = try XCTUnwrap((json.json["labels"] as? [[String: Any]])?.first)
        let similarities = (label["retrieved"] as? [[String: Any]] ?? []).compactMap { $0["similarity"] as? Double }
        for (s, hit) in zip(similarities, expected.supports) { XCTAssertEqual(s, Double(hit.score), accuracy: 1e-6) }
        XCTAssertEqual(
            label["objectScore"] as? Double ?? .nan, Double(expected.segmentation.objectScore), accuracy: 1e-6)
        XCTAssertEqual((label["iou"] as? [Double])?.count, expected.segmentation.iou.count)
        XCTAssertEqual(label["foregroundPixels"] as? Int, expected.mask.filter { $0 }.count)

        // A client that waits for "100 Continue" (curl does above 1 MiB) gets it at once, not after its timeout (1 s).
        let start = Date()
        let waited = try await HTTP.send(
            base, "POST", "/segment", body: try file(sources[6].image), headers: ["Expect": "100-continue"])
        XCTAssertEqual(waited.status, 200, waited.text)
        XCTAssertEqual(waited.body, png.body)
        XCTAssertLessThan(Date().timeIntervalSince(start), 0.8)

        // k from the request; the server default (3) otherwise.
        let one = try await send("POST", "/segment?format=json&k=1", body: try file(sources[6].image))
        XCTAssertEqual(retrievedIDs(one), [Int(expected.supports[0].id)])
    }

    /// point=/box= query parameters refine the result exactly as the segmenter does with that prompt.
    func testPromptsInTheQueryRefineTheSegmentation() async throws {
        let target = try PNG.read(sources[6].image)
        let prompt = SAM2Prompt(
            points: [SAM2Point(x: 40, y: 52.5, label: 1), SAM2Point(x: 5, y: 100, label: 0)],
            box: SAM2Box(x0: 20, y0: 25, x1: 80, y1: 90))
        let expected = try segmenter.segment(target, name: "target", k: 3, prompt: prompt)
        let plain = try segmenter.segment(target, name: "target", k: 3)
        XCTAssertNotEqual(expected.segmentation.objectScore, plain.segmentation.objectScore)
        let query = "point=40,52.5&point=5,100,0&box=20,25,80,90"

        let png = try await send("POST", "/segment?\(query)", body: try file(sources[6].image))
        XCTAssertEqual(png.status, 200, png.text)
        let mask = try PNG.read(data: [UInt8](png.body), name: "reply")
        XCTAssertEqual(mask.pixels, expected.mask.map { $0 ? 255 : 0 })

        // Percent-encoded commas work the same; JSON echoes the prompt and reports the refined scores.
        let json = try await send(
            "POST", "/segment?format=json&point=40%2C52.5&point=5,100,0&box=20%2C25%2C80%2C90",
            body: try file(sources[6].image))
        XCTAssertEqual(json.status, 200, json.text)
        let label = try XCTUnwrap((json.json["labels"] as? [[String: Any]])?.first)
        XCTAssertEqual(
            label["objectScore"] as? Double ?? .nan, Double(expected.segmentation.objectScore), accuracy: 1e-6)
        XCTAssertEqual(label["iou"] as? [Double], expected.segmentation.iou.map(Double.init))
        let echoed = try XCTUnwrap(json.json["prompt"] as? [String: Any])
        XCTAssertEqual(echoed["points"] as? [[Double]], [[40, 52.5, 1], [5, 100, 0]])
        XCTAssertEqual(echoed["box"] as? [Double], [20, 25, 80, 90])

        // Malformed or out-of-image prompts: 400 naming the problem; nothing reaches the models.
        let submitted = server.worker.submitted.load(ordering: .relaxed)
        let bad: [(String, String)] = [
            ("point=abc", "point 'abc' must be x,y or x,y,label"),
            ("point=3,x", "point '3,x': y 'x' is not a number"),
            ("point=3,4,7", "label '7' must be 1 (positive) or 0 (negative)"),
            ("point=96,3", "point 96,3 lies outside the 96x112 image"),
            ("box=1,2,3", "box '1,2,3' must be x0,y0,x1,y1"),
            ("box=0,0,5,5&box=1,1,6,6", "at most one box may be given, got 2"),
            ("box=50,0,10,10", "is empty or reversed"),
            ("box=0,0,10,113", "lies outside the 96x112 image"),
        ]
        for (query, message) in bad {
            let reply = try await send("POST", "/segment?\(query)", body: try file(sources[6].image))
            XCTAssertEqual(reply.status, 400, "\(query): \(reply.text)")
            XCTAssertTrue((reply.json["error"] as? String ?? "").contains(message), "\(query): \(reply.text)")
        }
        XCTAssertEqual(server.worker.submitted.load(ordering: .relaxed), submitted)
    }

    /// On a multi-label bank a prompt needs one label (it refines one object).
    func testPromptsOnAMultiLabelBankNeedOneLabel() async throws {
        await server.shutdown()
        _ = try await serverTask?.value
        let metadata = BankMetadata(
            retrievalModel: segmenter.retrieval.model, supportModel: segmenter.support.model,
            embeddingDimension: segmenter.retrieval.dimension, memoryShape: segmenter.support.memoryShape,
            labels: ["liver", "tumour"])
        let bank = try SupportBank.create(at: directory.appendingPathComponent("bank2").path, metadata: metadata)
        segmenter = try RetrievalSegmenter(bank: bank, retrieval: segmenter.retrieval, support: segmenter.support)
        try await start(maxUploadBytes: 1 << 20)
        let reply = try await send("POST", "/segment?point=3,4", body: try file(sources[6].image))
        XCTAssertEqual(reply.status, 400, reply.text)
        XCTAssertTrue(
            (reply.json["error"] as? String ?? "").contains(
                "point/box refine one label; the bank has labels liver, tumour: add label=NAME"),
            reply.text)
        // With a label it gets past that check (and this empty bank has no case for it: 422).
        let labelled = try await send("POST", "/segment?point=3,4&label=tumour", body: try file(sources[6].image))
        XCTAssertEqual(labelled.status, 422, labelled.text)
    }

    /// A label map is 8-bit: on a bank with more labels, label=all is a 400 naming the way out; one label is fine.
    func testLabelMapBeyond255LabelsIsABadRequest() async throws {
        await server.shutdown()
        _ = try await serverTask?.value
        let metadata = BankMetadata(
            retrievalModel: segmenter.retrieval.model, supportModel: segmenter.support.model,
            embeddingDimension: segmenter.retrieval.dimension, memoryShape: segmenter.support.memoryShape,
            labels: (1...256).map { "organ\($0)" })
        let bank = try SupportBank.create(at: directory.appendingPathComponent("bank256").path, metadata: metadata)
        segmenter = try RetrievalSegmenter(bank: bank, retrieval: segmenter.retrieval, support: segmenter.support)
        try await start(maxUploadBytes: 1 << 20)
        let reply = try await send("POST", "/segment", body: try file(sources[6].image))
        XCTAssertEqual(reply.status, 400, reply.text)
        XCTAssertTrue(
            (reply.json["error"] as? String ?? "").contains(
                "more than an 8-bit label map holds (255): ask for one label with label=NAME"),
            reply.text)
        // One label passes that check (this empty bank has no case for it: 422).
        let one = try await send("POST", "/segment?label=organ256", body: try file(sources[6].image))
        XCTAssertEqual(one.status, 422, one.text)
    }

    /// A case whose mask is empty is stored with its empty-mask memory and retrieved like any other.
    func testAddedEmptyMaskCaseSupportsWithItsEmptyMemory() async throws {
        let image = try PNG.read(sources[6].image)
        let emptyMask = PNG.encodeGray8(
            [UInt8](repeating: 0, count: image.width * image.height), width: image.width, height: image.height)
        let (body, type) = multipart([("image", try file(sources[6].image)), ("mask", Data(emptyMask))])
        let added = try await send("POST", "/cases", body: body, contentType: type)
        XCTAssertEqual(added.status, 201, added.text)
        XCTAssertEqual(added.json["labels"] as? [String], [])
        XCTAssertEqual(added.json["emptyMaskMemory"] as? Bool, true)
        let id = try XCTUnwrap(added.json["id"] as? Int)

        let reply = try await send("POST", "/segment?format=json&k=2", body: try file(sources[6].image))
        XCTAssertEqual(reply.status, 200, reply.text)
        XCTAssertEqual(retrievedIDs(reply).first, id, "the new case retrieves itself first")
        let first = (reply.json["labels"] as? [[String: Any]])?.first?["retrieved"] as? [[String: Any]]
        XCTAssertEqual(first?.first?["hasLabel"] as? Bool, false)
        let positive = try await send(
            "POST", "/segment?format=json&k=2&positive_only=1", body: try file(sources[6].image))
        XCTAssertEqual(positive.status, 200, positive.text)
        XCTAssertFalse(retrievedIDs(positive).contains(id), "positive_only passes over it")
    }

    func testAddedCaseIsSearchableByTheNextRequest() async throws {
        let added = try await addCase(6)
        XCTAssertEqual(added.status, 201, added.text)
        let id = try XCTUnwrap(added.json["id"] as? Int)
        XCTAssertEqual(added.json["labels"] as? [String], ["object"])
        let stored = try XCTUnwrap(added.json["image"] as? String)
        XCTAssertEqual(try file(stored), try file(sources[6].image), "the upload is stored byte for byte")

        let reply = try await send("POST", "/segment?format=json&k=2", body: try file(sources[6].image))
        XCTAssertEqual(reply.status, 200, reply.text)
        XCTAssertEqual(retrievedIDs(reply).first, id, "the new case retrieves itself first")
        let first = (reply.json["labels"] as? [[String: Any]])?.first?["retrieved"] as? [[String: Any]]
        XCTAssertEqual(first?.first?["similarity"] as? Double ?? 0, 1, accuracy: 1e-5)
        XCTAssertEqual(first?.first?["hasLabel"] as? Bool, true)
        let positive = try await send(
            "POST", "/segment?format=json&k=2&positive_only=1", body: try file(sources[6].image))
        XCTAssertEqual(retrievedIDs(positive), retrievedIDs(reply), "every case here has the object")

        let again = try await addCase(6)
        XCTAssertEqual(again.status, 200, again.text)
        XCTAssertEqual(again.json["added"] as? Bool, false)
        XCTAssertEqual(again.json["id"] as? Int, id)
        // Content already in the bank from its own files: the upload keeps no copy.
        let original = sources[0]
        let (body, type) = multipart([("image", try file(original.image)), ("mask", try file(original.mask))])
        let duplicate = try await send("POST", "/cases", body: body, contentType: type)
        XCTAssertEqual(duplicate.status, 200, duplicate.text)
        XCTAssertEqual(duplicate.json["image"] as? String, original.image)
        let uploads = try FileManager.default.contentsOfDirectory(
            atPath: directory.appendingPathComponent("uploads").path)
        XCTAssertEqual(uploads.count, 2, "\(uploads)")
        let reply1 = try await send("GET", "/info")
        XCTAssertEqual(reply1.json["cases"] as? Int, 7)
    }

    func testSegmentsWhileAnAddRunsAllSucceed() async throws {
        let image = try file(sources[3].image)
        let before = try segmenter.segment(try PNG.read(sources[3].image), name: "t", k: 3).mask
        let (body, type) = multipart([("image", try file(sources[6].image)), ("mask", try file(sources[6].mask))])
        let base = self.base!
        let results = try await withThrowingTaskGroup(of: (String, Reply).self) { group in
            group.addTask { ("add", try await HTTP.send(base, "POST", "/cases", body: body, contentType: type)) }
            for _ in 0..<4 {
                group.addTask {
                    ("segment", try await HTTP.send(base, "POST", "/segment", body: image, contentType: "image/png"))
                }
            }
            var all: [(String, Reply)] = []
            for try await r in group { all.append(r) }
            return all
        }
        XCTAssertEqual(results.count, 5)
        // Case 3 is in the bank; its 3 nearest cases may or may not include the new case, depending on
        // whether a segment ran before or after the add: each reply is one of the two masks.
        let after = try segmenter.segment(try PNG.read(sources[3].image), name: "t", k: 3).mask
        for (kind, reply) in results {
            if kind == "add" {
                XCTAssertEqual(reply.status, 201, reply.text)
            } else {
                XCTAssertEqual(reply.status, 200, reply.text)
                let mask = try PNG.read(data: [UInt8](reply.body), name: "reply").pixels
                XCTAssertTrue(mask == before.map { $0 ? 255 : 0 } || mask == after.map { $0 ? 255 : 0 })
            }
        }
        let reply2 = try await send("GET", "/info")
        XCTAssertEqual(reply2.json["cases"] as? Int, 7)
    }

    func testAFirstVolumeCaseRecordsA2DBanksVolumeSettings() async throws {
        var info = try await send("GET", "/info")
        XCTAssertTrue(info.json["volumeSettings"] is NSNull, info.text)
        let volume = try VolumeBanks.writeCase(index: 0, to: directory.appendingPathComponent("volumes"))
        let (body, type) = HTTP.multipart(
            [("image", try file(volume.image)), ("mask", try file(volume.mask))], contentType: "application/gzip")
        let reply = try await send("POST", "/cases?slice_axis=coronal", body: body, contentType: type)
        XCTAssertEqual(reply.status, 201, reply.text)
        XCTAssertFalse((reply.json["addedIDs"] as? [Int] ?? []).isEmpty, reply.text)

        // Recorded and used by the server from now on (the query needs no settings of its own).
        let recorded = VolumeSettings(axis: .coronal, intensity: .mrDefault, channel: 0)
        info = try await send("GET", "/info")
        XCTAssertEqual((info.json["volumeSettings"] as? [String: Any])?["sliceAxis"] as? String, "coronal", info.text)
        let query = try await send("POST", "/segment?format=json", body: try file(volume.image))
        XCTAssertEqual(query.status, 200, query.text)
        let report = try JSONDecoder().decode(VolumeReport.self, from: query.body)
        XCTAssertEqual(report.settings, recorded)
        XCTAssertEqual(report.notes, [])
        // Settings now differ from the bank's: refused.
        let other = try await send("POST", "/cases?slice_axis=axial", body: body, contentType: type)
        XCTAssertEqual(other.status, 400, other.text)
    }

    func testBadInputGetsClear4xx() async throws {
        let image = try file(sources[6].image)
        let bad = try await send("POST", "/segment", body: Data("not a png".utf8), contentType: "image/png")
        XCTAssertEqual(bad.status, 400)
        XCTAssertTrue((bad.json["error"] as? String ?? "").contains("PNG"), bad.text)
        let empty = try await send("POST", "/segment", body: Data())
        XCTAssertEqual(empty.status, 400, empty.text)

        // A PNG header declaring a 100000 x 100000 canvas is refused before decoding.
        var huge = Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13] + Array("IHDR".utf8))
        huge += Data([0, 1, 0x86, 0xA0, 0, 1, 0x86, 0xA0, 8, 0, 0, 0, 0, 0, 0, 0, 0])
        let bomb = try await send("POST", "/segment", body: huge)
        XCTAssertEqual(bomb.status, 400)
        XCTAssertTrue((bomb.json["error"] as? String ?? "").contains("100000x100000"), bomb.text)
        huge.replaceSubrange(16..<24, with: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])
        let widest = try await send("POST", "/segment", body: huge)
        XCTAssertEqual(widest.status, 400, widest.text)

        let label = try await send("POST", "/segment?label=liver", body: image)
        XCTAssertEqual(label.status, 400)
        XCTAssertTrue((label.json["error"] as? String ?? "").contains("liver"), label.text)
        for k in ["0", "65", "x"] {
            let reply = try await send("POST", "/segment?k=\(k)", body: image)
            XCTAssertEqual(reply.status, 400, "k=\(k): \(reply.text)")
        }
        let reply3 = try await send("POST", "/segment?format=gif", body: image)
        XCTAssertEqual(reply3.status, 400)
        let positive = try await send("POST", "/segment?positive_only=maybe", body: image)
        XCTAssertEqual(positive.status, 400)
        XCTAssertTrue(
            (positive.json["error"] as? String ?? "").contains("positive_only must be 0/1 or false/true, got 'maybe'"),
            positive.text)

        // 1 MiB limit in these tests.
        let large = try await send(
            "POST", "/segment", body: Data(repeating: 7, count: (1 << 20) + 1), contentType: "image/png")
        XCTAssertEqual(large.status, 413, large.text)

        let reply4 = try await send("POST", "/cases", body: image, contentType: "image/png")
        XCTAssertEqual(reply4.status, 415)
        let (onlyImage, type) = multipart([("image", image)])
        let missing = try await send("POST", "/cases", body: onlyImage, contentType: type)
        XCTAssertEqual(missing.status, 400)
        XCTAssertTrue((missing.json["error"] as? String ?? "").contains("'mask'"), missing.text)
        let (badMask, type2) = multipart([("image", image), ("mask", Data("nope".utf8))])
        let reply5 = try await send("POST", "/cases", body: badMask, contentType: type2)
        XCTAssertEqual(reply5.status, 400)
        let otherSize = try file(
            SyntheticCases.write(
                SyntheticCases.make(seed: 99, width: 64, height: 64), index: 99,
                width: 64, height: 64, to: directory
            ).mask)
        let (mismatch, type3) = multipart([("image", image), ("mask", otherSize)])
        let sized = try await send("POST", "/cases", body: mismatch, contentType: type3)
        XCTAssertEqual(sized.status, 400, sized.text)
        let reply6 = try await send("GET", "/nowhere")
        XCTAssertEqual(reply6.status, 404)
        // Nothing was added, and the server still answers.
        let reply7 = try await send("GET", "/info")
        XCTAssertEqual(reply7.json["cases"] as? Int, 6)
        let uploads = try FileManager.default.contentsOfDirectory(
            atPath: directory.appendingPathComponent("uploads").path)
        XCTAssertEqual(uploads, [], "rejected uploads leave no files")
    }

    func testGracefulShutdownFinishesAnAddInFlight() async throws {
        // Hold the model queue so the add is certainly in flight (received, waiting) when shutdown starts.
        let server = self.server!, base = self.base!
        let release = DispatchSemaphore(value: 0)
        let before = server.worker.submitted.load(ordering: .relaxed)
        let blocker = Task { try await server.worker.run { release.wait() } }
        let (body, type) = multipart([("image", try file(sources[6].image)), ("mask", try file(sources[6].mask))])
        let add = Task { try await HTTP.send(base, "POST", "/cases", body: body, contentType: type) }
        // Wait (bounded) until the add has reached the model queue behind the blocker, whatever the machine's speed.
        let deadline = Date().addingTimeInterval(20)
        while server.worker.submitted.load(ordering: .relaxed) < before + 2 && Date() < deadline {
            try await Task.sleep(nanoseconds: 5_000_000)
        }
        XCTAssertEqual(server.worker.submitted.load(ordering: .relaxed), before + 2, "the add reached the model queue")
        let shutdown = Task { await server.shutdown() }
        try await Task.sleep(nanoseconds: 100_000_000)  // shutdown under way while the add still waits
        release.signal()
        await shutdown.value
        try await serverTask?.value
        serverTask = nil
        try await blocker.value
        let reply = try await add.value
        XCTAssertEqual(reply.status, 201, reply.text)
        let stats = try segmenter.bank.statistics()
        XCTAssertEqual(stats.cases, 7)
        XCTAssertEqual(stats.indexFileSeq, stats.journalSeq, "index.faiss checkpointed at shutdown")
        // The listener is closed.
        do {
            let late = try await send("GET", "/health")
            XCTFail("server still answered after shutdown: \(late.status)")
        } catch {}
    }
}

struct Reply: Sendable {
    var status: Int
    var body: Data
    /// Header names lowercased.
    var headers: [String: String]
    var json: [String: Any] { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:] }
    var text: String { String(decoding: body, as: UTF8.self) }
}

enum HTTP {
    static func send(
        _ base: URL, _ method: String, _ path: String, body: Data? = nil, contentType: String? = nil,
        headers: [String: String] = [:]
    ) async throws -> Reply {
        var request = URLRequest(url: URL(string: path, relativeTo: base)!)
        request.httpMethod = method
        request.timeoutInterval = 30
        if let contentType { request.setValue(contentType, forHTTPHeaderField: "Content-Type") }
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        request.httpBody = body
        let (data, response) = try await URLSession.shared.data(for: request)
        guard let http = response as? HTTPURLResponse else { throw URLError(.badServerResponse) }
        var headers: [String: String] = [:]
        for (name, value) in http.allHeaderFields { headers["\(name)".lowercased()] = "\(value)" }
        return Reply(status: http.statusCode, body: data, headers: headers)
    }

    /// A multipart/form-data body of `parts` (each sent as a file of `contentType`) and its Content-Type.
    static func multipart(
        _ parts: [(name: String, data: Data)], contentType: String = "image/png",
        boundary: String = "ragseg-test-boundary"
    ) -> (Data, String) {
        var body = Data()
        for part in parts {
            body += Data(
                """
                --\(boundary)\r\nContent-Disposition: form-data; name=\"\(part.name)\"; \
                filename=\"\(part.name)\"\r\nContent-Type: \(contentType)\r\n\r\n
                """
                .utf8)
            body += part.data
            body += Data("\r\n".utf8)
        }
        body += Data("--\(boundary)--\r\n".utf8)
        return (body, "multipart/form-data; boundary=\(boundary)")
    }
}

final class MultipartTests: XCTestCase {
    func testBoundaryFromContentType() {
        XCTAssertEqual(Multipart.boundary(contentType: "multipart/form-data; boundary=abc"), "abc")
        XCTAssertEqual(Multipart.boundary(contentType: "Multipart/Form-Data;boundary=\"a b\""), "a b")
        XCTAssertEqual(Multipart.boundary(contentType: "multipart/form-data; charset=x; boundary=\"q-1\""), "q-1")
        XCTAssertNil(Multipart.boundary(contentType: "image/png"))
        XCTAssertNil(Multipart.boundary(contentType: "multipart/form-data"))
    }

    func testPartsKeepTheirBytes() throws {
        let binary: [UInt8] = [0, 13, 10, 45, 45, 255, 13, 10]
        var body = Array("preamble\r\n--xy\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\n".utf8) + binary
        body += Array(
            """
            \r\n--xy\r\ncontent-disposition: form-data; name=mask; filename=\"m.png\"\r\nContent-Type: \
            image/png\r\n\r\nMASK\r\n--xy--\r\n
            """
            .utf8)
        let parts = try Multipart.parse(body, boundary: "xy")
        XCTAssertEqual(parts["image"], binary)
        XCTAssertEqual(parts["mask"], Array("MASK".utf8))
    }

    func testMalformedBodiesThrow() {
        let cases = [
            "no boundary at all",
            "--xy\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nunterminated",
            "--xy\r\nContent-Type: text/plain\r\n\r\nx\r\n--xy--",
            """
            --xy\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--xy\r\nContent-Disposition: form-data; \
            name=\"a\"\r\n\r\n2\r\n--xy--
            """,
        ]
        for text in cases {
            XCTAssertThrowsError(try Multipart.parse(Array(text.utf8), boundary: "xy"), text)
        }
    }
}

/// What an error that no handler answered becomes (`ErrorReplies`, `UnansweredError`): running out of room (a
/// full LMDB map, a full disk, no temporary space) is 507 with the bank's or the volume's own message; anything
/// else of RAGSeg's own is 500, still with its description (VolumeServerTests sends a real request that runs out
/// of temporary space).
final class UnansweredErrorTests: XCTestCase {
    func testStorageFaultsAre507AndOthers500WithTheirReason() {
        let mapFull = LMDBError(code: -30792, operation: "add")  // MDB_MAP_FULL
        var (status, message) = UnansweredError.reply(to: mapFull)!
        XCTAssertEqual(status, 507)
        XCTAssertTrue(message.contains("the bank's LMDB map is full"), message)

        (status, message) = UnansweredError.reply(to: LMDBError(code: ENOSPC, operation: "add"))!
        XCTAssertEqual(status, 507)
        XCTAssertTrue(message.contains("the disk is full"), message)

        // An I/O error with plenty of room is a failing disk, not a full one.
        let failing = LMDBError(code: EIO, operation: "add", freeBytes: 1 << 30)
        (status, message) = UnansweredError.reply(to: failing)!
        XCTAssertEqual(status, 500)
        XCTAssertTrue(message.contains("the disk is failing"), message)

        (status, message) = UnansweredError.reply(
            to: ScratchSpaceError(path: "upload", message: "cannot create a temporary file in /tmp: No space left"))!
        XCTAssertEqual(status, 507)
        XCTAssertTrue(message.hasSuffix("cannot create a temporary file in /tmp: No space left"), message)

        (status, message) = UnansweredError.reply(to: BankError.bank("b", "records disagree"))!
        XCTAssertEqual(status, 500)
        XCTAssertEqual(message, "bank b: records disagree")

        // Errors of other libraries (the HTTP layer's) are left to Hummingbird.
        XCTAssertNil(UnansweredError.reply(to: CancellationError()))
    }
}

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

/// `serve --read-only` on a snapshot of a bank: the real server on a loopback port, real HTTP requests.
final class ReadOnlyServerTests: XCTestCase {
    let width = 96, height = 112

    func testReplicaSegmentsAndRefusesWrites() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ragseg-ro-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let sources = try (0..<5).map { i in
            try SyntheticCases.write(
                SyntheticCases.make(seed: UInt64(i + 1), width: width, height: height),
                index: i, width: width, height: height, to: directory)
        }
        let retrieval = try DINOv2RetrievalEncoder(path: FixtureModels.dinov2, inputSize: 112)
        let support = try SAM2Checkpoint.supportEncoder(path: FixtureModels.sam2)
        let replica = directory.appendingPathComponent("replica").path
        do {
            let primary = try SupportBank.create(
                at: directory.appendingPathComponent("primary").path,
                metadata: BankMetadata(
                    retrievalModel: retrieval.model, supportModel: support.model,
                    embeddingDimension: retrieval.dimension, memoryShape: support.memoryShape, labels: ["object"]))
            try primary.add(
                try sources.prefix(4).map {
                    try CaseLoader.prepare(
                        try CaseLoader.load($0, labelCount: 1), retrieval: retrieval, support: support)
                })
            _ = try primary.snapshot(to: replica)
        }  // the primary is closed: one process opens a bank once
        let before = try directoryListing(replica)
        let bank = try SupportBank.open(at: replica, readOnly: true)
        let uploads = directory.appendingPathComponent("uploads").path
        let server = try SegmentationServer(
            segmenter: try RetrievalSegmenter(bank: bank, retrieval: retrieval, support: support),
            configuration: ServerConfiguration(
                host: "127.0.0.1", port: 0, k: 2, maxUploadBytes: 1 << 20, uploadsDirectory: uploads,
                readOnly: true))
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let task = Task {
            defer { continuation.finish() }
            try await server.run(gracefulShutdownSignals: []) { continuation.yield($0) }
        }
        var iterator = ports.makeAsyncIterator()
        let next = await iterator.next()
        let port = try XCTUnwrap(next, "server did not start")
        let base = URL(string: "http://127.0.0.1:\(port)")!

        let info = try await HTTP.send(base, "GET", "/info")
        XCTAssertEqual(info.json["readOnly"] as? Bool, true)
        XCTAssertEqual(info.json["cases"] as? Int, 4)

        let target = try Data(contentsOf: URL(fileURLWithPath: sources[4].image))
        let segment = try await HTTP.send(base, "POST", "/segment?format=json", body: target, contentType: "image/png")
        XCTAssertEqual(segment.status, 200, segment.text)
        let labels = segment.json["labels"] as? [[String: Any]] ?? []
        XCTAssertEqual((labels.first?["retrieved"] as? [[String: Any]])?.count, 2, segment.text)
        let png = try await HTTP.send(base, "POST", "/segment", body: target, contentType: "image/png")
        XCTAssertEqual(png.status, 200)
        XCTAssertEqual(try PNG.read(data: Array(png.body), name: "reply").width, width)

        let boundary = "ro-boundary"
        var body = Data()
        for (name, path) in [("image", sources[4].image), ("mask", sources[4].mask)] {
            body += Data(
                """
                --\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"; filename=\"\(name).png\"\r\n\
                Content-Type: image/png\r\n\r\n
                """.utf8)
            body += try Data(contentsOf: URL(fileURLWithPath: path)) + Data("\r\n".utf8)
        }
        body += Data("--\(boundary)--\r\n".utf8)
        for method in ["POST", "PUT", "PATCH", "DELETE"] {
            let refused = try await HTTP.send(
                base, method, "/cases", body: method == "DELETE" ? nil : body,
                contentType: "multipart/form-data; boundary=\(boundary)")
            XCTAssertEqual(refused.status, 405, "\(method): \(refused.text)")
            XCTAssertEqual(refused.headers["allow"], "", "\(method): an empty Allow header: \(refused.headers)")
            let message = refused.json["error"] as? String ?? ""
            XCTAssertTrue(message.contains("read-only replica") && message.contains(method), message)
        }
        let after = try await HTTP.send(base, "GET", "/info")
        XCTAssertEqual(after.json["cases"] as? Int, 4, "nothing was added")
        XCTAssertEqual(after.json["casesAddedSinceStart"] as? Int, 0)

        await server.shutdown()
        _ = try await task.value
        XCTAssertFalse(FileManager.default.fileExists(atPath: uploads), "a replica stores no uploads")
        XCTAssertEqual(try bank.statistics().cases, 4)
        XCTAssertEqual(try directoryListing(replica), before, "nothing in the replica's folder changed")
    }

    /// Through the binaries: `ragseg index snapshot` of a bank, then `ragseg serve --read-only` on the copy answers
    /// /segment, refuses POST /cases with 405, and exits 0 on SIGTERM without writing to the copy.
    func testServeReadOnlyCommandOnASnapshot() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ragseg-ro-cli-\(UUID().uuidString)")
            .path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (images, masks) = try writeDataset(dir + "/data", count: 4)
        let bank = dir + "/bank", replica = dir + "/replica"
        for arguments in [
            ["index", "create", bank, "--dinov2", FixtureModels.dinov2, "--sam2", FixtureModels.sam2],
            ["index", "add", bank, "--images", images, "--masks", masks],
            ["index", "snapshot", bank, replica],
        ] {
            let r = try RagsegBinary.run(arguments)
            XCTAssertEqual(r.status, 0, "\(arguments): \(r.stderr)")
        }
        let before = try directoryListing(replica)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try RagsegBinary.path())
        process.arguments = ["serve", "--read-only", "--index", replica, "--port", "0", "--threads", "1"]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        var text = ""
        var port: Int?
        while port == nil, process.isRunning {
            let chunk = errors.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
            if let range = text.range(of: "listening on http://127.0.0.1:"), text.contains("read-only)") {
                port = Int(text[range.upperBound...].prefix { $0.isNumber })
            }
        }
        let base = URL(string: "http://127.0.0.1:\(try XCTUnwrap(port, text))")!
        let image = try Data(contentsOf: URL(fileURLWithPath: images + "/case000.png"))
        let segment = try await HTTP.send(base, "POST", "/segment?k=2", body: image, contentType: "image/png")
        XCTAssertEqual(segment.status, 200, segment.text)
        let refused = try await HTTP.send(
            base, "POST", "/cases", body: Data("--b--\r\n".utf8), contentType: "multipart/form-data; boundary=b")
        XCTAssertEqual(refused.status, 405, refused.text)
        XCTAssertEqual(refused.headers["allow"], "")
        process.terminate()
        text += String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, text)
        XCTAssertTrue(text.contains("ragseg serve: stopped\n"), text)
        XCTAssertEqual(try directoryListing(replica), before, "the replica's files are unchanged")
        XCTAssertFalse(FileManager.default.fileExists(atPath: replica + "/uploads"))
    }

    /// Names, sizes and modification times of a folder's files, but lock.mdb: LMDB's reader table, which every
    /// reader (read-only ones too) writes its slot into.
    func directoryListing(_ path: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: path).filter { $0 != "lock.mdb" }.sorted().map { name in
            let attributes = try FileManager.default.attributesOfItem(
                atPath: (path as NSString).appendingPathComponent(name))
            return "\(name) \(attributes[.size] ?? 0) \(attributes[.modificationDate] ?? 0)"
        }
    }
}

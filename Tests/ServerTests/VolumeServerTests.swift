import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import XCTest
import RAGSegIO
import RAGSegTestSupport
import RAGSegPipeline
import SupportBank
@testable import RAGSegServer

/// POST /segment with NIfTI bodies, over a bank of slice cases from two synthetic volumes (the third is
/// the upload): the answer is what the library call gives, in the upload's encoding, with its geometry.
final class VolumeServerTests: XCTestCase {
    var directory: URL!
    var sources: [CaseSource] = []
    var segmenter: RetrievalSegmenter!
    var server: SegmentationServer!
    var serverTask: Task<Void, Error>?
    var base: URL!

    override func setUp() async throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "ragseg-volserve-\(UUID().uuidString)")
        sources = try (0..<3).map { try VolumeBanks.writeCase(index: $0, to: directory) }
        let retrieval = try FixtureModels.retrievalEncoder(), support = try FixtureModels.supportEncoder()
        let bank = try SupportBank.create(
            at: directory.appendingPathComponent("bank").path,
            metadata: VolumeBanks.metadata(retrieval: retrieval, support: support))
        for source in sources.prefix(2) {
            try bank.add(try VolumeBanks.slices(of: source, retrieval: retrieval, support: support))
        }
        segmenter = try RetrievalSegmenter(bank: bank, retrieval: retrieval, support: support)
        server = try SegmentationServer(
            segmenter: segmenter,
            configuration: ServerConfiguration(
                host: "127.0.0.1", port: 0, k: 2, maxUploadBytes: 1 << 20,
                uploadsDirectory: directory.appendingPathComponent("uploads").path, maxVolumeVoxels: 32 * 28 * 6))
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let server = self.server!
        serverTask = Task {
            defer { continuation.finish() }
            try await server.run(gracefulShutdownSignals: []) { continuation.yield($0) }
        }
        var iterator = ports.makeAsyncIterator()
        let next = await iterator.next()
        base = URL(string: "http://127.0.0.1:\(try XCTUnwrap(next, "server did not start"))")!
    }

    override func tearDown() async throws {
        await server?.shutdown()
        _ = try? await serverTask?.value
        try? FileManager.default.removeItem(at: directory)
    }

    func post(_ path: String, _ body: Data, contentType: String? = nil) async throws -> Reply {
        try await HTTP.send(base, "POST", path, body: body, contentType: contentType)
    }

    func testANIfTIUploadIsAnsweredWithItsLabelVolume() async throws {
        let gz = try Data(contentsOf: URL(fileURLWithPath: sources[2].image))
        let image = try NIfTI.read(sources[2].image)
        let expected = try VolumeSegmentation(
            bank: segmenter.bank.metadata, bankPath: segmenter.bank.path, selection: .all, k: 2
        ).run(image, name: "upload", segmenter: segmenter)

        // gzip in (recognised by its magic numbers, no content type) -> gzip out.
        let reply = try await post("/segment", gz)
        XCTAssertEqual(reply.status, 200, reply.text)
        XCTAssertEqual(reply.headers["content-type"], "application/gzip")
        XCTAssertEqual(Array(reply.body.prefix(2)), [0x1F, 0x8B])
        let answered = try NIfTI.read(data: Array(reply.body), name: "reply")
        XCTAssertEqual(answered, expected.labelMap)
        XCTAssertEqual(answered.header.affine, image.header.affine)
        XCTAssertEqual(answered.header.dim, image.header.dim)

        // Plain .nii, announced by its content type -> plain out.
        let plain = try NIfTI.encode(image, gzip: false, name: "plain")
        let plainReply = try await post("/segment?label=lesion", Data(plain), contentType: "application/x-nifti")
        XCTAssertEqual(plainReply.status, 200, plainReply.text)
        XCTAssertEqual(plainReply.headers["content-type"], "application/x-nifti")
        let lesion = try NIfTI.read(data: Array(plainReply.body), name: "reply").labels(name: "reply")
        let expectedLesion = try VolumeSegmentation(
            bank: segmenter.bank.metadata, bankPath: segmenter.bank.path, selection: .named("lesion"), k: 2
        ).run(image, name: "upload", segmenter: segmenter)
        XCTAssertEqual(lesion.grid, expectedLesion.labels)
        XCTAssertTrue(lesion.grid.values.allSatisfy { $0 == 0 || $0 == 2 })

        // JSON: the same report the command line prints.
        let json = try await post("/segment?format=json&slices=1:3", gz)
        XCTAssertEqual(json.status, 200, json.text)
        let report = try JSONDecoder().decode(VolumeReport.self, from: json.body)
        XCTAssertEqual(report.slices.map(\.slice), [1, 2])
        XCTAssertEqual(report.labels.map(\.label), ["organ", "lesion"])
        XCTAssertNotNil(report.queueSeconds)
    }

    func testBadOrOversizedVolumesGet4xx() async throws {
        let gz = try Data(contentsOf: URL(fileURLWithPath: sources[2].image))
        var reply = try await post("/segment", gz.prefix(gz.count / 2), contentType: "application/gzip")
        XCTAssertEqual(reply.status, 400)
        XCTAssertTrue((reply.json["error"] as? String ?? "").contains("truncated"), reply.text)

        // One more slice than the server's voxel limit: refused from the header.
        let big = SyntheticVolumes.makeCase(index: 0, size: 32, slices: 7, seed: 1).image
        reply = try await post("/segment", Data(try NIfTI.encode(big, gzip: true, name: "big")))
        XCTAssertEqual(reply.status, 413)
        XCTAssertTrue((reply.json["error"] as? String ?? "").contains("at most 5376"), reply.text)

        reply = try await post("/segment?window=wide", gz)
        XCTAssertEqual(reply.status, 400)
        XCTAssertTrue((reply.json["error"] as? String ?? "").hasPrefix("window expects"), reply.text)
        reply = try await post("/segment?format=png", gz)
        XCTAssertEqual(reply.status, 400)
        reply = try await post("/segment", Data("not a volume".utf8), contentType: "application/x-nifti")
        XCTAssertEqual(reply.status, 400)
        XCTAssertTrue((reply.json["error"] as? String ?? "").contains("not a readable NIfTI"), reply.text)
    }
}

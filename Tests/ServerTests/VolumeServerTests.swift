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
        let retrieval = try FixtureModels.retrievalEncoder(), support = try FixtureModels.supportEncoderSeeingObjects()
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
        XCTAssertTrue(expected.labels.values.contains(1), "the fixture model sees objects: not an empty volume")
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

    /// The label volume of an answer is written through a temporary file. With no temporary folder the request
    /// cannot be served: 507 Insufficient Storage with the reason in the usual JSON body (it was a 500 with an
    /// empty body, which told the client nothing), and the same request succeeds once the folder is back.
    func testNoTemporarySpaceIs507WithTheReason() async throws {
        let gz = try Data(contentsOf: URL(fileURLWithPath: sources[2].image))
        let saved = ProcessInfo.processInfo.environment["TMPDIR"]
        setenv("TMPDIR", directory.appendingPathComponent("missing").path, 1)
        let reply = try await post("/segment", gz)
        if let saved { setenv("TMPDIR", saved, 1) } else { unsetenv("TMPDIR") }
        XCTAssertEqual(reply.status, 507, reply.text)
        let message = reply.json["error"] as? String ?? ""
        XCTAssertTrue(message.hasPrefix("the server has no room for this request's temporary files"), reply.text)
        XCTAssertTrue(message.contains("missing"), reply.text)  // the folder it tried
        let again = try await post("/segment", gz)
        XCTAssertEqual(again.status, 200, again.text)
    }

    func postCase(_ image: Data, _ labels: Data, query: String = "") async throws -> Reply {
        let (body, type) = HTTP.multipart([("image", image), ("mask", labels)], contentType: "application/gzip")
        return try await post("/cases\(query)", body, contentType: type)
    }

    /// The slices `index add` would take from `source` with `emptyEvery`, found from the label volume alone:
    /// every slice holding a label, and of the others the first and every emptyEvery-th.
    func expectedSlices(_ source: CaseSource, emptyEvery: Int) throws -> [Int] {
        let labels = try VolumeSlices(
            try NIfTI.read(source.mask).labels(name: source.mask), axis: .axial, name: source.mask)
        var chosen = [Int](), empty = 0
        for s in 0..<labels.count {
            if labels.slice(s).contains(where: { $0 != 0 }) {
                chosen.append(s)
            } else {
                if empty % emptyEvery == 0 { chosen.append(s) }
                empty += 1
            }
        }
        return chosen
    }

    func testAVolumeAndItsLabelVolumePostedToCasesBecomeItsSliceCases() async throws {
        let bank = segmenter.bank
        let before = try bank.statistics().cases
        let image = try Data(contentsOf: URL(fileURLWithPath: sources[2].image))
        let labels = try Data(contentsOf: URL(fileURLWithPath: sources[2].mask))
        let expected = try expectedSlices(sources[2], emptyEvery: 2)
        XCTAssertGreaterThan(expected.count, 1)

        let reply = try await postCase(image, labels, query: "?empty_slices=2")
        XCTAssertEqual(reply.status, 201, reply.text)
        XCTAssertEqual(reply.json["chosenSlices"] as? [Int], expected)
        let ids = try XCTUnwrap(reply.json["addedIDs"] as? [Int]).map(UInt64.init)
        XCTAssertEqual(ids.count, expected.count)
        XCTAssertEqual(try bank.statistics().cases, before + expected.count)

        // Each case is the slice's 8-bit image (the PNG-export rule) with its label slice, from the stored upload.
        let stored = try XCTUnwrap(reply.json["volume"] as? String)
        XCTAssertTrue(stored.hasPrefix(directory.appendingPathComponent("uploads").path), stored)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: stored)), image)
        let images = try VolumeSliceImages(
            try NIfTI.read(sources[2].image).intensities(frame: nil, name: "image"), axis: .axial,
            mapping: .ctDefault, name: "image")
        let labelSlices = try VolumeSlices(
            try NIfTI.read(sources[2].mask).labels(name: "labels"), axis: .axial, name: "labels")
        for (id, s) in zip(ids, expected) {
            let record = try XCTUnwrap(try bank.record(id))
            XCTAssertEqual(record.origin?.volume, stored)
            XCTAssertEqual(record.origin?.slice, s)
            XCTAssertEqual(record.origin?.volumeHash, hexString(SHA256.hash(Array(image))))
            let hash = CaseLoader.contentHash(
                image: images.image(s),
                mask: PNGImage.labelSlice(labelSlices.slice(s), width: images.width, height: images.height))
            XCTAssertEqual(record.contentHash, hexString(hash))
            // The bank stores the embedding L2-normalized.
            let embedding = try segmenter.retrieval.embed(images.image(s))
            let norm = embedding.reduce(0) { $0 + $1 * $1 }.squareRoot()
            let stored = try XCTUnwrap(try bank.embedding(id))
            XCTAssertEqual(stored.count, embedding.count)
            for (a, b) in zip(stored, embedding) { XCTAssertEqual(a, b / norm, accuracy: 1e-6) }
        }
        // The recorded volume answers a volume query: its own slices come back first.
        let query = try await post("/segment?format=json&k=1", image)
        XCTAssertEqual(query.status, 200, query.text)
        let report = try JSONDecoder().decode(VolumeReport.self, from: query.body)
        for slice in report.slices where expected.contains(slice.slice) {
            XCTAssertEqual(slice.labels.first?.retrieved.first?.slice, slice.slice)
        }

        // The same upload again: nothing added, 200.
        let again = try await postCase(image, labels, query: "?empty_slices=2")
        XCTAssertEqual(again.status, 200, again.text)
        XCTAssertEqual(again.json["added"] as? Bool, false)
        XCTAssertEqual(again.json["alreadyInBank"] as? Int, expected.count)
        XCTAssertEqual(try bank.statistics().cases, before + expected.count)
    }

    func testBadVolumeCasesGet4xxAndStoreNothing() async throws {
        let bank = segmenter.bank
        let before = try bank.statistics().cases
        let uploads = directory.appendingPathComponent("uploads").path
        let image = try Data(contentsOf: URL(fileURLWithPath: sources[2].image))
        func gz(_ volume: NIfTIImage) throws -> Data { Data(try NIfTI.encode(volume, gzip: true, name: "v")) }

        // A label volume on another grid (one slice fewer).
        let short = SyntheticVolumes.makeCase(index: 2, size: 32, slices: 5, seed: 11).labels
        var reply = try await postCase(image, try gz(short))
        XCTAssertEqual(reply.status, 400, reply.text)
        XCTAssertTrue((reply.json["error"] as? String ?? "").hasPrefix("mask: label map dimensions"), reply.text)

        // A label the bank does not declare (it has 2).
        var labels = try NIfTI.read(sources[2].mask).labels(name: "labels")
        labels.grid.values[labels.grid.values.firstIndex(of: 2) ?? 0] = 3
        reply = try await postCase(image, try gz(NIfTIImage.labelMap(labels.grid, like: labels.header)))
        XCTAssertEqual(reply.status, 400, reply.text)
        XCTAssertTrue((reply.json["error"] as? String ?? "").contains("not a declared label"), reply.text)

        // A PNG as the mask of a volume; settings other than the bank's; a volume over the voxel limit.
        reply = try await postCase(image, Data([0x89, 0x50, 0x4E, 0x47]))
        XCTAssertEqual(reply.status, 400, reply.text)
        XCTAssertTrue((reply.json["error"] as? String ?? "").hasPrefix("mask is not a readable NIfTI"), reply.text)
        reply = try await postCase(
            image, try Data(contentsOf: URL(fileURLWithPath: sources[2].mask)), query: "?window=lung")
        XCTAssertEqual(reply.status, 400, reply.text)
        XCTAssertTrue((reply.json["error"] as? String ?? "").contains("window differ"), reply.text)
        let big = SyntheticVolumes.makeCase(index: 0, size: 32, slices: 7, seed: 1)
        reply = try await postCase(try gz(big.image), try gz(big.labels))
        XCTAssertEqual(reply.status, 413, reply.text)

        XCTAssertEqual(try bank.statistics().cases, before)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: uploads), [])
    }
}

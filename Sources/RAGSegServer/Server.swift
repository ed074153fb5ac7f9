// `ragseg serve`: RAGSeg over HTTP (Hummingbird 2). The models and the bank stay loaded; every request
// that runs a model (segment, add) goes through one serial queue, so the networks and the bank's single
// writer never see two callers at once, and a case added by one request is searchable by the next.
// Endpoints (all JSON errors read {"error": "..."}):
//   GET  /health                      -> 200 {"status":"ok"}
//   GET  /info                        -> 200 bank counts, labels, models, limits
// POST /segment?k=N&label=NAME&format=png|json[&positive_only=1][&point=x,y[,l]...][&box=x0,y0,x1,y1]   body: PNG bytes
//        -> 200 image/png mask (0/255; a label map 0...L for label=all on a multi-label bank), or JSON;
//           points/box (image pixels) refine the memory-conditioned result of one label (SAM2/Prompt.swift)
//        body: a NIfTI volume (.nii or .nii.gz bytes, by magic number or Content-Type application/x-nifti or
//        application/gzip) -> 200 the label volume as NIfTI, gzip when the upload was, or JSON with format=json;
//        [&slices=A:B][&slice_axis=..][&window=..][&channel=N] (VolumeSegmentRoute.swift)
//   POST /cases                       body: multipart/form-data with parts "image" and "mask" (PNG)
//        -> 201 {"id":..., "added":true, ...} (200 with "added":false for content already in the bank)
//        or a NIfTI image volume and its label volume as the parts -> its slices as cases, as `index add`
//        adds a volume [&empty_slices=N][&slice_axis=..][&window=..][&channel=N] (VolumeCaseRoute.swift)
// Bodies over maxUploadBytes -> 413; undecodable PNG, unknown label, k out of range, bad point/box -> 400.
// A read-only replica (configuration.readOnly) answers every write route with 405 (ReadOnlyRoutes.swift).
import Dispatch
import Foundation
import Hummingbird
import NIOCore
import RAGSegIO
import RAGSegPipeline
import SAM2
import ServiceLifecycle
import SupportBank
import Synchronization
import UnixSignals

public struct ServerConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// Supports retrieved per query when the request gives no `k`.
    public var k: Int
    /// Largest request body accepted (bytes); larger ones get 413.
    public var maxUploadBytes: Int
    /// Where the image and mask of each case added over HTTP are stored (the bank records their paths).
    public var uploadsDirectory: String
    /// Largest volume (voxels over all dimensions) a NIfTI upload may declare; larger ones get 413.
    public var maxVolumeVoxels: Int
    /// A read-only replica (`serve --read-only`): every write route answers 405 (ReadOnlyRoutes.swift).
    public var readOnly: Bool
    /// Largest `k` a request may ask for.
    public static let maxK = 64

    public init(
        host: String = "127.0.0.1", port: Int = 8080, k: Int = 4, maxUploadBytes: Int = 64 << 20,
        uploadsDirectory: String, maxVolumeVoxels: Int = 512 * 512 * 512, readOnly: Bool = false
    ) {
        self.readOnly = readOnly
        self.maxVolumeVoxels = maxVolumeVoxels
        self.host = host
        self.port = port
        self.k = k
        self.maxUploadBytes = maxUploadBytes
        self.uploadsDirectory = uploadsDirectory
    }
}

/// An error with its HTTP status; the body is {"error": message}.
public struct ServerError: HTTPResponseError, CustomStringConvertible {
    public let status: HTTPResponse.Status
    public let message: String
    public var description: String { "\(status.code): \(message)" }

    public init(_ status: HTTPResponse.Status, _ message: String) {
        self.status = status
        self.message = message
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        jsonResponse(["error": message], status: status)
    }
}

func jsonResponse(_ object: [String: Any], status: HTTPResponse.Status = .ok) -> Response {
    let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
    return Response(
        status: status, headers: [.contentType: "application/json"],
        body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
}

/// Runs blocking model and bank work one item at a time, off Swift's cooperative thread pool.
final class SerialWorker: Sendable {
    private let queue = DispatchQueue(label: "ragseg.serve.models")
    /// Work items handed to the queue so far (tests use it to know a request has reached the models).
    let submitted = Atomic<Int>(0)

    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        submitted.add(1, ordering: .relaxed)
        return try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try body() }) }
        }
    }
}

public final class SegmentationServer: Sendable {
    public let segmenter: RetrievalSegmenter
    public let configuration: ServerConfiguration
    let worker = SerialWorker()
    private let group = Mutex<ServiceGroup?>(nil)
    let gate = ShutdownGate()
    let addedCount = Mutex(0)
    /// The bank's volume settings: a bank built from 2-D images records them with its first volume case
    /// (POST /cases), after which queries use them; `bank.metadata` keeps what was read at open.
    let volumeSettings: Mutex<VolumeSettings?>

    public var bank: SupportBank { segmenter.bank }

    /// The bank's metadata as it stands now (volume settings recorded since the server started included).
    var bankMetadata: BankMetadata {
        var metadata = bank.metadata
        metadata.volumeSettings = volumeSettings.withLock { $0 }
        return metadata
    }

    public init(segmenter: RetrievalSegmenter, configuration: ServerConfiguration) throws {
        guard (1...ServerConfiguration.maxK).contains(configuration.k) else {
            throw ServerError(.badRequest, "k must be in 1...\(ServerConfiguration.maxK), got \(configuration.k)")
        }
        guard configuration.maxUploadBytes > 0 else {
            throw ServerError(.badRequest, "the upload limit must be positive")
        }
        if !configuration.readOnly {  // a replica stores nothing (and its folder may be on a read-only mount)
            try FileManager.default.createDirectory(
                atPath: configuration.uploadsDirectory, withIntermediateDirectories: true)
        }
        self.segmenter = segmenter
        self.configuration = configuration
        volumeSettings = Mutex(segmenter.bank.metadata.volumeSettings)
    }

    /// Serves until SIGTERM/SIGINT (the given signals) or `shutdown()`: requests admitted before finish (an
    /// add's transaction commits), later ones get 503 until the server has been quiet (ShutdownGate), then
    /// the listener closes, queued model work drains, and the FAISS index is checkpointed. `onRunning` gets
    /// the bound port (useful with port 0).
    public func run(
        gracefulShutdownSignals: [UnixSignal] = [.sigterm, .sigint],
        onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) async throws {
        let port = configuration.port, limit = configuration.maxUploadBytes
        let app = Application(
            router: makeRouter(),
            server: .http1(
                configuration: .init(additionalChannelHandlers: [ExpectContinueHandler(maxBodyBytes: limit)])),
            configuration: .init(address: .hostname(configuration.host, port: port), serverName: "ragseg"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? port) })
        // The signals start `shutdown()` (drain first), not the group's immediate graceful shutdown.
        let group = ServiceGroup(configuration: .init(services: [app], logger: app.logger))
        self.group.withLock { $0 = group }
        defer { self.group.withLock { $0 = nil } }
        // Trapped before the listener opens, so no signal in between takes the default action (exit by signal).
        let signals =
            gracefulShutdownSignals.isEmpty ? nil : await UnixSignalsSequence(trapping: gracefulShutdownSignals)
        try await withThrowingTaskGroup(of: Bool.self) { tasks in
            tasks.addTask {
                try await group.run()
                return true
            }
            if let signals {
                tasks.addTask { [self] in
                    // Each signal starts a stop of its own: a second one during the drain closes at once.
                    for await _ in signals { Task { await shutdown() } }
                    return false
                }
            }
            for try await serverStopped in tasks where serverStopped { break }
            tasks.cancelAll()
        }
        // Anything still queued (a request whose client went away) runs to the end before the checkpoint.
        try await worker.run { [segmenter] in try segmenter.bank.checkpoint(force: true) }
    }

    /// Stops a running server: drains (ShutdownGate), then shuts down gracefully; returns once the listener
    /// is closing (`run` returns once all is complete). A second call while draining closes at once.
    public func shutdown() async {
        _ = await gate.drain()
        if let group = group.withLock({ $0 }) { await group.triggerGracefulShutdown() }
    }

    // MARK: - Routes

    func makeRouter() -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: ErrorReplies())
        router.get("/health") { [gate] _, _ in try await gate.admit { jsonResponse(["status": "ok"]) } }
        router.get("/info") { [self] _, _ in try await gate.admit { try info() } }
        router.post("/segment") { [self] request, _ in try await gate.admit { try await segment(request) } }
        if configuration.readOnly {
            addReadOnlyRefusals(to: router)
        } else {
            router.post("/cases") { [self] request, _ in try await gate.admit { try await addCase(request) } }
        }
        return router
    }

    /// The request body, at most `maxUploadBytes` (413 beyond, before reading it when Content-Length says so).
    func body(_ request: Request) async throws -> [UInt8] {
        let limit = configuration.maxUploadBytes
        let tooLarge = ServerError(
            .contentTooLarge, "request body exceeds the server's limit of \(limit) bytes (--max-upload-mib)")
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit { throw tooLarge }
        var request = request
        do {
            let buffer = try await request.collectBody(upTo: limit)
            return Array(buffer.readableBytesView)
        } catch is NIOTooManyBytesError {
            throw tooLarge
        }
    }

    /// Largest image (width x height) decoded: a small PNG can declare a huge canvas.
    public static let maxImagePixels = PNG.defaultMaxPixels

    func decodePNG(_ bytes: [UInt8], role: String) throws -> PNGImage {
        guard !bytes.isEmpty else { throw ServerError(.badRequest, "\(role): empty body; send PNG bytes") }
        // The IHDR chunk (always first, right after the 8-byte signature) gives the size before anything is decoded.
        if bytes.count >= 24, bytes[12..<16].elementsEqual("IHDR".utf8) {
            func u32(_ at: Int) -> Int { bytes[at..<at + 4].reduce(0) { $0 << 8 | Int($1) } }
            let width = u32(16), height = u32(20)
            let (pixels, overflow) = width.multipliedReportingOverflow(by: height)
            guard !overflow, pixels <= Self.maxImagePixels else {
                throw ServerError(
                    .badRequest,
                    "\(role) is \(width)x\(height); the server decodes at most \(Self.maxImagePixels) pixels")
            }
        }
        do { return try PNG.read(data: bytes, name: role) } catch {
            throw ServerError(.badRequest, "\(role) is not a readable PNG: \(error)")
        }
    }

    func info() throws -> Response {
        let bank = self.bank
        let stats = try bank.statistics()
        let metadata = bankMetadata
        func model(_ m: ModelIdentity) -> [String: Any] { ["name": m.name, "variant": m.variant, "sha256": m.sha256] }
        let volumeSettings: Any =
            metadata.volumeSettings.map {
                ["sliceAxis": $0.sliceAxis, "intensity": $0.intensity, "channel": $0.channel] as [String: Any]
            }
            ?? NSNull()
        return jsonResponse([
            "bank": bank.path, "cases": stats.cases, "memories": stats.memories,
            "indexKind": stats.indexKind.rawValue, "indexVectors": stats.indexVectors,
            "labels": metadata.labels,
            "models": ["retrieval": model(metadata.retrievalModel), "support": model(metadata.supportModel)],
            "memoryShape": metadata.memoryShape.description,
            "k": configuration.k, "maxK": ServerConfiguration.maxK,
            "maxUploadBytes": configuration.maxUploadBytes, "maxVolumeVoxels": configuration.maxVolumeVoxels,
            "volumeSettings": volumeSettings,
            "casesAddedSinceStart": addedCount.withLock { $0 }, "readOnly": configuration.readOnly,
        ])
    }

    /// A query the bank cannot answer, in the endpoint's terms (its URL parameters).
    static func message(_ error: SegmentationQueryError) -> String {
        switch error {
        case .unknownLabel(let name, let labels):
            return "unknown label '\(name)'; the bank's labels are: \(labels.joined(separator: ", ")) (or 'all')"
        case .promptNeedsOneLabel(let labels):
            return "point/box refine one label; the bank has labels \(labels.joined(separator: ", ")): add label=NAME"
        case .labelMapTooSmall(let labelCount):
            return
                """
                the bank has \(labelCount) labels, more than an 8-bit label map holds \
                (\(MaskComposition.maxLabelInMap)): ask for one label with label=NAME
                """
        }
    }

    func segment(_ request: Request) async throws -> Response {
        // A NIfTI body (announced by its content type, or recognised by its magic numbers) is a volume.
        let bytes = try await body(request)
        if Self.declaresNIfTI(request.headers[.contentType]) || NIfTI.looksLikeNIfTI(bytes) {
            return try await segmentVolume(request, bytes: bytes)
        }
        let parameters = request.uri.queryParameters
        var k = configuration.k
        if let value = parameters["k"] {
            guard let n = Int(value), (1...ServerConfiguration.maxK).contains(n) else {
                throw ServerError(
                    .badRequest, "k must be an integer in 1...\(ServerConfiguration.maxK), got '\(value)'")
            }
            k = n
        }
        var positiveOnly = false
        if let value = parameters["positive_only"] {
            guard let flag = ["0": false, "false": false, "1": true, "true": true][String(value)] else {
                throw ServerError(.badRequest, "positive_only must be 0/1 or false/true, got '\(value)'")
            }
            positiveOnly = flag
        }
        let format = parameters["format"].map(String.init) ?? "png"
        guard format == "png" || format == "json" else {
            throw ServerError(.badRequest, "format must be png or json, got '\(format)'")
        }
        let prompt: SAM2Prompt
        do {
            prompt = try SAM2Prompt.parse(
                points: parameters[values: "point"].map(String.init), boxes: parameters[values: "box"].map(String.init))
        } catch let error as SAM2PromptError {
            throw ServerError(.badRequest, error.message)
        }
        let query: SegmentationQuery
        do {
            query = try SegmentationQuery(
                bankLabels: bank.metadata.labels, selection: LabelSelection(parameters["label"].map(String.init)), k: k,
                positiveOnly: positiveOnly, prompt: prompt)
        } catch let error as SegmentationQueryError {
            throw ServerError(.badRequest, Self.message(error))
        }
        let image = try decodePNG(bytes, role: "image")
        do { try prompt.validate(width: image.width, height: image.height) } catch let error as SAM2PromptError {
            throw ServerError(.badRequest, error.message)
        }
        let segmenter = self.segmenter
        let queued = DispatchTime.now()
        let (result, waited) = try await worker.run { () throws -> (SegmentationQueryResult, Double) in
            let waited = Double(DispatchTime.now().uptimeNanoseconds - queued.uptimeNanoseconds) / 1e9
            do {
                return (try query.run(image, name: "upload", segmenter: segmenter), waited)
            } catch let error as RetrievalSegmenterError {
                throw ServerError(.unprocessableContent, error.message)
            }
        }

        let mask = result.composedMask!
        if format == "png" {
            let png = PNG.encodeGray8(mask, width: image.width, height: image.height)
            let ids = result.retrievedIDs.map(String.init).joined(separator: ",")
            return Response(
                status: .ok, headers: [.contentType: "image/png", HTTPFields.Element.Name("X-RAGSeg-Retrieved")!: ids],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: png)))
        }
        var report = result.report
        report.k = k
        report.queueSeconds = waited
        report.foregroundPixels = mask.filter { $0 != 0 }.count
        return Response(
            status: .ok, headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: try QueryReport.json(report, pretty: false))))
    }

    /// Stores the uploaded pair under the uploads directory (named by the SHA-256 of both uploads, fsync'ed
    /// before the bank refers to them), then encodes and adds it as `ragseg index add` would.
    func addCase(_ request: Request) async throws -> Response {
        let usage = """
            POST /cases expects multipart/form-data with parts named 'image' and 'mask' (two PNGs, or a NIfTI \
            volume and its label volume)
            """
        guard let contentType = request.headers[.contentType],
            let boundary = Multipart.boundary(contentType: contentType)
        else {
            throw ServerError(.unsupportedMediaType, usage)
        }
        let parts: [String: [UInt8]]
        do { parts = try Multipart.parse(try await body(request), boundary: boundary) } catch let error
            as MultipartError
        {
            throw ServerError(.badRequest, "\(error.message); \(usage)")
        }
        guard let imageBytes = parts["image"], let maskBytes = parts["mask"] else {
            throw ServerError(.badRequest, "missing part \(parts["image"] == nil ? "'image'" : "'mask'"); \(usage)")
        }
        if NIfTI.looksLikeNIfTI(imageBytes) {
            return try await addVolumeCase(request, imageBytes: imageBytes, labelBytes: maskBytes)
        }
        let image = try decodePNG(imageBytes, role: "image"), mask = try decodePNG(maskBytes, role: "mask")
        guard image.width == mask.width, image.height == mask.height else {
            throw ServerError(
                .badRequest, "mask is \(mask.width)x\(mask.height) but the image is \(image.width)x\(image.height)")
        }

        let stem = Self.uploadStem(imageBytes, maskBytes)
        let directory = configuration.uploadsDirectory
        let source = CaseSource(
            image: (directory as NSString).appendingPathComponent("\(stem)_image.png"),
            mask: (directory as NSString).appendingPathComponent("\(stem)_mask.png"))
        let segmenter = self.segmenter
        let labelCount = bank.metadata.labels.count
        let outcome = try await worker.run { () throws -> AddOutcome in
            let existed =
                FileManager.default.fileExists(atPath: source.image)
                && FileManager.default.fileExists(atPath: source.mask)
            do {
                if !existed {
                    try Self.writeDurably(imageBytes, to: source.image)
                    try Self.writeDurably(maskBytes, to: source.mask)
                }
                let loaded = try CaseLoader.load(source, labelCount: labelCount)
                let prepared = try CaseLoader.prepare(
                    loaded, retrieval: segmenter.retrieval, support: segmenter.support)
                let outcome = try segmenter.bank.add([prepared])[0]
                try segmenter.bank.checkpoint(force: false)
                if case .duplicate = outcome, !existed {
                    // The bank's record points at the files the content was first added from: drop these copies.
                    try? FileManager.default.removeItem(atPath: source.image)
                    try? FileManager.default.removeItem(atPath: source.mask)
                }
                return outcome
            } catch {
                if !existed {
                    try? FileManager.default.removeItem(atPath: source.image)
                    try? FileManager.default.removeItem(atPath: source.mask)
                }
                if case BankError.input(_, let message) = error { throw ServerError(.badRequest, message) }
                throw error
            }
        }
        let record = try bank.record(outcome.id)
        let names = bank.metadata.labels
        var reply: [String: Any] = [
            "id": Int(outcome.id), "image": record?.image ?? source.image, "mask": record?.mask ?? source.mask,
            "labels": (record?.labels ?? []).map { names[$0 - 1] },
            "emptyMaskMemory": record?.emptyMaskMemory ?? false,
        ]
        switch outcome {
        case .added:
            addedCount.withLock { $0 += 1 }
            reply["added"] = true
            return jsonResponse(reply, status: .created)
        case .duplicate:
            reply["added"] = false
            reply["duplicate"] = true
            return jsonResponse(reply, status: .ok)
        }
    }
}

// POST /cases with a NIfTI image volume and its label volume (multipart parts "image" and "mask",
// recognised by the image part's magic numbers): the volume's slices become cases exactly as
// `ragseg index add` makes them (RAGSegPipeline.VolumeIngest): every slice holding a label, and of the
// others the first and every `empty_slices`-th (default 10). Parameters: empty_slices, and slice_axis,
// window, channel, which must agree with the bank's volume settings (a bank without any records the given
// ones, or axial and percentile clipping, with its first volume).
//
// One request is all or nothing: slices are committed in batches (bounded memory) and, if a later slice
// fails, the cases this request added are removed again. Re-posting a volume adds nothing (200): its slices
// are found by content before the encoders run. The two files are kept under the uploads directory, named
// by the SHA-256 of both uploads and fsync'ed before any case refers to them.
import Foundation
import Hummingbird
import RAGSegIO
import RAGSegPipeline
import SupportBank

extension SegmentationServer {
    /// Slices committed per transaction while a volume is added.
    static let volumeBatch = 16

    func addVolumeCase(_ request: Request, imageBytes: [UInt8], labelBytes: [UInt8]) async throws -> Response {
        let parameters = request.uri.queryParameters
        func parameter<T>(_ name: String, _ parse: (String) throws -> T) throws -> T? {
            guard let value = parameters[Substring(name)] else { return nil }
            do { return try parse(String(value)) } catch let error as VolumeQueryOptions.Invalid {
                throw ServerError(.badRequest, "\(name) \(error.message)")
            }
        }
        let emptyEvery =
            try parameter("empty_slices") { text -> Int in
                guard let n = Int(text), n >= 0 else {
                    throw VolumeQueryOptions.Invalid(message: "must be an integer >= 0, got '\(text)'")
                }
                return n
            } ?? 10
        let axis = try parameter("slice_axis", VolumeQueryOptions.axis)
        let mapping = try parameter("window", VolumeQueryOptions.mapping)
        let channel = try parameter("channel", VolumeQueryOptions.channel)

        // Both headers first: what they declare against the voxel limit, before any voxel is decoded.
        let limit = configuration.maxVolumeVoxels
        var headers: [NIfTIHeader] = []
        for (part, bytes) in [("image", imageBytes), ("mask", labelBytes)] {
            let header: NIfTIHeader
            do { header = try NIfTI.header(data: bytes, name: part) } catch let error as RAGSegIOError {
                throw ServerError(
                    .badRequest,
                    "\(part) is not a readable NIfTI volume (a volume case needs a label volume): \(error.message)")
            }
            guard header.voxelCount <= limit else {
                let shape = header.shape.map(String.init).joined(separator: "x")
                throw ServerError(
                    .contentTooLarge,
                    "\(part) declares \(header.voxelCount) voxels (\(shape)); the server reads at most \(limit) "
                        + "(--max-volume-voxels)")
            }
            headers.append(header)
        }

        let labelCount = bank.metadata.labels.count
        let current = volumeSettings.withLock { $0 }
        let (resolved, differing) = VolumeAddSettings.resolve(
            recorded: current, axis: axis, mapping: mapping, channel: channel, defaultMapping: .mrDefault)
        guard differing.isEmpty else {
            let names = differing.map { field -> String in
                switch field {
                case .axis: "slice_axis"
                case .intensity: "window"
                case .channel: "channel"
                }
            }
            throw ServerError(
                .badRequest,
                """
                the bank was built with volume settings \(resolved.settings.summary); \
                \(names.joined(separator: ", ")) differ (leave them out)
                """)
        }
        let settings = resolved.settings
        guard let sliceAxis = settings.axis, let sliceMapping = settings.mapping else {
            throw ServerError(
                .internalServerError, "the bank records volume settings this build does not know: \(settings.summary)")
        }
        // A 4-D image is read at the bank's channel; a 3-D one only takes a channel asked for explicitly.
        let frame = headers[0].frameCount > 1 ? settings.channel : channel
        let slicing = VolumeSlicing(
            axis: sliceAxis, mapping: sliceMapping, labelCount: labelCount, limits: NIfTILimits(maxVoxels: limit))

        let stem = Self.uploadStem(imageBytes, labelBytes)
        let directory = configuration.uploadsDirectory
        func file(_ role: String, _ bytes: [UInt8]) -> String {
            (directory as NSString).appendingPathComponent("\(stem)_\(role).nii\(NIfTI.isGzip(bytes) ? ".gz" : "")")
        }
        let source = VolumeCaseSource(
            image: file("image", imageBytes), labels: file("labels", labelBytes), frame: frame)
        @Sendable func part(_ path: String) -> String {
            path == source.image ? "image" : path == source.labels ? "mask" : path
        }

        let segmenter = self.segmenter
        let bank = self.bank
        let outcome = try await worker.run { () throws -> VolumeAddOutcome in
            let existed =
                FileManager.default.fileExists(atPath: source.image)
                && FileManager.default.fileExists(atPath: source.labels)
            var added: [UInt64] = []
            do {
                if !existed {
                    try Self.writeDurably(imageBytes, to: source.image)
                    try Self.writeDurably(labelBytes, to: source.labels)
                }
                _ = try VolumeCaseLoader.checkHeaders(source, slicing: slicing)
                let volume = try VolumeCaseLoader.load(source, slicing: slicing)
                if resolved.record {
                    // Once the volume has passed every check: a refused upload leaves no settings behind.
                    try bank.recordVolumeSettings(settings)
                    self.volumeSettings.withLock { $0 = settings }
                }
                var pending: [PreparedCase] = []
                var duplicates = 0
                func commit() throws {
                    guard !pending.isEmpty else { return }
                    for outcome in try bank.add(pending) {
                        switch outcome {
                        case .added(let id): added.append(id)
                        case .duplicate: duplicates += 1
                        }
                    }
                    pending.removeAll()
                }
                let selection = try VolumeIngest.cases(
                    of: volume, emptyEvery: emptyEvery, bank: bank, retrieval: segmenter.retrieval,
                    support: segmenter.support, stored: { _, _ in duplicates += 1 },
                    append: { prepared in
                        pending.append(prepared)
                        if pending.count >= Self.volumeBatch { try commit() }
                    })
                try commit()
                try bank.checkpoint(force: false)
                if added.isEmpty && !existed {
                    // Every slice was in the bank already, recorded with the files it first came from.
                    try? FileManager.default.removeItem(atPath: source.image)
                    try? FileManager.default.removeItem(atPath: source.labels)
                }
                return VolumeAddOutcome(
                    volumeHash: volume.volumeHash, sliceCount: volume.sliceCount, selection: selection, added: added,
                    duplicates: duplicates)
            } catch {
                // All or nothing: the cases this request committed go again, and so do the files it wrote.
                if !added.isEmpty { try? bank.remove(added) }
                if !existed {
                    try? FileManager.default.removeItem(atPath: source.image)
                    try? FileManager.default.removeItem(atPath: source.labels)
                }
                switch error {
                case let error as RAGSegIOError: throw ServerError(.badRequest, "\(part(error.path)): \(error.message)")
                case BankError.input(let path, let message): throw ServerError(.badRequest, "\(part(path)): \(message)")
                default: throw error
                }
            }
        }
        addedCount.withLock { $0 += outcome.added.count }
        let reply: [String: Any] = [
            "volume": source.image, "labels": source.labels, "volumeHash": outcome.volumeHash,
            "settings": [
                "sliceAxis": settings.sliceAxis, "intensity": settings.intensity, "channel": settings.channel,
            ],
            "sliceCount": outcome.sliceCount, "chosenSlices": outcome.selection.chosen,
            "labelledSlices": outcome.selection.labelled, "emptySlicesEvery": emptyEvery,
            "added": !outcome.added.isEmpty, "addedIDs": outcome.added.map { Int($0) },
            "alreadyInBank": outcome.duplicates,
        ]
        return jsonResponse(reply, status: outcome.added.isEmpty ? .ok : .created)
    }
}

/// What one volume upload did.
struct VolumeAddOutcome: Sendable {
    var volumeHash: String
    var sliceCount: Int
    var selection: VolumeSliceSelection
    var added: [UInt64]
    var duplicates: Int
}

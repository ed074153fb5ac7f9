// POST /segment with a NIfTI body: the volume segmented slice by slice by the same library call as
// `ragseg segment --index` (RAGSegPipeline.VolumeSegmentation), answered as a NIfTI label volume with the
// input's geometry (gzip-compressed when the upload was) or, with format=json, the VolumeReport.
// Parameters: k, label, positive_only as for images; slices=A:B, slice_axis, window, channel as the
// command line's --slices, --slice-axis, --window, --channel. Limits: the body (maxUploadBytes) and the
// voxel count the header declares (maxVolumeVoxels), both 413, checked before any voxel is decoded.
import Dispatch
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import RAGSegIO
import RAGSegPipeline
import SupportBank

extension SegmentationServer {
    /// Content types that announce a NIfTI body (a gzip body must still hold NIfTI).
    static func declaresNIfTI(_ contentType: String?) -> Bool {
        guard let type = contentType?.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased()
        else { return false }
        return type == "application/x-nifti" || type == "application/gzip" || type == "application/x-gzip"
    }

    func segmentVolume(_ request: Request, bytes: [UInt8]) async throws -> Response {
        let parameters = request.uri.queryParameters
        func parameter<T>(_ name: String, _ parse: (String) throws -> T) throws -> T? {
            guard let value = parameters[Substring(name)] else { return nil }
            do { return try parse(String(value)) } catch let error as VolumeQueryOptions.Invalid {
                throw ServerError(.badRequest, "\(name) \(error.message)")
            }
        }
        let k =
            try parameter("k") { text -> Int in
                guard let n = Int(text), (1...ServerConfiguration.maxK).contains(n) else {
                    throw VolumeQueryOptions.Invalid(
                        message: "must be an integer in 1...\(ServerConfiguration.maxK), got '\(text)'")
                }
                return n
            } ?? configuration.k
        let positiveOnly =
            try parameter("positive_only") { text -> Bool in
                guard let flag = ["0": false, "false": false, "1": true, "true": true][text] else {
                    throw VolumeQueryOptions.Invalid(message: "must be 0/1 or false/true, got '\(text)'")
                }
                return flag
            } ?? false
        let format = parameters["format"].map(String.init) ?? "nifti"
        guard format == "nifti" || format == "json" else {
            throw ServerError(.badRequest, "format must be nifti or json for a volume, got '\(format)'")
        }
        guard parameters["point"] == nil && parameters["box"] == nil else {
            throw ServerError(.badRequest, "point/box refine a 2-D image; a volume takes no prompt")
        }
        let override = VolumeSettingsOverride(
            axis: try parameter("slice_axis", VolumeQueryOptions.axis),
            mapping: try parameter("window", VolumeQueryOptions.mapping),
            channel: try parameter("channel", VolumeQueryOptions.channel))
        let query: VolumeSegmentation
        do {
            query = try VolumeSegmentation(
                bank: bankMetadata, bankPath: bank.path,
                selection: LabelSelection(parameters["label"].map(String.init)),
                k: k, positiveOnly: positiveOnly, override: override,
                sliceRange: try parameter("slices", VolumeQueryOptions.sliceRange))
        } catch let error as SegmentationQueryError {
            throw ServerError(.badRequest, Self.message(error))
        } catch let error as VolumeSegmentationError {
            throw ServerError(.badRequest, error.message)
        }

        // The header first: its declared size against the voxel limit, before anything is allocated for voxels.
        let header: NIfTIHeader
        do { header = try NIfTI.header(data: bytes, name: "upload") } catch let error as RAGSegIOError {
            throw ServerError(.badRequest, "the body is not a readable NIfTI volume: \(error.message)")
        }
        let limit = configuration.maxVolumeVoxels
        let shape = header.shape.map(String.init).joined(separator: "x")
        guard header.voxelCount <= limit else {
            throw ServerError(
                .contentTooLarge,
                "the volume declares \(header.voxelCount) voxels (\(shape)); the server segments at most \(limit) "
                    + "(--max-volume-voxels)")
        }
        let image: NIfTIImage
        do {
            image = try NIfTI.read(data: bytes, name: "upload", limits: NIfTILimits(maxVoxels: limit))
        } catch let error as RAGSegIOError {
            throw ServerError(.badRequest, "the body is not a readable NIfTI volume: \(error.message)")
        }
        let gzip = NIfTI.isGzip(bytes)
        let segmenter = self.segmenter
        let queued = DispatchTime.now()
        let (result, waited) = try await worker.run { () throws -> (VolumeSegmentationResult, Double) in
            let waited = Double(DispatchTime.now().uptimeNanoseconds - queued.uptimeNanoseconds) / 1e9
            do {
                return (try query.run(image, name: "upload", segmenter: segmenter), waited)
            } catch let error as RetrievalSegmenterError {
                throw ServerError(.unprocessableContent, error.message)
            } catch let error as RAGSegIOError {
                throw ServerError(.badRequest, error.message)
            } catch let error as VolumeSegmentationError {
                throw ServerError(.badRequest, error.message)
            }
        }
        var report = result.report
        report.queueSeconds = waited
        if format == "json" {
            return Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: try QueryReport.json(report, pretty: false))))
        }
        let encoded = try NIfTI.encode(result.labelMap, gzip: gzip, name: "label volume")
        let voxels = report.labels.map { "\($0.label)=\($0.voxels)" }.joined(separator: ",")
        return Response(
            status: .ok,
            headers: [
                .contentType: gzip ? "application/gzip" : "application/x-nifti",
                HTTPField.Name("Content-Disposition")!: "attachment; filename=\"labels.nii\(gzip ? ".gz" : "")\"",
                HTTPField.Name("X-RAGSeg-Voxels")!: voxels,
            ],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: encoded)))
    }
}

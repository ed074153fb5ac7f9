import Foundation
import RAGSegIO
import RAGSegPipeline
import SAM2
import SupportBank

/// Volume banks for the volume query tests, built directly through the SupportBank API (the ingest
/// commands are tested elsewhere): every slice of each synthetic volume becomes a case with its
/// `SliceOrigin`, encoded by the tiny fixture models, with the bank's `volumeSettings` recorded.
public enum VolumeBanks {
    public static let labels = ["organ", "lesion"]
    public static let settings = VolumeSettings(axis: .axial, intensity: .ctDefault, channel: 0)

    /// Synthetic case `index` (SyntheticVolumes: organ 1, lesion 2; stored axes permuted and flipped)
    /// written as DIR/case_NNN.nii.gz and DIR/case_NNN_labels.nii.gz; returns both paths.
    public static func writeCase(index: Int, size: Int = 32, slices: Int = 6, to directory: URL) throws -> CaseSource {
        let c = SyntheticVolumes.makeCase(index: index, size: size, slices: slices, seed: 11)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let id = SyntheticVolumes.caseID(index)
        let image = directory.appendingPathComponent("\(id).nii.gz").path
        let labels = directory.appendingPathComponent("\(id)_labels.nii.gz").path
        try NIfTI.write(c.image, to: image)
        try NIfTI.write(c.labels, to: labels)
        return CaseSource(image: image, mask: labels)
    }

    public static func metadata(
        retrieval: DINOv2RetrievalEncoder, support: SAM2SupportEncoder, settings: VolumeSettings? = settings
    ) -> BankMetadata {
        var metadata = BankMetadata(
            retrievalModel: retrieval.model, supportModel: support.model,
            embeddingDimension: retrieval.dimension, memoryShape: support.memoryShape,
            preprocessing: retrieval.preprocessing.merging(support.preprocessing) { a, _ in a },
            labels: labels)
        metadata.volumeSettings = settings
        return metadata
    }

    /// Every slice of `source` as a prepared case (one memory per present label, an empty-mask memory when
    /// a label is absent), with its origin: the volume's path and SHA-256, slice index, axis and spacing.
    public static func slices(
        of source: CaseSource, retrieval: DINOv2RetrievalEncoder, support: SAM2SupportEncoder,
        settings: VolumeSettings = settings
    ) throws -> [PreparedCase] {
        let axis = settings.axis!
        let image = try NIfTI.read(source.image)
        let images = try VolumeSliceImages(
            try image.intensities(frame: nil, name: source.image), axis: axis, mapping: settings.mapping!,
            name: source.image)
        let labels = try VolumeSlices(
            try NIfTI.read(source.mask).labels(name: source.mask), axis: axis, name: source.mask)
        let hash = hexString(try SHA256.hash(fileAt: source.image))
        return try (0..<images.count).map { s in
            let picture = images.image(s)
            let labelSlice = labels.slice(s)
            let present = Set(labelSlice.map(Int.init)).subtracting([0]).sorted()
            var memories: [(label: Int, memory: SupportMemory)] = []
            if present.count < Self.labels.count {
                let empty = [UInt8](repeating: 0, count: labelSlice.count)
                memories.append((0, try support.encodeSupport(image: picture, mask: empty)))
            }
            for label in present {
                let mask = labelSlice.map { Int($0) == label ? UInt8(1) : 0 }
                memories.append((label, try support.encodeSupport(image: picture, mask: mask)))
            }
            return PreparedCase(
                image: "\(source.image)#\(axis.rawValue)\(s)", mask: "\(source.mask)#\(axis.rawValue)\(s)",
                contentHash: SHA256.hash(Array("\(hash) \(axis.rawValue) \(s)".utf8)),
                width: picture.width, height: picture.height, embedding: try retrieval.embed(picture),
                memories: memories,
                origin: SliceOrigin(
                    volume: source.image, volumeHash: hash, slice: s, axis: axis.rawValue,
                    spacing: images.spacing))
        }
    }
}

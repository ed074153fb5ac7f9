// `ragseg eval` on volumes: each image volume segmented slice by slice (VolumeSegmentation) and scored
// against its label volume per label in 3-D: Dice, IoU and HD95 in millimetres (Evaluation.volumeScores).
// Leave-one-out excludes every slice of the query's own volume from retrieval, not only the slice itself:
// neighbouring slices are near-duplicates, so leaving them in would leak the answer.
import Dispatch
import Evaluation
import Foundation
import RAGSegIO
import SupportBank

/// One (volume, label) score.
public struct VolumeEvaluationRow: Sendable {
    public var image: String
    public var labels: String
    public var label: Int
    public var labelName: String
    /// HD95 in mm.
    public var scores: SegmentationScores
    public var predictedVoxels: Int
    public var trueVoxels: Int
    public var predictedMl: Double
    public var trueMl: Double
    /// Bank cases kept out of retrieval for this volume (leave-one-out: all of its slices).
    public var excludedCases: Int
    public var seconds: Double
}

public enum VolumeEvaluationRun {
    /// Image volume -> label volume pairs of a dataset folder: nnU-Net v2 (`imagesTr/CASE_0000.nii.gz`,
    /// `labelsTr/CASE.nii.gz`) or MSD (`imagesTr/CASE.nii.gz`, `labelsTr/CASE.nii.gz`); images of other
    /// channels (`_0001`...) are skipped. Every image needs its label volume.
    public static func datasetPairs(_ directory: String) throws -> [CaseSource] {
        let images = (directory as NSString).appendingPathComponent("imagesTr")
        let labels = (directory as NSString).appendingPathComponent("labelsTr")
        return try folderPairs(images: images, labels: labels)
    }

    /// Pairs from an images folder and a labels folder of NIfTI files, matched by case name (the image's
    /// name less nnU-Net's `_0000` channel suffix), in name order.
    public static func folderPairs(images: String, labels: String) throws -> [CaseSource] {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: images) } catch {
            throw BankError.input(images, "cannot list the folder (\(error.localizedDescription))")
        }
        var pairs: [CaseSource] = []
        // "._NAME" files are macOS metadata (the MSD archives hold them).
        for name in names.sorted() where VolumeQueryOptions.isNIfTIPath(name) && !name.hasPrefix("._") {
            let ending = name.lowercased().hasSuffix(".gz") ? ".nii.gz" : ".nii"
            var caseID = String(name.dropLast(ending.count))
            if let range = caseID.range(of: #"_\d{4}$"#, options: .regularExpression) {
                guard caseID[range] == "_0000" else { continue }
                caseID.removeSubrange(range)
            }
            let label = (labels as NSString).appendingPathComponent(caseID + ending)
            guard FileManager.default.fileExists(atPath: label) else {
                throw BankError.input(
                    label, "missing: the label volume of \((images as NSString).appendingPathComponent(name))")
            }
            pairs.append(CaseSource(image: (images as NSString).appendingPathComponent(name), mask: label))
        }
        guard !pairs.isEmpty else { throw BankError.input(images, "no .nii or .nii.gz image volumes") }
        return pairs
    }

    /// Bank cases cut from the volume at `imagePath` whose bytes hash to `volumeHash`: matched by the hash
    /// recorded in their `SliceOrigin`, or by the same path when the recorded hash differs (the file was
    /// rewritten since it was added).
    public static func casesFromVolume(imagePath: String, volumeHash: String, records: [CaseRecord]) -> Set<UInt64> {
        let path = BankModels.absolute(imagePath)
        return Set(
            records.filter { record in
                guard let origin = record.origin else { return false }
                return origin.volumeHash == volumeHash || BankModels.absolute(origin.volume) == path
            }.map(\.id))
    }

    /// Segments and scores every pair; with `leaveOneOut`, each volume's own slices are excluded.
    public static func run(
        _ segmenter: RetrievalSegmenter, query: VolumeSegmentation, sources: [CaseSource], leaveOneOut: Bool,
        limits: NIfTILimits = NIfTILimits(), progress: (Int, Int) -> Void = { _, _ in }
    ) throws -> [VolumeEvaluationRow] {
        let records = try leaveOneOut ? segmenter.bank.allRecords() : []
        var rows: [VolumeEvaluationRow] = []
        for (n, source) in sources.enumerated() {
            let start = DispatchTime.now()
            // Read in place (NIfTI.open), the image hashed in pieces, the scores a plane at a time: memory
            // holds the models, one slice's work and the masks' bounding box, not the volumes.
            let image = try NIfTI.open(source.image, limits: limits)
            let truth = try NIfTI.open(source.mask, limits: limits).labels(name: source.mask)
            let shape = image.header.spatialShape
            guard truth.shape == shape else {
                throw BankError.input(
                    source.mask, "label volume dimensions \(truth.shape) differ from the image's \(shape)")
            }
            // The same grid: checkSameGrid compares the affines (and words the error).
            try checkSameGrid(
                shape: shape, affine: image.header.affine, labelShape: truth.shape, labelAffine: truth.affine,
                labelName: source.mask)
            var bad: (offset: Int, element: UInt16)? = nil
            truth.forEachChunk { first, values in
                guard bad == nil, let i = values.firstIndex(where: { Int($0) > query.bankLabels.count }) else { return }
                bad = (first + i, values[i])
            }
            if let bad {
                throw BankError.input(
                    source.mask,
                    "label value \(bad.element) (voxel \(bad.offset)) is not one of the bank's "
                        + "\(query.bankLabels.count) labels")
            }
            let excluded =
                leaveOneOut
                ? casesFromVolume(
                    imagePath: source.image, volumeHash: try VolumeCaseLoader.fileSHA256(source.image),
                    records: records) : []
            let result = try query.run(image, name: source.image, segmenter: segmenter, excluding: excluded)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
            let spacing = image.header.voxelSizeMillimetres, voxelMl = image.header.voxelVolumeMillilitres
            let plane = shape[0] * shape[1]
            for label in query.labels {
                var p = 0, t = 0
                let scores = volumeScores(shape: shape, spacing: spacing) { k, predicted, actual in
                    let range = (k * plane)..<((k + 1) * plane)
                    for (i, v) in result.output.values(range).enumerated() { predicted[i] = Int(v) == label }
                    for (i, v) in truth.values(range).enumerated() { actual[i] = Int(v) == label }
                }
                // Voxel counts from one more pass (the scores' passes do not report them).
                for k in 0..<shape[2] {
                    let range = (k * plane)..<((k + 1) * plane)
                    p += result.output.values(range).reduce(0) { $0 + (Int($1) == label ? 1 : 0) }
                    t += truth.values(range).reduce(0) { $0 + (Int($1) == label ? 1 : 0) }
                }
                rows.append(
                    VolumeEvaluationRow(
                        image: source.image, labels: source.mask, label: label,
                        labelName: query.bankLabels[label - 1],
                        scores: scores, predictedVoxels: p, trueVoxels: t, predictedMl: Double(p) * voxelMl,
                        trueMl: Double(t) * voxelMl,
                        excludedCases: excluded.count, seconds: seconds))
            }
            progress(n + 1, sources.count)
        }
        return rows
    }

    /// CSV with a header; HD95 (mm) is empty where undefined (an empty mask).
    public static func csv(_ rows: [VolumeEvaluationRow]) -> String {
        func quoted(_ s: String) -> String { "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }
        var out =
            "image,labels,label,label_name,dice,iou,hd95_mm,predicted_voxels,true_voxels,predicted_ml,true_ml,"
            + "excluded_cases,seconds\n"
        for r in rows {
            out +=
                [
                    quoted(r.image), quoted(r.labels), String(r.label), quoted(r.labelName), String(r.scores.dice),
                    String(r.scores.iou), r.scores.hd95.map { String($0) } ?? "", String(r.predictedVoxels),
                    String(r.trueVoxels), String(r.predictedMl), String(r.trueMl), String(r.excludedCases),
                    String(format: "%.3f", r.seconds),
                ].joined(separator: ",") + "\n"
        }
        return out
    }
}

// `ragseg eval`: segment cases whose ground truth is known and score them (Dice, IoU, HD95).
import Foundation
import Evaluation
import RAGSegIO
import SupportBank

/// One (case, label) score.
public struct EvaluationRow: Sendable {
    public var image: String
    public var mask: String
    public var label: Int
    public var labelName: String
    public var scores: SegmentationScores
    /// Retrieved bank cases (most similar first) and their cosine similarities.
    public var retrieved: [(id: UInt64, score: Float)]
    public var seconds: Double
}

public enum EvaluationRun {
    /// Every bank case queried against the rest of the bank (its own id excluded from retrieval).
    public static func leaveOneOut(
        _ segmenter: RetrievalSegmenter, k: Int, positiveOnly: Bool = false,
        progress: (Int, Int) -> Void = { _, _ in }
    ) throws -> [EvaluationRow] {
        let records = try segmenter.bank.allRecords()
        return try evaluate(
            segmenter, cases: records.map { (CaseSource(image: $0.image, mask: $0.mask), Set([$0.id])) },
            k: k, positiveOnly: positiveOnly, progress: progress)
    }

    /// Held-out image/mask pairs (none of them is excluded from retrieval: they are not in the bank).
    public static func heldOut(
        _ segmenter: RetrievalSegmenter, sources: [CaseSource], k: Int, positiveOnly: Bool = false,
        progress: (Int, Int) -> Void = { _, _ in }
    ) throws -> [EvaluationRow] {
        try evaluate(
            segmenter, cases: sources.map { ($0, Set<UInt64>()) }, k: k, positiveOnly: positiveOnly, progress: progress)
    }

    static func evaluate(
        _ segmenter: RetrievalSegmenter, cases: [(CaseSource, Set<UInt64>)], k: Int, positiveOnly: Bool,
        progress: (Int, Int) -> Void
    ) throws -> [EvaluationRow] {
        let labels = segmenter.bank.metadata.labels
        var rows: [EvaluationRow] = []
        for (n, (source, excluded)) in cases.enumerated() {
            // The same reading and validation as `index add` (size match, declared label values).
            let loaded = try CaseLoader.load(source, labelCount: labels.count)
            let w = loaded.image.width, h = loaded.image.height
            for label in 1...labels.count {
                let result = try segmenter.segment(
                    loaded.image, name: source.image, k: k, label: label, positiveOnly: positiveOnly,
                    excluding: excluded)
                let truth = BinaryMask(width: w, height: h, pixels: loaded.labelMap.map { Int($0) == label })
                let prediction = BinaryMask(width: w, height: h, pixels: result.mask)
                rows.append(
                    EvaluationRow(
                        image: source.image, mask: source.mask, label: label, labelName: labels[label - 1],
                        scores: segmentationScores(prediction: prediction, truth: truth),
                        retrieved: result.supports.map { ($0.id, $0.score) },
                        seconds: result.timings.last?.seconds ?? 0))
            }
            progress(n + 1, cases.count)
        }
        return rows
    }

    /// CSV with a header; HD95 is empty where undefined (an empty mask).
    public static func csv(_ rows: [EvaluationRow]) -> String {
        func quoted(_ s: String) -> String { "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }
        var out = "image,mask,label,label_name,dice,iou,hd95,retrieved_ids,similarities,seconds\n"
        for r in rows {
            let hd95 = r.scores.hd95.map { String($0) } ?? ""
            out +=
                [
                    quoted(r.image), quoted(r.mask), String(r.label), quoted(r.labelName), String(r.scores.dice),
                    String(r.scores.iou), hd95, quoted(r.retrieved.map { String($0.id) }.joined(separator: " ")),
                    quoted(r.retrieved.map { String(format: "%.4f", $0.score) }.joined(separator: " ")),
                    String(format: "%.3f", r.seconds),
                ].joined(separator: ",") + "\n"
        }
        return out
    }

    /// Mean and median of Dice, IoU and HD95 (over the cases where it is defined) per label.
    public static func summaries(_ rows: [EvaluationRow]) -> [(
        label: String, dice: Summary?, iou: Summary?, hd95: Summary?
    )] {
        var order: [String] = []
        var byLabel: [String: [EvaluationRow]] = [:]
        for r in rows {
            if byLabel[r.labelName] == nil { order.append(r.labelName) }
            byLabel[r.labelName, default: []].append(r)
        }
        return order.map { name in
            let rs = byLabel[name]!
            return (
                name, Summary(rs.map(\.scores.dice)), Summary(rs.map(\.scores.iou)),
                Summary(rs.compactMap(\.scores.hd95))
            )
        }
    }
}

// `ragseg eval` on volumes (RAGSegPipeline.VolumeEvaluationRun): per volume and label, 3-D Dice, IoU and
// HD95 in mm; the summary per label; the rows as CSV.
import ArgumentParser
import Evaluation
import Foundation
import RAGSegIO
import RAGSegPipeline
import SupportBank

extension Eval {
    func runOnVolumes(_ bank: SupportBank) throws {
        let sources =
            try dataset.map(VolumeEvaluationRun.datasetPairs)
            ?? VolumeEvaluationRun.folderPairs(images: images!, labels: masks!)
        let (override, _) = try volume.parsed()
        let query: VolumeSegmentation
        do {
            query = try VolumeSegmentation(
                bank: bank.metadata, bankPath: bank.path, selection: .all, k: k, positiveOnly: positiveOnly,
                override: override)
        } catch let error as SegmentationQueryError {
            throw ValidationError("\(bank.path): \(error)")
        }
        for note in query.notes { printError("note: \(note)") }
        let segmenter = try BankModels.segmenter(for: bank, dinov2: dinov2, sam2: sam2)
        let rows = try VolumeEvaluationRun.run(
            segmenter, query: query, sources: sources, leaveOneOut: leaveOneOut,
            progress: { done, total in if !quiet { printError("\(done)/\(total) volumes") } })
        let m = bank.metadata
        print(
            """
            bank \(bank.path): \(try bank.statistics().cases) cases; k = \
            \(k)\(positiveOnly ? " (positive cases only)" : ""); \(sources.count) volumes\
            \(leaveOneOut ? ", each volume's own slices excluded" : ""); models \(m.retrievalModel), \
            \(m.supportModel)
            """
        )
        if !quiet {
            print("volume\tlabel\tdice\tiou\thd95 mm\tpredicted mL\ttrue mL\texcluded")
            for r in rows {
                let name = (r.image as NSString).lastPathComponent
                let hd95 = r.scores.hd95.map { String(format: "%.2f", $0) } ?? "-"
                let scores = String(format: "%.4f\t%.4f", r.scores.dice, r.scores.iou)
                let volumes = String(format: "%.2f\t%.2f", r.predictedMl, r.trueMl)
                print("\(name)\t\(r.labelName)\t\(scores)\t\(hd95)\t\(volumes)\t\(r.excludedCases)")
            }
        }
        print("label\tvolumes\tdice mean\tdice median\tiou mean\tiou median\thd95 mm mean\thd95 mm median")
        for label in query.labels {
            let name = query.bankLabels[label - 1]
            let labelRows = rows.filter { $0.label == label }
            let dice = Summary(labelRows.map(\.scores.dice)), iou = Summary(labelRows.map(\.scores.iou))
            let hd95 = Summary(labelRows.compactMap(\.scores.hd95))
            func f(_ v: Double?) -> String { v.map { String(format: "%.4f", $0) } ?? "-" }
            let columns = [dice?.mean, dice?.median, iou?.mean, iou?.median, hd95?.mean, hd95?.median]
            print("\(name)\t\(labelRows.count)\t" + columns.map(f).joined(separator: "\t"))
        }
        try Data(VolumeEvaluationRun.csv(rows).utf8).write(to: URL(fileURLWithPath: csv), options: .atomic)
        print("wrote \(rows.count) rows to \(csv)")
    }
}

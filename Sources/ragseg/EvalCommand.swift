// `ragseg eval`: Dice, IoU and HD95 of retrieval-augmented segmentation on cases with known masks.
import ArgumentParser
import Evaluation
import Foundation
import RAGSegCommandOptions
import RAGSegPipeline
import SupportBank

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Score retrieval-augmented segmentation (Dice, IoU, HD95) per case and per label.",
        discussion: """
            --leave-one-out queries every bank case against the rest of the bank (its own id excluded from \
            retrieval); --images/--masks scores held-out pairs (matched by file stem). HD95 follows MedPy \
            (pixel units) and is left out of the means where a mask is empty. Per-case rows go to the CSV.
            Volumes: --dataset DIR (nnU-Net v2 or MSD: imagesTr/ and labelsTr/), or --images/--masks folders of \
            NIfTI files, are segmented slice by slice and scored per volume and label in 3-D (HD95 in mm from \
            the voxel spacing); with --leave-one-out every slice of the query's own volume is kept out of \
            retrieval (bank cases whose recorded volume hash or path is the query's).
            """)

    @OptionGroup var precision: PrecisionOptions
    @Option(help: "Support bank (a bare name means Indexes/NAME).") var index: String
    @Option(help: "A volume dataset (nnU-Net v2 or MSD layout: imagesTr/, labelsTr/).") var dataset: String?
    @Option(help: "Folder of held-out images.") var images: String?
    @Option(help: "Folder of their masks.") var masks: String?
    @Flag(help: "Query each bank case against the others.") var leaveOneOut = false
    @Option(help: "DINOv2 weights the bank was built with (default: the file recorded in the bank).") var dinov2:
        String?
    @Option(help: "SAM 2 weights the bank was built with (default: the file recorded in the bank).") var sam2: String?
    @Option(name: .customLong("k"), help: "Supports retrieved per query.") var k = 4
    @Flag(
        help:
            "Retrieve only cases whose mask contains the label (default: the k nearest, empty-mask memories included).")
    var positiveOnly = false
    @Option(help: "Per-case CSV output, replaced if it exists (its folder is checked before the run).") var csv =
        "eval.csv"
    @Flag(help: "No per-case lines (summary only).") var quiet = false
    @OptionGroup var pixelLimit: PixelLimitOptions
    @OptionGroup var volume: VolumeSegmentOptions

    /// Volumes: a dataset, or image/label folders holding NIfTI files.
    var onVolumes: Bool {
        if dataset != nil { return true }
        guard let images, let names = try? FileManager.default.contentsOfDirectory(atPath: images) else { return false }
        return names.contains(where: VolumeQueryOptions.isNIfTIPath)
    }

    func validate() throws {
        if dataset != nil && (images != nil || masks != nil) {
            throw ValidationError("give --dataset or --images/--masks (not both)")
        }
        if volume.slices != nil { throw ValidationError("--slices is for segment; eval scores whole volumes") }
        if onVolumes {
            if (images == nil) != (masks == nil) { throw ValidationError("--images and --masks go together") }
            guard k >= 1 else { throw ValidationError("--k must be at least 1") }
            _ = try volume.parsed()
            return
        }
        if volume.given { throw ValidationError("--slice-axis, --window and --channel go with volumes") }
        guard leaveOneOut != (images != nil || masks != nil) else {
            throw ValidationError("give --leave-one-out or --images/--masks (not both)")
        }
        if (images == nil) != (masks == nil) { throw ValidationError("--images and --masks go together") }
        guard k >= 1 else { throw ValidationError("--k must be at least 1") }
    }

    func run() throws {
        try checkCSVDestination()
        let bank = try SupportBank.open(at: resolveBankPath(index), readOnly: true)
        if onVolumes { return try runOnVolumes(bank) }
        let segmenter = try BankModels.segmenter(for: bank, dinov2: dinov2, sam2: sam2)
        let progress = { (done: Int, total: Int) in if !quiet { printError("\(done)/\(total) cases") } }
        let rows: [EvaluationRow]
        if leaveOneOut {
            rows = try EvaluationRun.leaveOneOut(segmenter, k: k, positiveOnly: positiveOnly, progress: progress)
        } else {
            rows = try EvaluationRun.heldOut(
                segmenter, sources: try CaseSources.pairs(images: images!, masks: masks!), k: k,
                positiveOnly: positiveOnly, progress: progress)
        }
        let m = bank.metadata
        print(
            """
            bank \(bank.path): \(try bank.statistics().cases) cases; k = \
            \(k)\(positiveOnly ? " (positive cases only)" : ""); models \(m.retrievalModel), \(m.supportModel)
            """
        )
        if m.retrievalModel.variant.hasPrefix("custom") || m.supportModel.variant.contains("fixture") {
            print(
                """
                note: these are small test models with random weights: the scores below say nothing about segmentation \
                quality.
                """
            )
        }
        if !quiet {
            print("case\tlabel\tdice\tiou\thd95")
            for r in rows {
                let name = ((r.image as NSString).lastPathComponent as NSString).deletingPathExtension
                let hd95 = r.scores.hd95.map { String(format: "%.2f", $0) } ?? "-"
                let scores = String(format: "%.4f\t%.4f", r.scores.dice, r.scores.iou)
                print("\(name)\t\(r.labelName)\t\(scores)\t\(hd95)")
            }
        }
        print("label\tcases\tdice mean\tdice median\tiou mean\tiou median\thd95 mean\thd95 median")
        for s in EvaluationRun.summaries(rows) {
            func f(_ v: Double?) -> String { v.map { String(format: "%.4f", $0) } ?? "-" }
            let columns = [s.dice?.mean, s.dice?.median, s.iou?.mean, s.iou?.median, s.hd95?.mean, s.hd95?.median]
            print("\(s.label)\t\(s.dice?.count ?? 0)\t" + columns.map(f).joined(separator: "\t"))
        }
        try Data(EvaluationRun.csv(rows).utf8).write(to: URL(fileURLWithPath: csv), options: .atomic)
        print("wrote \(rows.count) rows to \(csv)")
    }

    /// Refuses a `--csv` path the rows could not be written to before any case is segmented: the rows are
    /// written last, and an evaluation of a large dataset should not run for an hour and then lose them to a
    /// missing folder or a mistyped path.
    func checkCSVDestination() throws {
        let fm = FileManager.default
        var isFolder: ObjCBool = false
        if fm.fileExists(atPath: csv, isDirectory: &isFolder), isFolder.boolValue {
            throw ValidationError("--csv \(csv): is a folder; give the path of the CSV file to write")
        }
        let folder = URL(fileURLWithPath: csv).deletingLastPathComponent().path
        guard fm.fileExists(atPath: folder, isDirectory: &isFolder), isFolder.boolValue else {
            throw ValidationError("--csv \(csv): the folder \(folder) does not exist")
        }
        guard fm.isWritableFile(atPath: folder) else {
            throw ValidationError("--csv \(csv): the folder \(folder) is not writable")
        }
    }
}

// `ragseg segment --sam2 CKPT --support IMG=MASK ... TARGET... --out DIR`: few-shot segmentation with
// supports given by hand. The pipeline lives in SAM2.SupportSegmenter; this file parses arguments,
// checks every input file before the model is loaded (so a typo fails in milliseconds), and writes outputs.
import ArgumentParser
import Dispatch
import Foundation
import RAGSegCommandOptions
import RAGSegIO
import RAGSegPipeline
import SAM2
import SupportBank
import TensorCore

struct SegmentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "segment",
        abstract: "Segment target images with SAM 2 conditioned on annotated support images (from a bank, or given).",
        discussion: """
            With --index BANK (and the bank's --dinov2 and --sam2 weights), the supports of each target are \
            its k nearest bank cases by DINOv2 similarity, most similar first; their stored memories are used \
            as they are (nothing is re-encoded). --label NAME picks one label; by default a binary bank gives \
            a 0/255 mask and a multi-label bank a label map (pixel = the label with the highest positive \
            logit, 0 elsewhere). --overlay also writes DIR/<stem>_overlay.png (outline + retrieved case ids).
            Each --support IMG=MASK is a support image and its ground-truth mask, both PNG and of the same \
            size. A mask pixel is foreground when its gray value is nonzero (0/1 and 0/255 masks both work; \
            16-bit gray kept; alpha ignored; palette masks by palette index; RGB only when gray, R = G = B). \
            An all-zero mask is allowed (SAM 2's no-object memory). Supports are \
            frames 0..k-1 in the given order, the first being the most similar; they are encoded once per run.
            For each TARGET, DIR/<target-stem>.png is written at the target's size: 0 = background, \
            foreground = 255 (or 1 with --mask-values 1); foreground is where SAM 2's logit is > 0.
            --logits writes the chosen low-resolution logits (256x256 at image size 1024) as float32 .npy: \
            [256, 256] for one target, [N, 256, 256] for N targets in argument order.
            --point x,y[,label] (repeatable) and --box x0,y0,x1,y1 (at most one) refine the result for a single \
            target, in its pixel coordinates (x = column, y = row; label 1 = on the object, the default, 0 = \
            not): SAM 2's official refinement of a segmented frame. The target keeps its memory conditioning \
            on the supports; the prompt-free logits become the mask prompt together with the clicks/box, and \
            the refined mask is written. With a multi-label bank, also give --label.
            """)

    @OptionGroup var precision: PrecisionOptions
    @Option(
        name: .customLong("sam2"),
        help: """
            SAM 2 / 2.1 checkpoint (.safetensors, official or Hugging Face keys, or the official .pt); with --index, \
            default: the bank's.
            """
    )
    var modelPath: String?

    @Option(name: .customLong("support"), help: "A support as IMAGE=MASK (repeatable; order = frame order).")
    var supports: [String] = []

    @Option(help: "Support bank to retrieve supports from (a bare name means Indexes/NAME).")
    var index: String?

    @Option(help: "DINOv2 weights the bank was built with (with --index; default: the file recorded in the bank).")
    var dinov2: String?

    @Option(name: .customLong("k"), help: "Supports retrieved per target (with --index).")
    var k: Int = 4

    @Option(help: "Label to segment (with --index): a label name, or 'all'.")
    var label: String = "all"

    @Flag(
        help: ArgumentHelp(
            "Retrieve only cases whose mask contains the label (with --index).",
            discussion:
                """
                By default the k nearest cases are the supports whatever their masks hold: a case without the label \
                supports with the memory of its empty mask, so a target like it can come out empty.
                """
        ))
    var positiveOnly = false

    @Flag(
        help: ArgumentHelp(
            "Write one mask per label, DIR/<stem>_<label>.png, instead of one label map (with --index).",
            discussion:
                """
                Each label's mask is its own logits > 0, so labels may overlap; the label map gives each pixel the \
                label with the highest positive logit.
                """
        ))
    var maskPerLabel = false

    @Flag(help: "Also write DIR/<stem>_overlay.png: the image, the mask outline and the retrieved case ids.")
    var overlay = false

    @Argument(
        help: """
            Target images (.png), or folders of them (their .png files, in name order); with --index also NIfTI \
            volumes (.nii, .nii.gz), segmented slice by slice into DIR/<same file name>.
            """)
    var targets: [String] = []

    @OptionGroup var volume: VolumeSegmentOptions

    @Option(help: "Output directory (created if missing).")
    var out: String

    @Option(help: "Foreground value of the written masks: 255 (0/255) or 1 (0/1).")
    var maskValues: Int = 255

    @Option(help: "Also write the low-resolution logits to this .npy file.")
    var logits: String?

    @Option(
        name: .customLong("point"), parsing: .unconditionalSingleValue,
        help:
            """
            A click on the (single) target: x,y[,label] in its pixels; label 1 positive (default) or 0 negative. \
            Repeatable.
            """
    )
    var points: [String] = []

    @Option(
        name: .customLong("box"), parsing: .unconditionalSingleValue,
        help: "A box on the (single) target: x0,y0,x1,y1 in its pixels (top-left, bottom-right). At most one.")
    var boxes: [String] = []

    @Flag(help: "Print per-target scores and stage timings as JSON on stdout.")
    var json = false

    @Option(help: "Override the model input size (default: 1024 for published SAM 2 sizes, else the weights' sidecar).")
    var imageSize: Int?

    @Option(help: "Threads for BLAS and the parallel loops (default: all cores).")
    var threads: Int?

    mutating func validate() throws {
        targets = try Self.expandFolders(targets)
        guard supports.isEmpty != (index == nil) else {
            throw ValidationError("give --support IMAGE=MASK (one or more) or --index BANK")
        }
        if index == nil && modelPath == nil { throw ValidationError("--support needs the --sam2 checkpoint") }
        if index == nil && (dinov2 != nil || overlay || positiveOnly || maskPerLabel) {
            throw ValidationError("--dinov2, --overlay, --positive-only and --mask-per-label go with --index")
        }
        guard k >= 1 else { throw ValidationError("--k must be at least 1") }
        guard !targets.isEmpty else { throw ValidationError("give at least one target image") }
        try volume.check(targets: targets, command: self)
        guard maskValues == 255 || maskValues == 1 else {
            throw ValidationError("--mask-values must be 255 or 1, got \(maskValues)")
        }
        if let imageSize, imageSize <= 0 || imageSize % 32 != 0 {
            throw ValidationError("--image-size must be a positive multiple of 32, got \(imageSize)")
        }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        for s in supports { _ = try Self.splitSupport(s) }
        let prompt = try parsedPrompt()
        if !prompt.isEmpty && targets.count > 1 {
            throw ValidationError(
                "--point/--box refine a single target, but \(targets.count) targets were given; run once per target")
        }
        var stems: [String: String] = [:]
        for t in targets where !VolumeQueryOptions.isNIfTIPath(t) {
            let stem = Self.stem(t)
            if let other = stems[stem] {
                throw ValidationError("targets \(other) and \(t) would both be written to \(stem).png")
            }
            stems[stem] = t
        }
    }

    /// Each folder among the targets becomes its .png files in name order (not recursive): a folder of
    /// targets is one run, with the models loaded once.
    static func expandFolders(_ targets: [String]) throws -> [String] {
        try targets.flatMap { target -> [String] in
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: target, isDirectory: &isDirectory), isDirectory.boolValue
            else { return [target] }
            let names: [String]
            do { names = try FileManager.default.contentsOfDirectory(atPath: target) } catch {
                throw ValidationError("\(target): cannot list the folder (\(error.localizedDescription))")
            }
            let pngs = names.filter { $0.lowercased().hasSuffix(".png") }.sorted()
            guard !pngs.isEmpty else { throw ValidationError("\(target): folder has no .png files") }
            return pngs.map { (target as NSString).appendingPathComponent($0) }
        }
    }

    /// A label name as a file-name part: letters, digits, '.', '-' and '_' kept, anything else '_'.
    static func fileSafe(_ name: String) -> String {
        String(name.map { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) ? $0 : "_" })
    }

    static func splitSupport(_ s: String) throws -> (image: String, mask: String) {
        // Split at the last '=' so image paths may contain '='.
        guard let eq = s.lastIndex(of: "="), eq != s.startIndex, s.index(after: eq) != s.endIndex else {
            throw ValidationError("--support expects IMAGE=MASK, got '\(s)'")
        }
        return (String(s[..<eq]), String(s[s.index(after: eq)...]))
    }

    /// The --point/--box values (syntax only; the image bounds are checked once the target is read).
    func parsedPrompt() throws -> SAM2Prompt {
        guard boxes.count <= 1 else { throw ValidationError("--box may be given at most once (got \(boxes.count))") }
        do {
            return try SAM2Prompt.parse(points: points, boxes: boxes)
        } catch let error as SAM2PromptError {
            throw ValidationError("--\(error.message)")
        }
    }

    /// Reads the (single) target and checks the prompt lies inside it, before any model is loaded.
    func checkPrompt(_ prompt: SAM2Prompt) throws {
        guard !prompt.isEmpty, let target = targets.first else { return }
        let image = try SupportSegmenter.readPNG(target, role: "target image")
        do { try prompt.validate(width: image.width, height: image.height) } catch let error as SAM2PromptError {
            throw ValidationError("--point/--box on \(target): \(error.message)")
        }
    }

    static func stem(_ path: String) -> String {
        URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
    }

    func run() throws {
        if let threads { Threads.set(threads) }
        if index != nil { return try runFromBank() }
        // Check every input before the (slow) model load.
        let inputs = try supports.map { s -> SupportSegmenter.SupportInput in
            let (image, mask) = try Self.splitSupport(s)
            return try SupportSegmenter.loadSupport(imagePath: image, maskPath: mask)
        }
        for t in targets where !FileManager.default.fileExists(atPath: t) {
            throw SupportSegmenterError("\(t): target image file does not exist")
        }
        let prompt = try parsedPrompt()
        try checkPrompt(prompt)
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)

        var clock = DispatchTime.now().uptimeNanoseconds
        func lap() -> Double {
            let now = DispatchTime.now().uptimeNanoseconds
            defer { clock = now }
            return Double(now - clock) / 1e9
        }
        let segmenter = try SupportSegmenter(path: modelPath!, imageSize: imageSize)
        let loadSeconds = lap()
        var memories: [SupportMemory] = []
        var supportReports: [[String: Any]] = []
        for input in inputs {
            memories.append(try segmenter.encodeSupport(input))
            supportReports.append([
                "image": input.imagePath, "mask": input.maskPath, "empty": input.isEmpty, "seconds": lap(),
            ])
        }

        var results: [TargetSegmentation] = []
        var targetReports: [[String: Any]] = []
        for target in targets {
            let r = try segmenter.segment(targetPath: target, supports: memories, prompt: prompt)
            let outPath = (out as NSString).appendingPathComponent(Self.stem(target) + ".png")
            try PNG.writeGray8(
                r.maskPixels(foreground: UInt8(maskValues)), width: r.width, height: r.height, to: outPath)
            results.append(r)
            let s = r.segmentation
            var report: [String: Any] = [
                "file": target, "mask": outPath, "width": r.width, "height": r.height,
                "iou": s.iou.map(Double.init), "chosen": s.chosen, "objectScore": Double(s.objectScore),
                "foregroundPixels": r.foregroundPixels,
                "seconds": [
                    "imageEncode": r.timings.imageEncode, "memoryAttention": r.timings.memoryAttention,
                    "decode": r.timings.decode, "total": r.timings.total,
                ],
            ]
            if !prompt.isEmpty { report["prompt"] = prompt.reportObject }
            targetReports.append(report)
            _ = lap()
            if !json {
                FileHandle.standardError.write(
                    Data(
                        String(
                            format: "segment: %@ -> %@ (%d foreground px, object score %.3f, IoU %.3f, %.2f s)\n",
                            target, outPath, r.foregroundPixels, s.objectScore, s.iou[s.chosen], r.timings.total
                        ).utf8))
            }
        }
        if let logits {
            try NPY.write(SupportSegmenter.lowResolutionLogits(results), to: logits)
        }
        if json {
            let report: [String: Any] = [
                "modelLoadSeconds": loadSeconds, "imageSize": segmenter.imageSize, "supports": supportReports,
                "targets": targetReports,
            ]
            let data = try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys])
            FileHandle.standardOutput.write(data + Data("\n".utf8))
        }
    }

    /// `--index`: retrieval-augmented segmentation from a support bank (RAGSegPipeline.SegmentationQuery).
    func runFromBank() throws {
        if targets.contains(where: VolumeQueryOptions.isNIfTIPath) { return try runOnVolumes() }
        for t in targets where !FileManager.default.fileExists(atPath: t) {
            throw SupportSegmenterError("\(t): target image file does not exist")
        }
        let prompt = try parsedPrompt()
        try checkPrompt(prompt)
        let bank = try SupportBank.open(at: resolveBankPath(index!), readOnly: true)
        let names = bank.metadata.labels
        let query: SegmentationQuery
        do {
            query = try SegmentationQuery(
                bankLabels: names, selection: LabelSelection(label), k: k,
                positiveOnly: positiveOnly, prompt: prompt, maskPerLabel: maskPerLabel)
        } catch let error as SegmentationQueryError {
            throw ValidationError(Self.message(error, bank: bank.path))
        }
        if maskPerLabel {
            let files = query.labels.map { Self.fileSafe(names[$0 - 1]) }
            guard Set(files).count == files.count else {
                throw ValidationError(
                    """
                    --mask-per-label: labels \(query.labels.map { names[$0 - 1] }.joined(separator: ", ")) do not give \
                    distinct file names (\(files.joined(separator: ", ")))
                    """
                )
            }
        }
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let loadStart = DispatchTime.now()
        let segmenter = try BankModels.segmenter(for: bank, dinov2: dinov2, sam2: modelPath)
        let loadSeconds = Double(DispatchTime.now().uptimeNanoseconds - loadStart.uptimeNanoseconds) / 1e9
        var lowResolution: [Tensor] = []
        var targetReports: [QueryReport] = []
        for target in targets {
            let image = try SupportSegmenter.readPNG(target, role: "target")
            let result = try query.run(image, name: target, segmenter: segmenter, foreground: UInt8(maskValues))
            var report = result.report
            report.file = target
            let outPath: String
            if let labelMasks = result.labelMasks {
                var perLabelPaths: [String: String] = [:]
                for (l, mask) in zip(result.labels, labelMasks) {
                    let path = (out as NSString).appendingPathComponent(
                        Self.stem(target) + "_" + Self.fileSafe(names[l - 1]) + ".png")
                    try PNG.writeGray8(mask, width: image.width, height: image.height, to: path)
                    perLabelPaths[names[l - 1]] = path
                }
                outPath = result.labels.map { perLabelPaths[names[$0 - 1]]! }.joined(separator: ", ")
                report.masks = perLabelPaths
            } else {
                outPath = (out as NSString).appendingPathComponent(Self.stem(target) + ".png")
                try PNG.writeGray8(result.composedMask!, width: image.width, height: image.height, to: outPath)
                report.mask = outPath
            }
            if overlay {
                let rgb = Overlay.render(
                    image, mask: result.covered, caption: result.retrievedIDs.map { "#\($0)" }.joined(separator: " "))
                try PNG.writeRGB8(
                    rgb, width: image.width, height: image.height,
                    to: (out as NSString).appendingPathComponent(Self.stem(target) + "_overlay.png"))
            }
            lowResolution.append(contentsOf: result.segmentations.map(\.segmentation.lowResolutionLogits))
            targetReports.append(report)
            if !json {
                for (l, r) in zip(result.labels, result.segmentations) {
                    let s = r.segmentation
                    FileHandle.standardError.write(
                        Data(
                            String(
                                format: "segment: %@ [%@] -> %@ (retrieved %@; object score %.3f, IoU %.3f, %.2f s)\n",
                                target, names[l - 1], outPath, r.retrievedSummary,
                                s.objectScore, s.iou[s.chosen], r.timings.last?.seconds ?? 0
                            ).utf8))
                }
            }
        }
        if let logits {
            let side = lowResolution[0].dim(-1)
            let stacked =
                lowResolution.count == 1
                ? lowResolution[0]
                : Tensor(shape: [lowResolution.count, side, side], data: lowResolution.flatMap(\.data))
            try NPY.write(stacked, to: logits)
        }
        if json {
            let report = BankSegmentReport(modelLoadSeconds: loadSeconds, k: k, bank: bank.path, targets: targetReports)
            FileHandle.standardOutput.write(try QueryReport.json(report, pretty: true) + Data("\n".utf8))
        }
    }

    /// A query the bank cannot answer, in this command's terms (its options).
    static func message(_ error: SegmentationQueryError, bank: String) -> String {
        switch error {
        case .unknownLabel(let name, let labels):
            return "bank \(bank) has no label '\(name)' (labels: \(labels.joined(separator: ", ")))"
        case .promptNeedsOneLabel(let labels):
            return
                """
                --point/--box refine one label; bank \(bank) has labels \(labels.joined(separator: ", ")): pick one \
                with --label
                """
        case .labelMapTooSmall(let labelCount):
            return
                """
                bank \(bank) has \(labelCount) labels, more than an 8-bit label map holds \
                (\(MaskComposition.maxLabelInMap)): use --mask-per-label, or pick labels with --label
                """
        }
    }
}

/// `segment --index --json`: the run, then one `QueryReport` per target (in argument order).
struct BankSegmentReport: Encodable {
    var modelLoadSeconds: Double
    var k: Int
    var bank: String
    var targets: [QueryReport]
}

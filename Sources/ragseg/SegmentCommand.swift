// `ragseg segment --sam2 CKPT --support IMG=MASK ... TARGET... --out DIR`: few-shot segmentation with
// supports given by hand. The pipeline lives in SAM2.SupportSegmenter; this file parses arguments,
// checks every input file before the model is loaded (so a typo fails in milliseconds), and writes outputs.
import ArgumentParser
import Dispatch
import Foundation
import RAGSegIO
import SAM2
import TensorCore

struct SegmentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "segment",
        abstract: "Segment target images with SAM 2 conditioned on annotated support images.",
        discussion: """
            Each --support IMG=MASK is a support image and its ground-truth mask, both PNG and of the same \
            size. A mask pixel is foreground when nonzero (0/1 and 0/255 masks both work; RGB masks: any \
            channel; alpha ignored). An all-zero mask is allowed (SAM 2's no-object memory). Supports are \
            frames 0..k-1 in the given order, the first being the most similar; they are encoded once per run.
            For each TARGET, DIR/<target-stem>.png is written at the target's size: 0 = background, \
            foreground = 255 (or 1 with --mask-values 1); foreground is where SAM 2's logit is > 0.
            --logits writes the chosen low-resolution logits (256x256 at image size 1024) as float32 .npy: \
            [256, 256] for one target, [N, 256, 256] for N targets in argument order.
            """)

    @Option(name: .customLong("sam2"), help: "SAM 2 / 2.1 checkpoint (.safetensors, official or Hugging Face keys).")
    var modelPath: String

    @Option(name: .customLong("support"), help: "A support as IMAGE=MASK (repeatable; order = frame order).")
    var supports: [String] = []

    @Argument(help: "Target images (.png).")
    var targets: [String] = []

    @Option(help: "Output directory (created if missing).")
    var out: String

    @Option(help: "Foreground value of the written masks: 255 (0/255) or 1 (0/1).")
    var maskValues: Int = 255

    @Option(help: "Also write the low-resolution logits to this .npy file.")
    var logits: String?

    @Flag(help: "Print per-target scores and stage timings as JSON on stdout.")
    var json = false

    @Option(help: "Model input size (not stored in checkpoints; 1024 for every published SAM 2).")
    var imageSize: Int = 1024

    @Option(help: "Threads for BLAS and the parallel loops (default: all cores).")
    var threads: Int?

    func validate() throws {
        guard !supports.isEmpty else { throw ValidationError("give at least one --support IMAGE=MASK") }
        guard !targets.isEmpty else { throw ValidationError("give at least one target image") }
        guard maskValues == 255 || maskValues == 1 else { throw ValidationError("--mask-values must be 255 or 1, got \(maskValues)") }
        guard imageSize > 0, imageSize % 32 == 0 else { throw ValidationError("--image-size must be a positive multiple of 32, got \(imageSize)") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        for s in supports { _ = try Self.splitSupport(s) }
        var stems: [String: String] = [:]
        for t in targets {
            let stem = Self.stem(t)
            if let other = stems[stem] { throw ValidationError("targets \(other) and \(t) would both be written to \(stem).png") }
            stems[stem] = t
        }
    }

    static func splitSupport(_ s: String) throws -> (image: String, mask: String) {
        // Split at the last '=' so image paths may contain '='.
        guard let eq = s.lastIndex(of: "="), eq != s.startIndex, s.index(after: eq) != s.endIndex else {
            throw ValidationError("--support expects IMAGE=MASK, got '\(s)'")
        }
        return (String(s[..<eq]), String(s[s.index(after: eq)...]))
    }

    static func stem(_ path: String) -> String {
        URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
    }

    func run() throws {
        if let threads { Threads.set(threads) }
        // Check every input before the (slow) model load.
        let inputs = try supports.map { s -> SupportSegmenter.SupportInput in
            let (image, mask) = try Self.splitSupport(s)
            return try SupportSegmenter.loadSupport(imagePath: image, maskPath: mask)
        }
        for t in targets where !FileManager.default.fileExists(atPath: t) {
            throw SupportSegmenterError("\(t): target image file does not exist")
        }
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)

        var clock = DispatchTime.now().uptimeNanoseconds
        func lap() -> Double {
            let now = DispatchTime.now().uptimeNanoseconds
            defer { clock = now }
            return Double(now - clock) / 1e9
        }
        let segmenter = try SupportSegmenter(path: modelPath, imageSize: imageSize)
        let loadSeconds = lap()
        var memories: [SupportMemory] = []
        var supportReports: [[String: Any]] = []
        for input in inputs {
            memories.append(try segmenter.encodeSupport(input))
            supportReports.append(["image": input.imagePath, "mask": input.maskPath, "empty": input.isEmpty, "seconds": lap()])
        }

        var results: [TargetSegmentation] = []
        var targetReports: [[String: Any]] = []
        for target in targets {
            let r = try segmenter.segment(targetPath: target, supports: memories)
            let outPath = (out as NSString).appendingPathComponent(Self.stem(target) + ".png")
            try PNG.writeGray8(r.maskPixels(foreground: UInt8(maskValues)), width: r.width, height: r.height, to: outPath)
            results.append(r)
            let s = r.segmentation
            targetReports.append([
                "file": target, "mask": outPath, "width": r.width, "height": r.height,
                "iou": s.iou.map(Double.init), "chosen": s.chosen, "objectScore": Double(s.objectScore),
                "foregroundPixels": r.foregroundPixels,
                "seconds": ["imageEncode": r.timings.imageEncode, "memoryAttention": r.timings.memoryAttention,
                            "decode": r.timings.decode, "total": r.timings.total],
            ])
            _ = lap()
            if !json {
                FileHandle.standardError.write(Data(String(
                    format: "segment: %@ -> %@ (%d foreground px, object score %.3f, IoU %.3f, %.2f s)\n",
                    target, outPath, r.foregroundPixels, s.objectScore, s.iou[s.chosen], r.timings.total).utf8))
            }
        }
        if let logits {
            try NPY.write(SupportSegmenter.lowResolutionLogits(results), to: logits)
        }
        if json {
            let report: [String: Any] = [
                "modelLoadSeconds": loadSeconds, "imageSize": imageSize, "supports": supportReports, "targets": targetReports,
            ]
            let data = try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys])
            FileHandle.standardOutput.write(data + Data("\n".utf8))
        }
    }
}

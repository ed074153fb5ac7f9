// `ragseg debug …`: dump intermediate tensors as .npy so a run can be compared with the reference
// implementations (tools/README.md shows how).
import ArgumentParser
import Foundation
import RAGSegIO
import SAM2
import TensorCore

struct DebugCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "debug",
        abstract: "Dump intermediate tensors for comparison with the reference implementations.",
        subcommands: [DebugImageFeatures.self])
}

struct DebugImageFeatures: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "image-features",
        abstract: "Run the SAM 2 image encoder on one image and write its outputs as .npy files.",
        discussion: """
            Files written into --out (fp32, [C, H, W]; sizes for 1024x1024):
              feat_s0.npy          conv_s0(FPN level 0), [32, 256, 256]
              feat_s1.npy          conv_s1(FPN level 1), [64, 128, 128]
              vision_features.npy  FPN level 2, [256, 64, 64]
              vision_pos_enc.npy   its sine position encoding, [256, 64, 64]
              input.npy            the normalized input, [3, 1024, 1024]
            With --all also:
              stage0.npy..stage3.npy  Hiera stage outputs
              fpn0.npy, fpn1.npy      FPN levels 0, 1 before conv_s0/conv_s1
            feat_s0/feat_s1 are what the mask decoder consumes.

            IMAGE: a PNG (8/16-bit gray or RGB), squashed to 1024x1024 with
            antialiased bilinear and ImageNet-normalized like the official
            SAM2ImagePredictor; or a .npy holding a normalized [3, H, W] tensor
            (tools/make_sam2_fixtures.py --real writes one as input.npy).
            """)

    @Option(
        name: .customLong("sam2"),
        help: ArgumentHelp(
            "SAM 2 weights: safetensors (official or Hugging Face keys) or the official .pt (size inferred).",
            valueName: "weights"))
    var weights: String

    @Argument(help: "PNG image, or .npy normalized [3, H, W] tensor.")
    var image: String

    @Option(help: ArgumentHelp("Output directory (created if missing).", valueName: "dir"))
    var out: String

    @Option(help: "Threads for BLAS and the tensor core.")
    var threads: Int = 2

    @Flag(help: "Also write the Hiera stage outputs and FPN levels 0 and 1.")
    var all = false

    func run() throws {
        Threads.set(threads)
        let sam2 = try SAM2Weights(path: weights)
        let encoder = try SAM2ImageEncoder(weights: sam2)
        let input: Tensor
        if image.lowercased().hasSuffix(".npy") {
            input = try NPY.read(image)
            guard input.rank == 3, input.dim(0) == 3, input.dim(1) % 32 == 0, input.dim(2) % 32 == 0 else {
                throw RAGSegIOError(
                    path: image,
                    message: "expected a normalized [3, H, W] tensor with H, W multiples of 32, got \(input.shape)")
            }
        } else {
            input = try SAM2Preprocess.imageTensor(path: image, size: encoder.config.imageSize)
        }
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let start = Date()
        let result = all ? encoder.trace(input) : nil
        let features = result?.features ?? encoder.encode(input)
        let seconds = Date().timeIntervalSince(start)
        func write(_ t: Tensor, _ name: String) throws {
            try NPY.write(t, to: (out as NSString).appendingPathComponent(name + ".npy"))
        }
        try write(features.highResolution0, "feat_s0")
        try write(features.highResolution1, "feat_s1")
        try write(features.visionFeatures, "vision_features")
        try write(features.positionEncodings[features.positionEncodings.count - 1], "vision_pos_enc")
        try write(input, "input")
        if let result {
            for (i, s) in result.stages.enumerated() { try write(s, "stage\(i)") }
            try write(result.fpn[0], "fpn0")
            try write(result.fpn[1], "fpn1")
        }
        print(
            """
            SAM 2 \(encoder.config.name) (\(sam2.layout.rawValue) keys): encoded \(input.shape) in \
            \(String(format: "%.2f", seconds)) s -> \(out)
            """
        )
    }
}

import ArgumentParser
import DINOv2
import Dispatch
import Foundation
import RAGSegIO
import TensorCore

/// `ragseg embed`: DINOv2 final-norm CLS embeddings of many images (or all tokens of one) into a .npy file.
struct Embed: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "embed",
        abstract: "DINOv2 embeddings: final-norm CLS rows [N, D], or with --tokens all tokens [T, D] of one image.",
        discussion: """
            Images are PNG (8/16-bit gray or RGB; alpha is dropped), resized to --size with antialiased bicubic \
            and ImageNet-normalized. A .npy input is taken as already-normalized pixels [3, H, W] or \
            [N, 3, H, W] (H, W multiples of 14) and bypasses preprocessing: this is how reference tensors from \
            tools/make_dinov2_fixtures.py --full are compared.
            """)

    @Option(
        name: .customLong("dinov2"),
        help:
            """
            DINOv2 weights: model.safetensors (Hugging Face or torch-hub keys), a torch hub .pth, or its directory; \
            a config.json beside it is used when present.
            """
    )
    var modelPath: String

    @Argument(help: "Images (.png) or normalized pixel tensors (.npy).")
    var images: [String]

    @Option(help: "Output .npy file.")
    var out: String

    @Flag(help: "Write every final-norm token (CLS, registers, patches) of a single image instead of CLS rows.")
    var tokens = false

    @Option(help: "Input size in pixels for PNG images (a multiple of 14).")
    var size = 224

    @Option(help: "Images per forward pass.")
    var batch = 8

    @Flag(
        inversion: .prefixedNo,
        help:
            """
            Run a batch as one image group per thread with single-threaded ops (faster on few cores) rather than \
            splitting every op over the threads.
            """
    )
    var imageParallel = true

    @Option(help: "Threads for BLAS and the parallel loops (default: all cores).")
    var threads: Int?

    @OptionGroup var pixelLimit: PixelLimitOptions

    func validate() throws {
        guard size > 0, size % 14 == 0 else {
            throw ValidationError("--size must be a positive multiple of 14, got \(size)")
        }
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        guard !images.isEmpty else { throw ValidationError("give at least one image") }
    }

    func run() throws {
        if let threads { Threads.set(threads) }
        let model = try DINOv2Model(path: modelPath)
        let start = DispatchTime.now().uptimeNanoseconds
        var rows: [Float] = []
        var rowCount = 0
        var pending: [Tensor] = []  // same-sized [3, H, W] inputs waiting for one forward pass
        var tokenOutput: Tensor?

        func flush() throws {
            guard !pending.isEmpty else { return }
            let x = concatenated(pending.map { $0.reshaped([1] + $0.shape) }, axis: 0)
            pending.removeAll()
            if tokens {
                let all = try model.forward(x)  // a single image: only op-level parallelism applies
                tokenOutput = all.reshaped(Array(all.shape.dropFirst()))
            } else {
                let cls = try model.clsEmbeddings(x, imageParallel: imageParallel)
                rows.append(contentsOf: cls.data)
                rowCount += cls.shape[0]
            }
        }

        var total = 0
        for path in images {
            for image in try load(path) {
                total += 1
                if tokens && total > 1 {
                    throw RAGSegIOError(
                        path: path,
                        message:
                            "--tokens writes the tokens of exactly one image; this input brings the count to \(total)")
                }
                if let first = pending.first, first.shape != image.shape { try flush() }
                pending.append(image)
                if pending.count == batch { try flush() }
            }
        }
        try flush()
        let written: [Int]
        if let tokenOutput {
            try NPY.write(tokenOutput, to: out)
            written = tokenOutput.shape
        } else {
            try NPY.write(Tensor(shape: [rowCount, model.config.hiddenSize], data: rows), to: out)
            written = [rowCount, model.config.hiddenSize]
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let c = model.config
        FileHandle.standardError.write(
            Data(
                String(
                    format: "embed: %d image%@ -> %@ %@ (D %d, %d blocks, %d registers), %.3f s/image\n", total,
                    total == 1 ? "" : "s",
                    out, "\(written)", c.hiddenSize, c.depth, c.registers, seconds / Double(max(total, 1))
                ).utf8))
    }

    /// One input file as [3, H, W] network inputs.
    func load(_ path: String) throws -> [Tensor] {
        if path.lowercased().hasSuffix(".npy") {
            let t = try NPY.read(path)
            guard t.rank == 3 || t.rank == 4, t.dim(-3) == 3 else {
                throw RAGSegIOError(
                    path: path, message: "expected normalized pixels [3, H, W] or [N, 3, H, W], got \(t.shape)")
            }
            let batch = t.rank == 3 ? 1 : t.shape[0]
            let h = t.dim(-2), w = t.dim(-1)
            guard h > 0, w > 0, h % 14 == 0, w % 14 == 0 else {
                throw RAGSegIOError(path: path, message: "pixel size \(h)x\(w) is not a multiple of the patch size 14")
            }
            return (0..<batch).map {
                sliced(t.reshaped([batch, 3, h, w]), axis: 0, range: $0..<($0 + 1)).reshaped([3, h, w])
            }
        }
        return [try DINOv2Preprocessing.pixels(try PNG.read(path), size: size, name: path)]
    }
}

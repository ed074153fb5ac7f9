// The whole few-shot path from files, as `ragseg segment` runs it: support image + GT mask PNGs ->
// SupportMemory (once per support), target PNG -> `SAM2Model` (image encoder, then its target path:
// memory attention over the supports, prompt-free decoding optionally refined by clicks/box) -> mask at
// the target's own size, with the stages timed. Files and timing only: the model math is SAM2Model's.
import Dispatch
import Foundation
import RAGSegIO
import TensorCore

/// A clear error about an input file (names the file or files and the problem).
public struct SupportSegmenterError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Wall-clock seconds of the stages of one target.
public struct SegmentationTimings: Sendable, Equatable {
    /// PNG decode + preprocessing + image encoder.
    public var imageEncode: Double = 0
    /// Memory-bank assembly + memory attention.
    public var memoryAttention: Double = 0
    /// Mask decoding (prompt-free, then the prompted refinement if any), mask selection and the bilinear
    /// resize to the original size.
    public var decode: Double = 0
    public var total: Double { imageEncode + memoryAttention + decode }
    public init() {}
}

/// The result for one target.
public struct TargetSegmentation: Sendable {
    public var segmentation: SAM2Segmentation
    public var height: Int
    public var width: Int
    public var timings: SegmentationTimings
    /// Pixels with logit > 0 (the foreground of the written mask).
    public var foregroundPixels: Int { segmentation.logits.data.reduce(0) { $0 + ($1 > 0 ? 1 : 0) } }

    /// The binary mask, row-major [height * width]: `foreground` where the logit is > 0, else 0.
    public func maskPixels(foreground: UInt8 = 255) -> [UInt8] {
        segmentation.logits.data.map { $0 > 0 ? foreground : 0 }
    }
}

public struct SupportSegmenter: Sendable {
    public let model: SAM2Model
    public var imageSize: Int { model.config.imageSize }

    public init(model: SAM2Model) {
        self.model = model
    }

    /// Opens one SAM 2 checkpoint; see `SAM2Model(checkpoint:imageSize:)`.
    public init(path: String, imageSize: Int? = nil) throws {
        self.init(model: try SAM2Model(checkpoint: path, imageSize: imageSize))
    }

    // MARK: Files

    /// Reads a PNG, turning a missing file into an error that says so.
    public static func readPNG(_ path: String, role: String) throws -> PNGImage {
        guard FileManager.default.fileExists(atPath: path) else {
            throw SupportSegmenterError("\(path): \(role) file does not exist")
        }
        return try PNG.read(path)
    }

    /// A support mask file as {0,1} floats [H, W]: the object is every nonzero value under the one mask
    /// rule (RAGSegIO.MaskReader, one label), the same mask `ragseg index add` reads from the file.
    public static func binaryMask(_ path: String) throws -> Tensor {
        let mask = try MaskReader.read(path, labelCount: 1)
        return Tensor(shape: [mask.height, mask.width], data: mask.labels.map(Float.init))
    }

    /// A support's image and mask, decoded and checked against each other (no model needed).
    public struct SupportInput: Sendable {
        public let imagePath: String
        public let maskPath: String
        public let image: PNGImage
        /// {0,1} at the image's size.
        public let mask: Tensor
        public var isEmpty: Bool { !mask.data.contains { $0 > 0 } }
    }

    /// Decodes a support pair; a mask whose size differs from its image's is an error naming both files.
    public static func loadSupport(imagePath: String, maskPath: String) throws -> SupportInput {
        let image = try readPNG(imagePath, role: "support image")
        let maskPNG = try readPNG(maskPath, role: "support mask")
        guard maskPNG.width == image.width, maskPNG.height == image.height else {
            throw SupportSegmenterError(
                """
                support mask \(maskPath) is \(maskPNG.width)x\(maskPNG.height) but its image \(imagePath) is \
                \(image.width)x\(image.height) (width x height); they must match
                """
            )
        }
        return SupportInput(imagePath: imagePath, maskPath: maskPath, image: image, mask: try binaryMask(maskPath))
    }

    // MARK: Model

    /// Preprocess + image encoder.
    public func features(_ image: PNGImage, name: String) throws -> SAM2FrameFeatures {
        model.encode(try SAM2Preprocess.imageTensor(image, size: imageSize, name: name))
    }

    /// Encodes one support: its image through the encoder, its mask resized to the model size as
    /// `add_new_mask` does (antialiased bilinear, >= 0.5), then the memory encoder and pointer.
    public func encodeSupport(_ input: SupportInput) throws -> SupportMemory {
        let f = try features(input.image, name: input.imagePath)
        return try model.encodeSupport(f, mask: model.resizeMask(input.mask))
    }

    public func encodeSupport(imagePath: String, maskPath: String) throws -> SupportMemory {
        try encodeSupport(Self.loadSupport(imagePath: imagePath, maskPath: maskPath))
    }

    /// Segments one target image given the encoded supports (frame order = array order, most similar first).
    /// A non-empty `prompt` (clicks/box in the image's pixel coordinates) refines the result (Prompt.swift).
    public func segment(_ image: PNGImage, name: String, supports: [SupportMemory], prompt: SAM2Prompt? = nil) throws
        -> TargetSegmentation
    {
        guard !supports.isEmpty else { throw SupportSegmenterError("\(name): at least one support is needed") }
        if let prompt, !prompt.isEmpty {
            do { try prompt.validate(width: image.width, height: image.height) } catch let error as SAM2PromptError {
                throw SupportSegmenterError("\(name): \(error.message)")
            }
        }
        var timings = SegmentationTimings()
        var mark = DispatchTime.now().uptimeNanoseconds
        func lap() -> Double {
            let now = DispatchTime.now().uptimeNanoseconds
            defer { mark = now }
            return Double(now - mark) / 1e9
        }
        let f = try features(image, name: name)
        timings.imageEncode = lap()
        let result = try model.segment(f, supports: supports, outputSize: (image.height, image.width), prompt: prompt) {
            stage in
            if stage == "attend" { timings.memoryAttention = lap() } else { timings.decode = lap() }
        }
        return TargetSegmentation(segmentation: result, height: image.height, width: image.width, timings: timings)
    }

    /// What `--logits` writes: the chosen low-resolution logits, [4g, 4g] for one target and
    /// [N, 4g, 4g] for several (in order).
    public static func lowResolutionLogits(_ results: [TargetSegmentation]) -> Tensor {
        precondition(!results.isEmpty, "lowResolutionLogits: no results")
        if results.count == 1 { return results[0].segmentation.lowResolutionLogits }
        let shape = results[0].segmentation.lowResolutionLogits.shape
        return Tensor(
            shape: [results.count] + shape, data: results.flatMap { $0.segmentation.lowResolutionLogits.data })
    }

    public func segment(targetPath: String, supports: [SupportMemory], prompt: SAM2Prompt? = nil) throws
        -> TargetSegmentation
    {
        let start = DispatchTime.now().uptimeNanoseconds
        let png = try Self.readPNG(targetPath, role: "target image")
        var r = try segment(png, name: targetPath, supports: supports, prompt: prompt)
        // PNG decoding counts as part of the image-encode stage.
        let decodeSeconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 - r.timings.total
        r.timings.imageEncode += max(0, decodeSeconds)
        return r
    }
}

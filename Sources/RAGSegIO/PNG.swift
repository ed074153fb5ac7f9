// PNG reading and writing through libpng (Sources/CPNG keeps libpng's longjmp error handling in C).
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CPNG
import Synchronization
import TensorCore

/// A decoded PNG. Samples are raw (no gamma or color management), row-major and interleaved:
/// pixel (y, x) channel c is `pixels[(y * width + x) * channels + c]`.
public struct PNGImage: Sendable, Equatable {
    public var width: Int
    public var height: Int
    /// 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA. Palettes are expanded to RGB (RGBA if the file has tRNS
    /// transparency); gray with a tRNS color gets an alpha channel.
    public var channels: Int
    /// 8 or 16. Gray images with 1, 2 or 4 bits are expanded to 8 bits by bit replication (1 -> 255).
    public var bitDepth: Int
    public var pixels: [UInt16]

    public init(width: Int, height: Int, channels: Int, bitDepth: Int, pixels: [UInt16]) {
        self.width = width
        self.height = height
        self.channels = channels
        self.bitDepth = bitDepth
        self.pixels = pixels
    }

    /// The largest sample value: 255 or 65535.
    public var maxValue: Float { bitDepth == 16 ? 65535 : 255 }

    /// The image as a [height, width] tensor in [0, 1] (samples divided by 255 or 65535); alpha is
    /// dropped. Gray images give their gray channel; color images are reduced with the ITU-R BT.601
    /// luma weights 0.299 R + 0.587 G + 0.114 B (what Pillow's convert("L") uses, but in float and
    /// without its rounding to integers).
    public func grayscaleFloat() -> Tensor {
        let scale = 1 / maxValue
        let n = width * height
        return Tensor(shape: [height, width]) { out in
            pixels.withUnsafeBufferPointer { p in
                if channels <= 2 {
                    for i in 0..<n { out[i] = Float(p[i * channels]) * scale }
                } else {
                    for i in 0..<n {
                        let r = Float(p[i * channels]), g = Float(p[i * channels + 1]), b = Float(p[i * channels + 2])
                        out[i] = (0.299 * r + 0.587 * g + 0.114 * b) * scale
                    }
                }
            }
        }
    }

    /// The image as a [3, height, width] (channel-first, PyTorch layout) tensor in [0, 1]; gray is
    /// replicated into R, G and B, alpha is dropped.
    public func rgbFloat() -> Tensor {
        let scale = 1 / maxValue
        let n = width * height
        return Tensor(shape: [3, height, width]) { out in
            pixels.withUnsafeBufferPointer { p in
                for i in 0..<n {
                    let base = i * channels
                    for c in 0..<3 {
                        let source = channels <= 2 ? base : base + c
                        out[c * n + i] = Float(p[source]) * scale
                    }
                }
            }
        }
    }
}

public enum PNG {
    /// The largest image (width x height) decoded unless raised: a PNG of a few hundred kilobytes can
    /// declare a 16000x16000 canvas, which decodes to gigabytes. 2^25 pixels is 5792x5792.
    public static let defaultMaxPixels = 1 << 25
    /// The environment variable that sets the limit for a whole process (every command, the server's
    /// decoder included); a command's `--max-pixels` option overrides it.
    public static let maxPixelsVariable = "RAGSEG_MAX_PIXELS"

    private static let maxPixelsOverride = Mutex<Int?>(nil)

    /// Sets the limit for this process (a command's `--max-pixels`); nil returns to the environment
    /// variable or the default.
    public static func setMaxPixels(_ limit: Int?) {
        maxPixelsOverride.withLock { $0 = limit }
    }

    /// The limit `read` applies: `setMaxPixels`, else RAGSEG_MAX_PIXELS, else `defaultMaxPixels`.
    public static func maxPixels() throws -> Int {
        if let limit = maxPixelsOverride.withLock({ $0 }) { return limit }
        guard let text = getenv(maxPixelsVariable).map({ String(cString: $0) }) else { return defaultMaxPixels }
        guard let limit = Int(text), limit > 0 else {
            throw RAGSegIOError(path: maxPixelsVariable, message: "must be a positive number of pixels, got '\(text)'")
        }
        return limit
    }

    /// Reads and decodes a PNG file.
    public static func read(_ path: String) throws -> PNGImage {
        try read(data: try readFileBytes(path), name: path)
    }

    /// Decodes PNG bytes; `name` identifies the source in errors (a path, an upload name). Images over
    /// `maxPixels()` are refused before their pixels are allocated.
    public static func read(data: [UInt8], name: String) throws -> PNGImage {
        try decode(data, name: name, options: 0)
    }

    /// Decodes PNG bytes with `ragseg_png_decode_options` flags (RAGSEG_PNG_KEEP_SAMPLES: palette indices
    /// and unscaled low-depth gray, what MaskReader reads label values from).
    static func decode(_ data: [UInt8], name: String, options: Int32) throws -> PNGImage {
        let limit = try maxPixels()
        var image = ragseg_png_image()
        var message = [CChar](repeating: 0, count: 256)
        let status = data.withUnsafeBufferPointer { bytes in
            message.withUnsafeMutableBufferPointer { text in
                ragseg_png_decode_options(
                    bytes.baseAddress, bytes.count, options, UInt64(limit), &image, text.baseAddress, text.count)
            }
        }
        if status == Int32(RAGSEG_PNG_OVER_PIXEL_LIMIT) {
            let pixels = Int(image.width) * Int(image.height)
            throw RAGSegIOError(
                path: name,
                message:
                    """
                    image is \(image.width)x\(image.height) (\(pixels) pixels), over the limit of \(limit) pixels; \
                    raise it with --max-pixels N or \(maxPixelsVariable)=N
                    """
            )
        }
        guard status == Int32(RAGSEG_PNG_OK), let raw = image.pixels else {
            let reason = message.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            throw RAGSegIOError(
                path: name, message: "cannot decode PNG: \(reason.isEmpty ? "error \(status)" : reason)")
        }
        defer { ragseg_png_free(raw) }
        let width = Int(image.width), height = Int(image.height), channels = Int(image.channels)
        let count = width * height * channels
        let pixels: [UInt16]
        if image.bit_depth == 16 {
            // The shim already swapped the samples to host order.
            pixels = [UInt16](unsafeUninitializedCapacity: count) { out, initialized in
                UnsafeMutableRawPointer(out.baseAddress!).copyMemory(from: raw, byteCount: count * 2)
                initialized = count
            }
        } else {
            pixels = [UInt16](unsafeUninitializedCapacity: count) { out, initialized in
                for i in 0..<count { out[i] = UInt16(raw[i]) }
                initialized = count
            }
        }
        return PNGImage(
            width: width, height: height, channels: channels, bitDepth: Int(image.bit_depth), pixels: pixels)
    }

    /// Writes 8-bit grayscale pixels (row-major, `width * height` bytes) as a PNG file, atomically.
    public static func writeGray8(_ pixels: [UInt8], width: Int, height: Int, to path: String) throws {
        try writeFileAtomically(try encode8(pixels, width: width, height: height, channels: 1, name: path), to: path)
    }

    /// Writes 8-bit RGB pixels (row-major interleaved, `width * height * 3` bytes) as a PNG file, atomically.
    public static func writeRGB8(_ pixels: [UInt8], width: Int, height: Int, to path: String) throws {
        try writeFileAtomically(try encode8(pixels, width: width, height: height, channels: 3, name: path), to: path)
    }

    /// PNG bytes of an 8-bit grayscale image (for sending masks over the network).
    /// The caller guarantees `pixels.count == width * height` and sizes in 1...65535 (programming errors trap).
    public static func encodeGray8(_ pixels: [UInt8], width: Int, height: Int) -> [UInt8] {
        do {
            return try encode8(pixels, width: width, height: height, channels: 1, name: "encodeGray8")
        } catch {
            preconditionFailure("\(error)")
        }
    }

    /// PNG bytes of an 8-bit RGB image; same preconditions as `encodeGray8` with 3 bytes per pixel.
    public static func encodeRGB8(_ pixels: [UInt8], width: Int, height: Int) -> [UInt8] {
        do {
            return try encode8(pixels, width: width, height: height, channels: 3, name: "encodeRGB8")
        } catch {
            preconditionFailure("\(error)")
        }
    }

    static func encode8(_ pixels: [UInt8], width: Int, height: Int, channels: Int, name: String) throws -> [UInt8] {
        let limit = Int(RAGSEG_PNG_MAX_DIMENSION)
        guard (1...limit).contains(width), (1...limit).contains(height) else {
            throw RAGSegIOError(
                path: name, message: "cannot write a \(width)x\(height) PNG (sizes must be 1...\(limit))")
        }
        guard pixels.count == width * height * channels else {
            throw RAGSegIOError(
                path: name,
                message:
                    """
                    \(width)x\(height) with \(channels) channel(s) needs \(width * height * channels) bytes, got \
                    \(pixels.count)
                    """
            )
        }
        var output: UnsafeMutablePointer<UInt8>?
        var size = 0
        var message = [CChar](repeating: 0, count: 256)
        let status = pixels.withUnsafeBufferPointer { p in
            message.withUnsafeMutableBufferPointer { text in
                ragseg_png_encode8(
                    p.baseAddress, UInt32(width), UInt32(height), Int32(channels), &output, &size, text.baseAddress,
                    text.count)
            }
        }
        guard status == Int32(RAGSEG_PNG_OK), let output else {
            let reason = message.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            throw RAGSegIOError(path: name, message: "cannot encode PNG: \(reason)")
        }
        defer { ragseg_png_free(output) }
        return Array(UnsafeBufferPointer(start: output, count: size))
    }
}

// The one rule by which a mask PNG becomes label values, for every path that reads masks: supports given
// by hand (`ragseg segment --support`), bank cases (`ragseg index add`, `POST /cases`) and ground truth
// (`ragseg eval`). The same file gives the same mask whichever path reads it.
import CPNG

/// A mask's label per pixel, at the file's size.
public struct LabelMask: Sendable, Equatable {
    public var width: Int
    public var height: Int
    /// Row-major [height * width]: 0 = background, 1...labelCount = that label.
    public var labels: [UInt16]

    public init(width: Int, height: Int, labels: [UInt16]) {
        self.width = width
        self.height = height
        self.labels = labels
    }

    /// Pixels of `label`, as {0, 1} bytes.
    public func binary(_ label: Int) -> [UInt8] { labels.map { Int($0) == label ? 1 : 0 } }

    /// Labels present, ascending (0 not included).
    public var presentLabels: [Int] { Set(labels.lazy.filter { $0 != 0 }.map(Int.init)).sorted() }
}

/// Reads mask PNGs as label maps. A mask is read from its gray value, sample by sample as stored:
/// - gray, 8 or 16 bits: the value (16-bit values are kept, not scaled); gray under 8 bits: the stored
///   value (a 1-bit mask reads 0/1);
/// - gray + alpha: the gray value (alpha is ignored, as is a tRNS transparency chunk);
/// - RGB / RGBA: only when R = G = B at every pixel, then that value; any other colour is an error naming
///   the file and the first such pixel (a colour mask has no defined label values);
/// - palette: the palette index of the pixel, whatever colour the palette gives it.
///
/// With one label (`labelCount` 1) any nonzero value is the object, so 0/1, 0/255 and 0/65535 masks are
/// the same mask. With several labels the value is the label id; a value above `labelCount` is an error
/// naming the file, the value and the pixel.
public enum MaskReader {
    /// The label map of the mask file at `path` for a bank (or a support) with `labelCount` labels.
    public static func read(_ path: String, labelCount: Int) throws -> LabelMask {
        try read(data: try readFileBytes(path), name: path, labelCount: labelCount)
    }

    /// The label map of mask PNG bytes; `name` identifies the source in errors.
    public static func read(data: [UInt8], name: String, labelCount: Int) throws -> LabelMask {
        precondition(labelCount >= 1, "a mask has at least one label")
        let png = try PNG.decode(data, name: name, options: Int32(RAGSEG_PNG_KEEP_SAMPLES))
        let labelMap = try labels(values(png, name: name), width: png.width, labelCount: labelCount, name: name)
        return LabelMask(width: png.width, height: png.height, labels: labelMap)
    }

    /// The stored value per pixel (see the rule above), before any label check.
    static func values(_ png: PNGImage, name: String) throws -> [UInt16] {
        let n = png.width * png.height, c = png.channels
        var values = [UInt16](repeating: 0, count: n)
        try png.pixels.withUnsafeBufferPointer { p in
            for i in 0..<n {
                let v = p[i * c]
                if c >= 3 && (p[i * c + 1] != v || p[i * c + 2] != v) {
                    throw RAGSegIOError(
                        path: name,
                        message:
                            """
                            mask is a color image (pixel \(i % png.width),\(i / png.width) is RGB \
                            \(v),\(p[i * c + 1]),\(p[i * c + 2]), not gray); masks must be gray label maps
                            """
                    )
                }
                values[i] = v
            }
        }
        return values
    }

    /// One label: nonzero -> 1. Several: the value itself, checked against `labelCount`.
    static func labels(_ values: [UInt16], width: Int, labelCount: Int, name: String) throws -> [UInt16] {
        if labelCount == 1 { return values.map { $0 != 0 ? 1 : 0 } }
        if let i = values.firstIndex(where: { Int($0) > labelCount }) {
            throw RAGSegIOError(
                path: name,
                message:
                    """
                    mask value \(values[i]) at pixel \(i % width),\(i / width) is not a declared label \
                    (0...\(labelCount))
                    """
            )
        }
        return values
    }
}

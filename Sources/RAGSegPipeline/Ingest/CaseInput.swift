// Ingest, up to what the bank stores: the encoder protocols, reading and validating image/mask pairs,
// content hashing, and finding pairs in folders, nnU-Net datasets and CSV lists.
import Foundation
import RAGSegIO
import SAM2
import SupportBank
import TensorCore

/// Turns an image into the retrieval embedding (DINOv2 CLS token).
public protocol RetrievalEncoder {
    var model: ModelIdentity { get }
    var dimension: Int { get }
    /// Settings recorded in new banks (input size, resampling, normalization).
    var preprocessing: [String: String] { get }
    func embed(_ image: PNGImage) throws -> [Float]
}

/// Turns an image and a binary mask (HxW, nonzero = object) into a SAM 2 support memory.
public protocol SupportEncoder {
    var model: ModelIdentity { get }
    var memoryShape: MemoryShape { get }
    var preprocessing: [String: String] { get }
    func encodeSupport(image: PNGImage, mask: [UInt8]) throws -> SupportMemory
}

/// Grayscale [0, 1] plane of an image (alpha dropped, BT.601 luma for color).
func grayPlane(_ image: PNGImage) -> [Float] {
    let n = image.width * image.height
    let c = image.channels
    let scale = 1 / Float(image.bitDepth == 16 ? 65535 : 255)
    var out = [Float](repeating: 0, count: n)
    image.pixels.withUnsafeBufferPointer { p in
        for i in 0..<n {
            if c <= 2 {
                out[i] = Float(p[i * c]) * scale
            } else {
                out[i] = (0.299 * Float(p[i * c]) + 0.587 * Float(p[i * c + 1]) + 0.114 * Float(p[i * c + 2])) * scale
            }
        }
    }
    return out
}

public struct StandInRetrievalEncoder: RetrievalEncoder {
    public let model: ModelIdentity
    public let dimension: Int
    public var preprocessing: [String: String] { ["retrieval": StandIn.preprocessing["retrieval"]!] }

    public init(variant: DINOv2Variant) {
        model = StandIn.retrievalModel(variant)
        dimension = variant.embeddingDimension
    }

    public func embed(_ image: PNGImage) throws -> [Float] {
        StandIn.embed(gray: grayPlane(image), width: image.width, height: image.height, dimension: dimension)
    }
}

public struct StandInSupportEncoder: SupportEncoder {
    public let model: ModelIdentity
    public let memoryShape: MemoryShape
    public var preprocessing: [String: String] { ["support": StandIn.preprocessing["support"]!] }

    public init(variant: SAM2Variant, memoryShape: MemoryShape = .sam2) {
        model = StandIn.supportModel(variant)
        self.memoryShape = memoryShape
    }

    public func encodeSupport(image: PNGImage, mask: [UInt8]) throws -> SupportMemory {
        StandIn.encodeSupport(
            gray: grayPlane(image), mask: mask, width: image.width, height: image.height, shape: memoryShape)
    }
}

/// An image/mask pair to add.
public struct CaseSource: Equatable, Sendable {
    public var image: String
    public var mask: String
    public init(image: String, mask: String) {
        self.image = image
        self.mask = mask
    }
}

/// A decoded, validated pair: the image, the label map and the content hash.
public struct LoadedCase {
    public var source: CaseSource
    public var image: PNGImage
    /// Label per pixel (0 background, 1...L); binary banks map every nonzero pixel to 1.
    public var labelMap: [UInt16]
    /// Labels present, ascending.
    public var labels: [Int]
    public var contentHash: [UInt8]
    /// Labels the bank declares (1...labelCount).
    public var labelCount: Int
    /// Where the case was cut from, for a slice of a volume (nil for a 2-D image).
    public var origin: SliceOrigin? = nil

    /// Some declared label is absent from the mask, so the case gets an empty-mask memory too.
    public var hasAbsentLabel: Bool { labels.count < labelCount }
}

public enum CaseLoader {
    /// Reads image and mask, checks sizes and mask values against the bank's labels.
    public static func load(_ source: CaseSource, labelCount: Int) throws -> LoadedCase {
        let image: PNGImage
        let mask: PNGImage
        do { image = try PNG.read(source.image) } catch {
            throw BankError.input(source.image, "cannot read image: \(error)")
        }
        do { mask = try PNG.read(source.mask) } catch {
            throw BankError.input(source.mask, "cannot read mask: \(error)")
        }
        guard image.width == mask.width, image.height == mask.height else {
            throw BankError.input(
                source.mask,
                "mask is \(mask.width)x\(mask.height) but image \(source.image) is \(image.width)x\(image.height)")
        }
        // The label values by the one mask rule (RAGSegIO.MaskReader); the decoded PNG above is the content identity.
        let maskLabels: LabelMask
        do { maskLabels = try MaskReader.read(source.mask, labelCount: labelCount) } catch let error as RAGSegIOError {
            throw BankError.input(source.mask, error.message)
        }
        return LoadedCase(
            source: source, image: image, labelMap: maskLabels.labels, labels: maskLabels.presentLabels,
            contentHash: contentHash(image: image, mask: mask),
            labelCount: labelCount)
    }

    /// Content identity: decoded pixels and their layout, so re-encoded but identical files match (and a
    /// volume slice matches the same slice exported as 8-bit gray PNGs).
    public static func contentHash(image: PNGImage, mask: PNGImage) -> [UInt8] {
        var hash = SHA256()
        for img in [image, mask] {
            var header = [UInt8]()
            for v in [img.width, img.height, img.channels, img.bitDepth] {
                withUnsafeBytes(of: UInt64(v).littleEndian) { header += $0 }
            }
            hash.update(header)
            img.pixels.withUnsafeBytes { hash.update($0) }
        }
        return hash.finalize()
    }

    /// Runs the encoders: one embedding per case, one memory per present label, and one memory of an
    /// empty mask (label 0) when a declared label is absent: retrieved for that label, it tells SAM 2 that
    /// an image like this one has none of it (the official predictor takes empty masks as conditioning
    /// frames alike).
    public static func prepare(_ loaded: LoadedCase, retrieval: RetrievalEncoder, support: SupportEncoder) throws
        -> PreparedCase
    {
        let embedding = try retrieval.embed(loaded.image)
        var memories = [(label: Int, memory: SupportMemory)]()
        if loaded.hasAbsentLabel {
            let empty = [UInt8](repeating: 0, count: loaded.labelMap.count)
            memories.append((0, try support.encodeSupport(image: loaded.image, mask: empty)))
        }
        for label in loaded.labels {
            let binary = loaded.labelMap.map { Int($0) == label ? UInt8(1) : 0 }
            memories.append((label, try support.encodeSupport(image: loaded.image, mask: binary)))
        }
        var prepared = PreparedCase(
            image: loaded.source.image, mask: loaded.source.mask, contentHash: loaded.contentHash,
            width: loaded.image.width, height: loaded.image.height, embedding: embedding, memories: memories,
            origin: loaded.origin)
        if Precision.current == .bf16 { prepared.precision = Precision.bf16.rawValue }
        return prepared
    }
}

public enum CaseSources {
    static func pngFiles(_ dir: String) throws -> [String: String] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else {
            throw BankError.input(dir, "cannot list directory")
        }
        var byStem = [String: String]()
        for name in names where name.lowercased().hasSuffix(".png") {
            byStem[String(name.dropLast(4))] = (dir as NSString).appendingPathComponent(name)
        }
        return byStem
    }

    /// Pairs images and masks by file stem. An image stem may carry nnU-Net's channel suffix
    /// `_0000`. Unpaired files are an error (listing a few) so nothing is silently skipped.
    public static func pairs(images: String, masks: String) throws -> [CaseSource] {
        let imageFiles = try pngFiles(images)
        let maskFiles = try pngFiles(masks)
        var out = [CaseSource]()
        var unpaired = [String]()
        var usedMasks = Set<String>()
        for (stem, path) in imageFiles.sorted(by: { $0.key < $1.key }) {
            // nnU-Net names channels CASE_0000, CASE_0001, ...: channel 0000 pairs with CASE, the
            // other channels are not used.
            let tail = stem.suffix(5)
            let isChannel = stem.count > 5 && tail.first == "_" && tail.dropFirst().allSatisfy(\.isNumber)
            if isChannel && !stem.hasSuffix("_0000") && maskFiles[stem] == nil { continue }
            let caseStem = isChannel ? String(stem.dropLast(5)) : stem
            if let mask = maskFiles[stem] ?? maskFiles[caseStem] {
                out.append(CaseSource(image: path, mask: mask))
                usedMasks.insert(mask)
            } else {
                unpaired.append(path)
            }
        }
        unpaired += maskFiles.values.filter { !usedMasks.contains($0) }.sorted()
        guard unpaired.isEmpty else {
            throw BankError.input(
                unpaired[0],
                """
                \(unpaired.count) file(s) without a partner (pairs match by file stem), e.g. \
                \(unpaired.prefix(3).joined(separator: ", "))
                """
            )
        }
        guard !out.isEmpty else { throw BankError.input(images, "no PNG image/mask pairs found") }
        return out
    }

    /// An nnU-Net v2 dataset folder: imagesTr/CASE_0000.png + labelsTr/CASE.png, labels from
    /// dataset.json. Only channel 0000 is used.
    public static func nnUNet(_ dataset: String) throws -> [CaseSource] {
        let d = dataset as NSString
        return try pairs(images: d.appendingPathComponent("imagesTr"), masks: d.appendingPathComponent("labelsTr"))
    }

    /// Label names 1...L from an nnU-Net dataset.json: v2 {"labels": {"background": 0, "liver": 1}}
    /// or v1 {"labels": {"0": "background", "1": "liver"}}.
    public static func nnUNetLabels(_ dataset: String) throws -> [String] {
        let file = (dataset as NSString).appendingPathComponent("dataset.json")
        guard let data = FileManager.default.contents(atPath: file) else { throw BankError.input(file, "cannot read") }
        guard let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let labels = json["labels"] as? [String: Any]
        else {
            throw BankError.input(file, "no \"labels\" object")
        }
        var byValue = [Int: String]()
        for (key, value) in labels {
            if let v = value as? Int {
                byValue[v] = key
            }  // v2
            else if let k = Int(key), let name = value as? String {
                byValue[k] = name
            }  // v1
            else if let list = value as? [Int] {  // v2 region-based labels
                throw BankError.input(file, "region-based label \"\(key)\" \(list) is not supported")
            }
        }
        let maxLabel = byValue.keys.max() ?? 0
        guard maxLabel >= 1 else { throw BankError.input(file, "no foreground labels") }
        return try (1...maxLabel).map { v in
            guard let name = byValue[v] else {
                throw BankError.input(file, "label values are not contiguous: \(v) is missing")
            }
            return name
        }
    }

    /// A CSV of `image,mask` lines (optional header `image,mask`); relative paths are relative to
    /// the CSV's folder.
    public static func list(_ csv: String) throws -> [CaseSource] {
        guard let data = FileManager.default.contents(atPath: csv), let text = String(data: data, encoding: .utf8)
        else {
            throw BankError.input(csv, "cannot read")
        }
        let base = (csv as NSString).deletingLastPathComponent
        var out = [CaseSource]()
        for (number, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let fields = line.split(separator: ",", omittingEmptySubsequences: false).map {
                $0.trimmingCharacters(in: .whitespaces)
            }
            if number == 0 && fields.map({ $0.lowercased() }) == ["image", "mask"] { continue }
            guard fields.count == 2, !fields[0].isEmpty, !fields[1].isEmpty else {
                throw BankError.input(csv, "line \(number + 1): expected `image,mask`")
            }
            func resolve(_ p: String) -> String { p.hasPrefix("/") ? p : (base as NSString).appendingPathComponent(p) }
            out.append(CaseSource(image: resolve(fields[0]), mask: resolve(fields[1])))
        }
        guard !out.isEmpty else { throw BankError.input(csv, "no pairs listed") }
        return out
    }
}

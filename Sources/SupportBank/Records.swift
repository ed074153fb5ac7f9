// Value types of the support bank and their byte encodings in LMDB. The memories are SAM 2's own
// `SupportMemory` values, stored as they are.
import Foundation
import RAGSegIO
import SAM2

/// Errors of the support bank. Every message names the file or bank concerned.
public enum BankError: Error, CustomStringConvertible, Sendable {
    /// Bad input file (image, mask, list, weights): path and problem.
    case input(String, String)
    /// Problem with the bank itself: bank path and problem.
    case bank(String, String)

    public var description: String {
        switch self {
        case .input(let path, let message): return "\(path): \(message)"
        case .bank(let path, let message): return "bank \(path): \(message)"
        }
    }
}

/// Which weights produced a bank's vectors: the model, its published variant and the SHA-256 of the
/// weights file. A bank answers only queries embedded by the same weights.
public struct ModelIdentity: Codable, Equatable, Sendable, CustomStringConvertible {
    public var name: String
    public var variant: String
    public var sha256: String
    /// The effective model configuration as canonical JSON (sorted keys), recorded by banks created since
    /// it exists: the same weights under another configuration (e.g. a changed `<weights>.json`) make other
    /// vectors and memories. Nil for stand-ins and in older banks, whose models are compared by weights only.
    public var configuration: String?

    public init(name: String, variant: String, sha256: String, configuration: String? = nil) {
        self.name = name
        self.variant = variant
        self.sha256 = sha256
        self.configuration = configuration
    }

    public var description: String { "\(name) \(variant) (sha256 \(sha256.prefix(16))…)" }
}

/// Shape of the SAM 2 support memory stored per (case, label): a bf16 [channels, height, width]
/// memory feature map and an fp32 object pointer. SAM 2 (hiera, 1024 px input) uses 64x64x64 + 256.
public struct MemoryShape: Codable, Equatable, Sendable, CustomStringConvertible {
    public var channels: Int
    public var height: Int
    public var width: Int
    public var pointerDimension: Int

    public init(channels: Int, height: Int, width: Int, pointerDimension: Int) {
        self.channels = channels
        self.height = height
        self.width = width
        self.pointerDimension = pointerDimension
    }

    public static let sam2 = MemoryShape(channels: 64, height: 64, width: 64, pointerDimension: 256)

    public var memoryCount: Int { channels * height * width }
    public var description: String { "\(channels)x\(height)x\(width) bf16 + \(pointerDimension) fp32" }
}

extension SupportMemory {
    /// The shape the bank records for memories like this one.
    public var shape: MemoryShape {
        MemoryShape(channels: channels, height: height, width: width, pointerDimension: pointer.count)
    }
}

/// The bank-wide facts fixed at creation.
public struct BankMetadata: Codable, Equatable, Sendable {
    /// 2: a case may also store, under label 0, the memory of an empty mask (`CaseRecord.emptyMaskMemory`).
    /// Format-1 banks are read as they are and become format 2 when such a memory is first written to them.
    /// 3: memories stored with a codec other than bf16 (`memoryCodec`); bf16 banks stay format 2.
    public static let currentFormatVersion = 2
    public static let readableFormatVersions = 1...3

    public var formatVersion: Int
    /// Random id: an index file is only accepted by the bank that wrote it.
    public var uuid: String
    public var retrievalModel: ModelIdentity
    public var supportModel: ModelIdentity
    public var embeddingDimension: Int
    public var memoryShape: MemoryShape
    /// Preprocessing settings of the encoders (resize, normalization), recorded for provenance.
    public var preprocessing: [String: String]
    /// Names of labels 1...L (label 0 is background). A single label means a binary bank, where any
    /// nonzero mask pixel is foreground.
    public var labels: [String]
    public var indexKind: IndexKind
    public var created: Double
    /// Absolute paths of the weight files given at creation ("dinov2", "sam2"), so later commands need
    /// not repeat them. Only a convenience: the SHA-256 in the model identities is what is checked.
    /// Absent in stand-in banks.
    public var weightsPaths: [String: String]?
    /// How volumes are cut into slices and windowed for this bank (nil: a bank of 2-D images only, or
    /// one created before volumes existed). Queries on volumes use these settings unless told otherwise.
    public var volumeSettings: VolumeSettings? = nil
    /// UUID of the bank this one was created from with `index create --template` (the template's own template
    /// when it has one): shards of one build share it, which is how `index merge` tells them apart from others.
    public var template: String? = nil
    /// The share of the inputs this bank holds when it was filled by `index add --shard I/N` (nil: not a shard).
    public var shard: ShardAssignment? = nil
    /// How memories are stored (nil: bf16, as in every bank before codecs; see `codec`). A bank with another
    /// codec is format 3, so builds that predate codecs refuse it instead of failing on each memory.
    public var memoryCodec: MemoryCodec? = nil {
        didSet { if codec != .bf16 { formatVersion = max(formatVersion, 3) } }
    }

    public init(
        retrievalModel: ModelIdentity, supportModel: ModelIdentity, embeddingDimension: Int,
        memoryShape: MemoryShape = .sam2, preprocessing: [String: String] = [:],
        labels: [String] = ["foreground"], indexKind: IndexKind = .auto
    ) {
        formatVersion = BankMetadata.currentFormatVersion
        uuid = UUID().uuidString
        self.retrievalModel = retrievalModel
        self.supportModel = supportModel
        self.embeddingDimension = embeddingDimension
        self.memoryShape = memoryShape
        self.preprocessing = preprocessing
        self.labels = labels
        self.indexKind = indexKind
        created = Date().timeIntervalSince1970
    }

    public var isBinary: Bool { labels.count == 1 }
}

/// One support case as recorded in the `cases` database.
public struct CaseRecord: Codable, Equatable, Sendable {
    public var id: UInt64
    public var image: String
    public var mask: String
    /// SHA-256 (hex) of the decoded image and mask pixels: the identity used for de-duplication.
    public var contentHash: String
    public var width: Int
    public var height: Int
    /// Labels present in the mask (1...L), one stored memory each.
    public var labels: [Int]
    /// Seconds since 1970 when the case was committed.
    public var added: Double
    /// True when the case also stores, under label 0, the memory of an empty mask: its support for every
    /// declared label absent from its mask (the memory encoder sees the same all-zero mask for each of them,
    /// so one memory serves them all). It lets a target that looks like this case come out empty. Absent
    /// (nil) in format-1 records and in cases that contain every label.
    public var emptyMaskMemory: Bool? = nil
    /// Where the case was cut from when it is a slice of a volume (nil for a 2-D image case).
    public var origin: SliceOrigin? = nil
    /// "bf16" when the case's memories were computed with `--precision bf16` (nil: fp32).
    public var precision: String? = nil

    /// The memory slot that supports `label` for this case: the label's own memory, the empty-mask
    /// memory (0) where the label is absent, or nil where the case stores nothing for it.
    public func memorySlot(for label: Int) -> Int? {
        if labels.contains(label) { return label }
        return emptyMaskMemory == true ? 0 : nil
    }

    /// Every memory key label this case stores, ascending (0 first when it has an empty-mask memory).
    public var storedMemoryLabels: [Int] { (emptyMaskMemory == true ? [0] : []) + labels }
}

/// The volume a slice case was cut from, and where in it. Every slice of one volume shares `volume` and
/// `volumeHash`: leave-one-out evaluation excludes all of them, re-adding the volume is a no-op, and
/// removing by volume removes them together.
public struct SliceOrigin: Codable, Equatable, Sendable {
    /// The image volume's path as given when it was added.
    public var volume: String
    /// SHA-256 (hex) of the image volume's file bytes: the volume's identity.
    public var volumeHash: String
    /// Slice index along `axis`, counted in the canonical (RAS+) voxel order (`VolumeSlices`).
    public var slice: Int
    /// "axial", "coronal" or "sagittal".
    public var axis: String
    /// Millimetres: column spacing, row spacing, slice spacing (canonical order, as the slice is shown).
    public var spacing: [Double]

    public init(volume: String, volumeHash: String, slice: Int, axis: String, spacing: [Double]) {
        self.volume = volume
        self.volumeHash = volumeHash
        self.slice = slice
        self.axis = axis
        self.spacing = spacing
    }
}

/// A case ready to store: everything the encoders computed, no pixels.
public struct PreparedCase: Sendable {
    public var image: String
    public var mask: String
    public var contentHash: [UInt8]
    public var width: Int
    public var height: Int
    public var embedding: [Float]
    /// One memory per label present in the mask, ascending label order; label 0 (first) is the memory of
    /// an empty mask, stored when some declared label is absent from the mask.
    public var memories: [(label: Int, memory: SupportMemory)]
    /// Where the case was cut from, for a slice of a volume.
    public var origin: SliceOrigin?
    /// "bf16" when the encoders ran with bf16 products (nil: fp32); stored in the case's record.
    public var precision: String? = nil

    public init(
        image: String, mask: String, contentHash: [UInt8], width: Int, height: Int,
        embedding: [Float], memories: [(label: Int, memory: SupportMemory)], origin: SliceOrigin? = nil
    ) {
        self.image = image
        self.mask = mask
        self.contentHash = contentHash
        self.width = width
        self.height = height
        self.embedding = embedding
        self.memories = memories
        self.origin = origin
    }
}

/// Result of adding one case.
public enum AddOutcome: Equatable, Sendable {
    case added(UInt64)
    /// The same image+mask content is already in the bank under this id: nothing was written.
    case duplicate(of: UInt64)

    public var id: UInt64 {
        switch self {
        case .added(let id), .duplicate(let id): return id
        }
    }
}

/// One search result.
public struct SearchHit: Sendable {
    public var id: UInt64
    /// Cosine similarity (inner product of L2-normalized embeddings).
    public var score: Float
    public var record: CaseRecord
}

// MARK: - Byte encodings

extension JSONEncoder {
    /// Deterministic JSON (sorted keys) for stored records.
    static var sorted: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return e
    }
}

/// A decoded record or what is wrong with it.
enum Decoded<T> {
    case ok(T)
    case bad(String)
}

enum Codec {
    static func key(_ id: UInt64) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: id >> (56 - 8 * UInt64($0))) }
    }

    static func id(fromKey bytes: UnsafeRawBufferPointer) -> UInt64 {
        var v: UInt64 = 0
        for i in 0..<min(8, bytes.count) { v = v << 8 | UInt64(bytes[i]) }
        return v
    }

    static func memoryKey(_ id: UInt64, label: Int) -> [UInt8] {
        key(id) + [UInt8(truncatingIfNeeded: label >> 8), UInt8(truncatingIfNeeded: label)]
    }

    static func u64(_ bytes: [UInt8]?) -> UInt64 {
        guard let bytes else { return 0 }
        return bytes.withUnsafeBytes { id(fromKey: $0) }
    }

    // Embedding value: dimension fp32 (little-endian) then CRC-32 of those bytes.
    static func encodeEmbedding(_ v: [Float]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: v.count * 4 + 4)
        out.withUnsafeMutableBytes { raw in
            v.withUnsafeBytes { raw.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            let crc = CRC32.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<(v.count * 4)]))
            raw.storeBytes(of: crc.littleEndian, toByteOffset: v.count * 4, as: UInt32.self)
        }
        return out
    }

    /// Decodes an embedding; nil when the length or checksum is wrong.
    static func decodeEmbedding(_ raw: UnsafeRawBufferPointer, dimension: Int) -> [Float]? {
        guard raw.count == dimension * 4 + 4 else { return nil }
        let payload = UnsafeRawBufferPointer(rebasing: raw[0..<(dimension * 4)])
        let stored = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: dimension * 4, as: UInt32.self))
        guard CRC32.checksum(payload) == stored else { return nil }
        return [Float](unsafeUninitializedCapacity: dimension) { buffer, count in
            UnsafeMutableRawPointer(buffer.baseAddress!).copyMemory(
                from: payload.baseAddress!, byteCount: dimension * 4)
            count = dimension
        }
    }

    // Memory value: 24-byte header ("RSGM", u16 version, u16 label, u16 C, u16 H, u16 W, u16 0,
    // u32 pointer dimension, u32 CRC-32 of the payload), then the memory in the bank's codec, then fp32 pointer.
    static let memoryHeaderSize = 24

    // The version field says how the memory values are encoded (MemoryCodec.recordVersion): 1 bf16, 2 int8,
    // 3 bf16-zstd; the bank's codec fixes it for all its records.
    static func encodeMemory(_ m: SupportMemory, label: Int, shape: MemoryShape, codec: MemoryCodec = .bf16) -> [UInt8]
    {
        let payload = codec.encode(m.memoryBits, channels: shape.channels)
        let memoryBytes = payload.count
        let pointerBytes = m.pointer.count * 4
        var out = [UInt8](repeating: 0, count: memoryHeaderSize + memoryBytes + pointerBytes)
        out.withUnsafeMutableBytes { raw in
            let base = raw.baseAddress!
            raw.copyBytes(from: Array("RSGM".utf8))
            raw.storeBytes(of: UInt16(codec.recordVersion).littleEndian, toByteOffset: 4, as: UInt16.self)
            raw.storeBytes(of: UInt16(label).littleEndian, toByteOffset: 6, as: UInt16.self)
            raw.storeBytes(of: UInt16(shape.channels).littleEndian, toByteOffset: 8, as: UInt16.self)
            raw.storeBytes(of: UInt16(shape.height).littleEndian, toByteOffset: 10, as: UInt16.self)
            raw.storeBytes(of: UInt16(shape.width).littleEndian, toByteOffset: 12, as: UInt16.self)
            raw.storeBytes(of: UInt32(shape.pointerDimension).littleEndian, toByteOffset: 16, as: UInt32.self)
            payload.withUnsafeBytes {
                (base + memoryHeaderSize).copyMemory(from: $0.baseAddress!, byteCount: memoryBytes)
            }
            m.pointer.withUnsafeBytes {
                (base + memoryHeaderSize + memoryBytes).copyMemory(from: $0.baseAddress!, byteCount: pointerBytes)
            }
            let crc = CRC32.checksum(UnsafeRawBufferPointer(rebasing: raw[memoryHeaderSize...]))
            raw.storeBytes(of: crc.littleEndian, toByteOffset: 20, as: UInt32.self)
        }
        return out
    }

    /// Decodes a memory value, checking header, shape and checksum; the error says what is wrong.
    static func decodeMemory(
        _ raw: UnsafeRawBufferPointer, label: Int, shape: MemoryShape, codec: MemoryCodec = .bf16,
        verifyChecksum: Bool = true
    ) -> Decoded<SupportMemory> {
        let memoryBytes = raw.count - memoryHeaderSize - shape.pointerDimension * 4
        let pointerBytes = shape.pointerDimension * 4
        // The header is read first (when there is one) so a record of another codec is named as such.
        func u16(_ o: Int) -> Int { Int(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt16.self))) }
        if raw.count >= memoryHeaderSize, Array(raw[0..<4]) == Array("RSGM".utf8), u16(4) != codec.recordVersion {
            guard let other = MemoryCodec(recordVersion: u16(4)) else {
                return .bad("memory record version \(u16(4)) unsupported")
            }
            return .bad("memory record is encoded \(other), the bank stores \(codec)")
        }
        let allowed = codec.payloadBytes(shape)
        guard allowed.contains(memoryBytes) else {
            let low = memoryHeaderSize + allowed.lowerBound + pointerBytes
            let high = memoryHeaderSize + allowed.upperBound + pointerBytes
            return .bad("memory record has \(raw.count) bytes, expected \(low == high ? "\(low)" : "\(low)...\(high)")")
        }
        guard Array(raw[0..<4]) == Array("RSGM".utf8) else { return .bad("memory record has a bad magic") }
        guard u16(6) == label else { return .bad("memory record is labelled \(u16(6)), key says \(label)") }
        let pointer = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 16, as: UInt32.self)))
        guard u16(8) == shape.channels, u16(10) == shape.height, u16(12) == shape.width,
            pointer == shape.pointerDimension
        else {
            return .bad("memory shape \(u16(8))x\(u16(10))x\(u16(12))+\(pointer) differs from the bank's \(shape)")
        }
        let payload = UnsafeRawBufferPointer(rebasing: raw[memoryHeaderSize...])
        if verifyChecksum {
            let stored = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 20, as: UInt32.self))
            guard CRC32.checksum(payload) == stored else { return .bad("memory record checksum mismatch") }
        }
        guard let memory = codec.decode(UnsafeRawBufferPointer(rebasing: payload[0..<memoryBytes]), shape: shape) else {
            return .bad("memory record's \(codec) payload does not decode to \(shape.memoryCount) values")
        }
        let objectPointer = [Float](unsafeUninitializedCapacity: shape.pointerDimension) { b, n in
            UnsafeMutableRawPointer(b.baseAddress!).copyMemory(
                from: payload.baseAddress! + memoryBytes, byteCount: pointerBytes)
            n = shape.pointerDimension
        }
        // Label 0 is the case's empty-mask memory; the record keeps no other trace of the flag.
        return .ok(
            SupportMemory(
                channels: shape.channels, height: shape.height, width: shape.width,
                memoryBits: memory, pointer: objectPointer, isEmpty: label == 0))
    }

    // Journal value: op (1 add, 2 remove) then the id (big-endian).
    static let journalAdd: UInt8 = 1
    static let journalRemove: UInt8 = 2

    static func journalEntry(_ op: UInt8, _ id: UInt64) -> [UInt8] { [op] + key(id) }
}

// How a bank stores the C x H x W memory of each (case, label): bf16 as computed (default), int8 per channel
// (opt-in, `index create --memory-codec int8`: half the bytes, decoded back to bf16 before attention), or
// bf16-zstd (opt-in, lossless: byte-split bf16 in a zstd frame).
// See README.md in this directory ("Memory codecs").
import CZstd
import Foundation
import SAM2
import TensorCore

/// The bank-wide memory encoding, fixed at creation.
public enum MemoryCodec: String, Codable, Sendable, CaseIterable, CustomStringConvertible {
    /// The memory's bf16 values as computed: 2 bytes per value, lossless.
    case bf16
    /// Per channel (H x W values) a symmetric fp32 scale `max|x| / 127` and one int8 per value,
    /// `round(x / scale)`: 1 byte per value plus 4 per channel. Decoded to `q * scale` rounded to bf16.
    case int8
    /// The bf16 values losslessly packed: the high bytes (sign and 7 exponent bits: few distinct values) of all
    /// values, then their low bytes, as one zstd frame (level 3). Variable length.
    case bf16Zstd = "bf16-zstd"

    public var description: String { rawValue }

    /// zstd's level for bf16-zstd: level 19 packs ~10 % more but encodes ~50x slower (README "Memory codecs").
    static let zstdLevel: Int32 = 3

    /// The memory record's version field (bytes 4-5 of its header): 1 is bf16, the only encoding before codecs,
    /// so the records of older banks read unchanged.
    var recordVersion: Int {
        switch self {
        case .bf16: return 1
        case .int8: return 2
        case .bf16Zstd: return 3
        }
    }

    init?(recordVersion: Int) {
        guard let codec = MemoryCodec.allCases.first(where: { $0.recordVersion == recordVersion }) else { return nil }
        self = codec
    }

    /// Bytes the encoded memory values (the record's payload before the fp32 object pointer) may take.
    func payloadBytes(_ shape: MemoryShape) -> ClosedRange<Int> {
        switch self {
        case .bf16: return (shape.memoryCount * 2)...(shape.memoryCount * 2)
        case .int8: return (shape.channels * 4 + shape.memoryCount)...(shape.channels * 4 + shape.memoryCount)
        case .bf16Zstd: return 1...ZSTD_compressBound(shape.memoryCount * 2)
        }
    }

    /// Bytes of a whole memory record (header, payload, pointer), at most: what a case's memory costs in LMDB
    /// before LMDB's page rounding (bf16-zstd records are usually much smaller than this bound).
    public func recordBytes(_ shape: MemoryShape) -> Int {
        Codec.memoryHeaderSize + payloadBytes(shape).upperBound + shape.pointerDimension * 4
    }

    /// Why this codec cannot store `memory` (nil: it can). int8 needs finite values to scale.
    func problem(with memory: SupportMemory) -> String? {
        guard self == .int8 else { return nil }
        for bits in memory.memoryBits where !float(fromBFloat16: bits).isFinite {
            return "has non-finite values, which the bank's int8 memory codec cannot store"
        }
        return nil
    }

    /// The encoded values of `bits` (C x H x W bf16, channel-major).
    func encode(_ bits: [UInt16], channels: Int) -> [UInt8] {
        switch self {
        case .bf16:
            return bits.withUnsafeBytes { Array($0) }
        case .int8:
            let plane = bits.count / channels
            var out = [UInt8](repeating: 0, count: channels * 4 + bits.count)
            out.withUnsafeMutableBytes { out in
                for c in 0..<channels {
                    var maxAbs: Float = 0
                    for i in (c * plane)..<((c + 1) * plane) { maxAbs = max(maxAbs, abs(float(fromBFloat16: bits[i]))) }
                    let scale = maxAbs / 127
                    out.storeBytes(of: scale.bitPattern.littleEndian, toByteOffset: c * 4, as: UInt32.self)
                    // A zero channel has scale 0 and stores zeros (no division by zero).
                    let inverse: Float = maxAbs > 0 ? 127 / maxAbs : 0
                    for i in (c * plane)..<((c + 1) * plane) {
                        let q = min(127, max(-127, (float(fromBFloat16: bits[i]) * inverse).rounded()))
                        out.storeBytes(of: Int8(q), toByteOffset: channels * 4 + i, as: Int8.self)
                    }
                }
            }
            return out
        case .bf16Zstd:
            let n = bits.count
            var split = [UInt8](repeating: 0, count: 2 * n)
            for i in 0..<n {
                split[i] = UInt8(truncatingIfNeeded: bits[i] >> 8)
                split[n + i] = UInt8(truncatingIfNeeded: bits[i])
            }
            var out = [UInt8](repeating: 0, count: ZSTD_compressBound(2 * n))
            let size = out.withUnsafeMutableBytes { dst in
                split.withUnsafeBytes {
                    ZSTD_compress(dst.baseAddress, dst.count, $0.baseAddress, $0.count, Self.zstdLevel)
                }
            }
            // Compressing into a buffer of compressBound bytes cannot fail but for memory exhaustion.
            precondition(ZSTD_isError(size) == 0, "zstd: \(String(cString: ZSTD_getErrorName(size)))")
            return Array(out[0..<size])
        }
    }

    /// The bf16 bits of a payload written by `encode` (its length in `payloadBytes`, checked by the caller);
    /// nil when a bf16-zstd frame does not decompress to exactly the shape's values.
    func decode(_ payload: UnsafeRawBufferPointer, shape: MemoryShape) -> [UInt16]? {
        let count = shape.memoryCount
        switch self {
        case .bf16:
            return [UInt16](unsafeUninitializedCapacity: count) { b, n in
                UnsafeMutableRawPointer(b.baseAddress!).copyMemory(from: payload.baseAddress!, byteCount: count * 2)
                n = count
            }
        case .int8:
            let channels = shape.channels, plane = count / channels
            return [UInt16](unsafeUninitializedCapacity: count) { b, n in
                for c in 0..<channels {
                    let scale = Float(
                        bitPattern: UInt32(littleEndian: payload.loadUnaligned(fromByteOffset: c * 4, as: UInt32.self)))
                    for i in (c * plane)..<((c + 1) * plane) {
                        let q = payload.load(fromByteOffset: channels * 4 + i, as: Int8.self)
                        b[i] = bfloat16Bits(Float(q) * scale)
                    }
                }
                n = count
            }
        case .bf16Zstd:
            // The frame's declared size is checked against the shape before anything is allocated for it.
            guard ZSTD_getFrameContentSize(payload.baseAddress, payload.count) == UInt64(2 * count) else { return nil }
            var split = [UInt8](repeating: 0, count: 2 * count)
            let size = split.withUnsafeMutableBytes {
                ZSTD_decompress($0.baseAddress, $0.count, payload.baseAddress, payload.count)
            }
            guard ZSTD_isError(size) == 0, size == 2 * count else { return nil }
            return [UInt16](unsafeUninitializedCapacity: count) { b, n in
                for i in 0..<count { b[i] = UInt16(split[i]) << 8 | UInt16(split[count + i]) }
                n = count
            }
        }
    }
}

extension MemoryCodec {
    /// `memory` as a bank with this codec stores and returns it (encoded, then decoded): for measuring what the
    /// codec changes (`ragseg-bench accuracy --memory-codec`).
    public func roundTrip(_ memory: SupportMemory) -> SupportMemory {
        let shape = memory.shape
        let payload = encode(memory.memoryBits, channels: shape.channels)
        return SupportMemory(
            channels: shape.channels, height: shape.height, width: shape.width,
            memoryBits: payload.withUnsafeBytes { decode($0, shape: shape)! }, pointer: memory.pointer,
            isEmpty: memory.isEmpty)
    }

    /// Bytes of `memory`'s values in this codec (the record adds a 24-byte header and the fp32 pointer), and the
    /// seconds one decode of them takes: for measuring codecs on real memories.
    public func measure(_ memory: SupportMemory) -> (bytes: Int, decodeSeconds: Double) {
        let payload = encode(memory.memoryBits, channels: memory.channels)
        let start = DispatchTime.now().uptimeNanoseconds
        _ = payload.withUnsafeBytes { decode($0, shape: memory.shape) }
        return (payload.count, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
}

extension BankMetadata {
    /// The codec of this bank's memories (bf16 where the metadata predates codecs).
    public var codec: MemoryCodec { memoryCodec ?? .bf16 }
}

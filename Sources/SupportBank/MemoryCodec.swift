// How a bank stores the C x H x W memory of each (case, label): bf16 as computed (default), or int8 per channel
// (opt-in, `index create --memory-codec int8`: half the bytes, decoded back to bf16 before attention).
// See README.md in this directory ("Memory codecs").
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

    public var description: String { rawValue }

    /// The memory record's version field (bytes 4-5 of its header): 1 is bf16, the only encoding before codecs,
    /// so the records of older banks read unchanged.
    var recordVersion: Int {
        switch self {
        case .bf16: return 1
        case .int8: return 2
        }
    }

    init?(recordVersion: Int) {
        guard let codec = MemoryCodec.allCases.first(where: { $0.recordVersion == recordVersion }) else { return nil }
        self = codec
    }

    /// Bytes of the encoded memory values (the record's payload before the fp32 object pointer).
    func payloadBytes(_ shape: MemoryShape) -> Int {
        switch self {
        case .bf16: return shape.memoryCount * 2
        case .int8: return shape.channels * 4 + shape.memoryCount
        }
    }

    /// Bytes of a whole memory record (header, payload, pointer): what a case's memory costs in LMDB, before
    /// LMDB's page rounding.
    public func recordBytes(_ shape: MemoryShape) -> Int {
        Codec.memoryHeaderSize + payloadBytes(shape) + shape.pointerDimension * 4
    }

    /// Why this codec cannot store `memory` (nil: it can). int8 needs finite values to scale.
    func problem(with memory: SupportMemory) -> String? {
        guard self == .int8 else { return nil }
        for bits in memory.memoryBits where !float(fromBFloat16: bits).isFinite {
            return "has non-finite values, which the bank's int8 memory codec cannot store"
        }
        return nil
    }

    /// Writes the encoded values of `bits` (C x H x W bf16, channel-major) to `out` (`payloadBytes` long).
    func encode(_ bits: [UInt16], channels: Int, into out: UnsafeMutableRawBufferPointer) {
        switch self {
        case .bf16:
            bits.withUnsafeBytes { out.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        case .int8:
            let plane = bits.count / channels
            let values = out.baseAddress! + channels * 4
            bits.withUnsafeBufferPointer { b in
                for c in 0..<channels {
                    var maxAbs: Float = 0
                    for i in (c * plane)..<((c + 1) * plane) { maxAbs = max(maxAbs, abs(float(fromBFloat16: b[i]))) }
                    let scale = maxAbs / 127
                    out.storeBytes(of: scale.bitPattern.littleEndian, toByteOffset: c * 4, as: UInt32.self)
                    // A zero channel has scale 0 and stores zeros (no division by zero).
                    let inverse: Float = maxAbs > 0 ? 127 / maxAbs : 0
                    for i in (c * plane)..<((c + 1) * plane) {
                        let q = min(127, max(-127, (float(fromBFloat16: b[i]) * inverse).rounded()))
                        values.storeBytes(of: Int8(q), toByteOffset: i, as: Int8.self)
                    }
                }
            }
        }
    }

    /// The bf16 bits of a payload written by `encode` (`payloadBytes` long, checked by the caller).
    func decode(_ payload: UnsafeRawBufferPointer, shape: MemoryShape) -> [UInt16] {
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
        }
    }
}

extension BankMetadata {
    /// The codec of this bank's memories (bf16 where the metadata predates codecs).
    public var codec: MemoryCodec { memoryCodec ?? .bf16 }
}

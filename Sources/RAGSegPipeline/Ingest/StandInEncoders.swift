// Deterministic stand-ins for the DINOv2 and SAM 2 encoders, so the bank can be built and tested
// before the real models land. Their outputs have the right shapes and are stable functions of the
// pixels, but they carry NO medical meaning: retrieval by them is only "looks alike at 16x16".
import Foundation
import SAM2
import SupportBank
import TensorCore

/// Published DINOv2 variants and their CLS embedding width.
public enum DINOv2Variant: String, CaseIterable, Sendable {
    case vits14, vitb14, vitl14, vitg14
    public var embeddingDimension: Int {
        switch self {
        case .vits14: return 384
        case .vitb14: return 768
        case .vitl14: return 1024
        case .vitg14: return 1536
        }
    }
}

/// Published SAM 2.1 variants (all give 64x64x64 memories and 256-d object pointers at 1024 px).
public enum SAM2Variant: String, CaseIterable, Sendable {
    case tiny, small, base_plus, large
}

public enum StandIn {
    /// Identity recorded in banks built by the stand-in retrieval encoder.
    public static func retrievalModel(_ variant: DINOv2Variant) -> ModelIdentity {
        ModelIdentity(
            name: "stand-in-dinov2", variant: variant.rawValue,
            sha256: hexString(SHA256.hash(Array("ragseg stand-in retrieval v1 \(variant.rawValue)".utf8))))
    }

    public static func supportModel(_ variant: SAM2Variant) -> ModelIdentity {
        ModelIdentity(
            name: "stand-in-sam2", variant: variant.rawValue,
            sha256: hexString(SHA256.hash(Array("ragseg stand-in support v1 \(variant.rawValue)".utf8))))
    }

    public static let preprocessing = [
        "retrieval": "stand-in: grayscale, 16x16 area average, fixed Gaussian projection, L2 normalized",
        "support": "stand-in: per-cell mask fraction and image mean modulated per channel, bf16",
    ]

    static let grid = 16

    /// 16x16 area averages of a [height, width] plane.
    static func areaAverage(_ plane: [Float], width: Int, height: Int, grid: Int) -> [Float] {
        var sums = [Float](repeating: 0, count: grid * grid)
        var counts = [Float](repeating: 0, count: grid * grid)
        for y in 0..<height {
            let gy = y * grid / height
            for x in 0..<width {
                let cell = gy * grid + x * grid / width
                sums[cell] += plane[y * width + x]
                counts[cell] += 1
            }
        }
        return zip(sums, counts).map { $1 > 0 ? $0 / $1 : 0 }
    }

    /// A fixed Gaussian matrix [rows, columns] from a seed (SplitMix64 + Box-Muller).
    static func projection(rows: Int, columns: Int, seed: UInt64) -> [Float] {
        var state = seed
        func next() -> Double {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return Double((z ^ (z >> 31)) >> 11) / Double(1 << 53)
        }
        return (0..<(rows * columns)).map { _ in
            Float((-2 * log(max(next(), 1e-300))).squareRoot() * cos(2 * .pi * next()))
        }
    }

    /// Stand-in "CLS embedding" of a grayscale image in [0, 1]: L2-normalized projection of its
    /// centred 16x16 thumbnail.
    public static func embed(gray: [Float], width: Int, height: Int, dimension: Int) -> [Float] {
        var thumb = areaAverage(gray, width: width, height: height, grid: grid)
        let mean = thumb.reduce(0, +) / Float(thumb.count)
        for i in thumb.indices { thumb[i] -= mean }
        thumb.append(mean)  // keeps flat images distinguishable (and nonzero)
        let p = projection(rows: dimension, columns: thumb.count, seed: 0x5EED_D1)
        var out = [Float](repeating: 0, count: dimension)
        for r in 0..<dimension {
            var acc: Float = 0
            for c in 0..<thumb.count { acc += p[r * thumb.count + c] * thumb[c] }
            out[r] = acc
        }
        let norm = out.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return norm > 0
            ? out.map { $0 / norm } : [Float](repeating: 1 / Float(dimension).squareRoot(), count: dimension)
    }

    /// Stand-in support memory of an image in [0, 1] and a binary mask: each memory cell mixes the
    /// mask fraction and image mean of its region, modulated per channel; bf16 like SAM 2's.
    public static func encodeSupport(gray: [Float], mask: [UInt8], width: Int, height: Int, shape: MemoryShape)
        -> SupportMemory
    {
        let maskPlane = mask.map { $0 != 0 ? Float(1) : 0 }
        let h = shape.height, w = shape.width
        var maskCells = [Float](repeating: 0, count: h * w)
        var imageCells = [Float](repeating: 0, count: h * w)
        var counts = [Float](repeating: 0, count: h * w)
        for y in 0..<height {
            let gy = y * h / height
            for x in 0..<width {
                let cell = gy * w + x * w / width
                maskCells[cell] += maskPlane[y * width + x]
                imageCells[cell] += gray[y * width + x]
                counts[cell] += 1
            }
        }
        var memory = [UInt16](repeating: 0, count: shape.memoryCount)
        for c in 0..<shape.channels {
            let phase = Float(c) * 0.37
            for cell in 0..<(h * w) {
                let n = max(counts[cell], 1)
                let value = sin(phase + 3 * imageCells[cell] / n) * (0.5 + maskCells[cell] / n)
                memory[c * h * w + cell] = bfloat16Bits(value)
            }
        }
        let area = maskPlane.reduce(0, +) / Float(max(maskPlane.count, 1))
        let meanInside = zip(gray, maskPlane).reduce(Float(0)) { $0 + $1.0 * $1.1 } / max(maskPlane.reduce(0, +), 1)
        let p = projection(rows: shape.pointerDimension, columns: 2, seed: 0x5EED_D2)
        let pointer = (0..<shape.pointerDimension).map { p[2 * $0] * area + p[2 * $0 + 1] * meanInside }
        return SupportMemory(
            channels: shape.channels, height: h, width: w, memoryBits: memory, pointer: pointer,
            isEmpty: !mask.contains { $0 != 0 })
    }
}

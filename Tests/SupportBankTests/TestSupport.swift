import Foundation
import XCTest
import SAM2
@testable import SupportBank

/// SplitMix64: a deterministic generator so every test run sees the same data.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func gaussian() -> Float {
        let u1 = Double.random(in: Double.ulpOfOne..<1, using: &self)
        let u2 = Double.random(in: 0..<1, using: &self)
        return Float((-2 * log(u1)).squareRoot() * cos(2 * .pi * u2))
    }
}

let tinyShape = MemoryShape(channels: 4, height: 4, width: 4, pointerDimension: 8)
let testRetrieval = ModelIdentity(name: "test-retrieval", variant: "t", sha256: String(repeating: "a", count: 64))
let testSupport = ModelIdentity(name: "test-support", variant: "t", sha256: String(repeating: "b", count: 64))

func temporaryDirectory(_ name: String = #function) -> String {
    let base = FileManager.default.temporaryDirectory.appendingPathComponent("ragseg-bank-tests-\(getpid())")
    let safe = name.filter { $0.isLetter || $0.isNumber }
    let dir = base.appendingPathComponent("\(safe)-\(UUID().uuidString.prefix(8))").path
    try? FileManager.default.createDirectory(atPath: base.path, withIntermediateDirectories: true)
    return dir
}

func makeMetadata(
    dimension: Int, kind: IndexKind = .flat, labels: [String] = ["foreground"],
    shape: MemoryShape = tinyShape
) -> BankMetadata {
    BankMetadata(
        retrievalModel: testRetrieval, supportModel: testSupport, embeddingDimension: dimension,
        memoryShape: shape, labels: labels, indexKind: kind)
}

/// A synthetic case: random Gaussian embedding, memory values derived from the seed.
func makeCase(
    _ n: Int, dimension: Int, rng: inout SeededGenerator, labels: [Int] = [1],
    shape: MemoryShape = tinyShape
) -> PreparedCase {
    let embedding = (0..<dimension).map { _ in rng.gaussian() }
    let memories = labels.map { label -> (label: Int, memory: SupportMemory) in
        let memory = (0..<shape.memoryCount).map { UInt16(truncatingIfNeeded: $0 &* 31 &+ n &* 7 &+ label) }
        let pointer = (0..<shape.pointerDimension).map { Float($0) + Float(n) * 0.5 + Float(label) }
        return (
            label,
            SupportMemory(
                channels: shape.channels, height: shape.height, width: shape.width,
                memoryBits: memory, pointer: pointer, isEmpty: label == 0)
        )
    }
    return PreparedCase(
        image: "img\(n).png", mask: "mask\(n).png", contentHash: SHA256.hash(Array("case \(n)".utf8)),
        width: 16, height: 16, embedding: embedding, memories: memories)
}

func normalized(_ v: [Float]) -> [Float] {
    let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
    return v.map { $0 / norm }
}

/// Brute-force top-k by inner product over normalized vectors, computed independently of FAISS.
func bruteForce(_ query: [Float], _ vectors: [UInt64: [Float]], k: Int) -> [(UInt64, Float)] {
    let q = normalized(query)
    let scored = vectors.map { id, v -> (UInt64, Float) in
        let n = normalized(v)
        var dot: Float = 0
        for i in 0..<q.count { dot += q[i] * n[i] }
        return (id, dot)
    }
    return Array(scored.sorted { $0.1 > $1.1 }.prefix(k))
}

// What the support bank stores per annotated support image (sam2.md §6.3): the spatial memory after the
// no-object embedding, rounded to bfloat16 exactly as the reference stores it, and the 256-d object
// pointer after both occlusion gatings (fp32). Everything else needed at query time is a model constant
// or depends on k and the support's rank (the pointer's temporal PE), so it is computed then.
import Foundation
import TensorCore

public struct SupportMemoryError: Error, CustomStringConvertible, Sendable {
    public let name: String
    public let message: String
    public var description: String { "\(name): \(message)" }
}

public struct SupportMemory: Sendable, Equatable {
    /// Memory channels, rows, columns (64 x 64 x 64 for the published models).
    public let channels: Int
    public let height: Int
    public let width: Int
    /// The memory [channels, height, width] as bfloat16 bit patterns.
    public let memoryBits: [UInt16]
    /// The object pointer (hidden dim, 256 for the published models).
    public let pointer: [Float]
    /// The support's mask had no foreground (its memory carries no_obj_embed_spatial, its pointer is no_obj_ptr).
    public let isEmpty: Bool

    public init(channels: Int, height: Int, width: Int, memoryBits: [UInt16], pointer: [Float], isEmpty: Bool) {
        precondition(memoryBits.count == channels * height * width, "SupportMemory: \(memoryBits.count) values for \(channels)x\(height)x\(width)")
        self.channels = channels
        self.height = height
        self.width = width
        self.memoryBits = memoryBits
        self.pointer = pointer
        self.isEmpty = isEmpty
    }

    /// Rounds an fp32 memory [C, H, W] to bfloat16 (round-to-nearest-even, what `.to(torch.bfloat16)` does).
    public init(memory: Tensor, pointer: [Float], isEmpty: Bool) {
        precondition(memory.rank == 3, "SupportMemory: memory must be [C, H, W], got \(memory.shape)")
        self.init(channels: memory.dim(0), height: memory.dim(1), width: memory.dim(2),
                  memoryBits: memory.data.map(bfloat16Bits), pointer: pointer, isEmpty: isEmpty)
    }

    /// The memory as fp32 [C, H, W] (exactly the bf16 values).
    public var memory: Tensor {
        Tensor(shape: [channels, height, width], data: memoryBits.map { float(fromBFloat16: $0) })
    }

    // MARK: Serialization
    // Layout (little-endian): "RSM1", UInt32 channels, height, width, pointer count, flags (bit 0 = empty),
    // then channels·height·width UInt16 bf16 values, then the pointer as Float32.

    static let magic: [UInt8] = Array("RSM1".utf8)

    public func serialized() -> [UInt8] {
        var out = Self.magic
        out.reserveCapacity(24 + memoryBits.count * 2 + pointer.count * 4)
        func put32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        for v in [channels, height, width, pointer.count] { put32(UInt32(v)) }
        put32(isEmpty ? 1 : 0)
        for b in memoryBits { withUnsafeBytes(of: b.littleEndian) { out.append(contentsOf: $0) } }
        for p in pointer { put32(p.bitPattern) }
        return out
    }

    /// Parses `serialized()` output; `name` (a path or key) is used in errors.
    public init(serialized bytes: [UInt8], name: String) throws {
        func fail(_ m: String) -> SupportMemoryError { SupportMemoryError(name: name, message: m) }
        guard bytes.count >= 24, Array(bytes[0..<4]) == Self.magic else {
            throw fail("not a serialized support memory (bad magic or shorter than its 24-byte header)")
        }
        func u32(_ at: Int) -> UInt32 {
            UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24
        }
        let c = Int(u32(4)), h = Int(u32(8)), w = Int(u32(12)), p = Int(u32(16)), flags = u32(20)
        guard c > 0, h > 0, w > 0, p > 0, c <= 4096, h <= 4096, w <= 4096, p <= 65536, flags <= 1 else {
            throw fail("implausible header: \(c)x\(h)x\(w) memory, \(p)-d pointer, flags \(flags)")
        }
        let n = c * h * w
        let expected = 24 + 2 * n + 4 * p
        guard bytes.count == expected else {
            throw fail("size \(bytes.count) bytes, header says \(expected)")
        }
        var bits = [UInt16](repeating: 0, count: n)
        for i in 0..<n { bits[i] = UInt16(bytes[24 + 2 * i]) | UInt16(bytes[25 + 2 * i]) << 8 }
        let base = 24 + 2 * n
        let pointer = (0..<p).map { Float(bitPattern: u32(base + 4 * $0)) }
        guard pointer.allSatisfy({ $0.isFinite }) else { throw fail("pointer holds non-finite values") }
        self.init(channels: c, height: h, width: w, memoryBits: bits, pointer: pointer, isEmpty: flags == 1)
    }
}

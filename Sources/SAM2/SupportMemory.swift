// What the support bank stores per annotated support image and label: the spatial memory after the
// no-object embedding, rounded to bfloat16 exactly as the reference stores it, and the 256-d object
// pointer after both occlusion gatings (fp32). Everything else needed at query time is a model constant
// or depends on k and the support's rank (the pointer's temporal PE), so it is computed then.
// One type from the memory encoder through the bank to memory attention: the bank stores and returns it as is.
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
        precondition(
            memoryBits.count == channels * height * width,
            "SupportMemory: \(memoryBits.count) values for \(channels)x\(height)x\(width)")
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
        self.init(
            channels: memory.dim(0), height: memory.dim(1), width: memory.dim(2),
            memoryBits: memory.data.map(bfloat16Bits), pointer: pointer, isEmpty: isEmpty)
    }

    /// The memory as fp32 [C, H, W] (exactly the bf16 values).
    public var memory: Tensor {
        Tensor(shape: [channels, height, width], data: memoryBits.map { float(fromBFloat16: $0) })
    }
}

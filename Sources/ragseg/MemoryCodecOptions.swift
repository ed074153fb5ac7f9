// `index create --memory-codec bf16|int8|bf16-zstd`: how the new bank stores SAM 2 memories
// (SupportBank/MemoryCodec.swift).
import ArgumentParser
import SupportBank

struct MemoryCodecOptions: ParsableArguments {
    @Option(
        help: """
            How memories are stored: bf16 (default, as computed, 512 KiB per SAM 2 memory), int8 (per channel \
            with an fp32 scale: half the bytes, decoded to bf16 before attention) or bf16-zstd (lossless, byte-split \
            bf16 in a zstd frame); see README "Smaller memories".
            """)
    var memoryCodec = "bf16"

    func codec() throws -> MemoryCodec {
        guard let codec = MemoryCodec(rawValue: memoryCodec) else {
            let known = MemoryCodec.allCases.map(\.rawValue).joined(separator: " or ")
            throw ValidationError("unknown --memory-codec \(memoryCodec); use \(known)")
        }
        return codec
    }
}

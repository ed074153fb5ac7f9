// `ragseg-bench accuracy`: how far --precision bf16 moves SAM 2's output from fp32, on the same targets and
// supports. The supports are encoded once in fp32 (a bank's memories do not depend on the query's precision);
// each target is then encoded, memory-attended and decoded once per precision. Printed per target and k:
// the max relative error of the low-res logits (max |fp32 - bf16| / max |fp32|) and the fraction of mask
// pixels (logit > 0 at the target's size) that differ. tools/bench_query_torch.py --accuracy measures
// PyTorch's bf16 autocast against its fp32 the same way.
// With --memory-codec int8 both sides run in fp32 and the second uses the supports as an int8 bank stores and
// returns them (MemoryCodec.roundTrip): the error the codec adds.
import ArgumentParser
import Foundation
import RAGSegIO
import RAGSegPipeline
import SAM2
import SupportBank
import TensorCore

struct AccuracyBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "accuracy",
        abstract: "Compare SAM 2 outputs in bf16 with fp32 (low-res logits, mask pixels) on synthetic targets.",
        discussion: """
            The masks compared are the decoder's candidate chosen by the fp32 run's IoU, before object-score \
            gating (random-weight models usually score "no object", which would gate every logit to -1024 and \
            hide the difference).
            """)

    @Option(help: "SAM 2 checkpoint (.safetensors), e.g. the one tools/bench_query_torch.py --write-weights saves.")
    var sam2: String

    @Option(help: "Synthetic targets.")
    var targets = 3

    @Option(parsing: .upToNextOption, help: "Support counts.")
    var ks: [Int] = [1, 4]

    @Option(help: "Side of the square gray images.")
    var size = 1024

    @Option(help: "Threads.")
    var threads = 2

    @Option(
        help: """
            Compare memories stored with this bank codec (int8) against bf16, both sides in fp32, instead of \
            bf16 compute against fp32.
            """)
    var memoryCodec: String?

    @Option(help: "Also write each support's bf16 memory (raw little-endian bits) to DIR/support-N.bf16.")
    var dumpMemories: String?

    func run() throws {
        Threads.set(threads)
        try Precision.use(.fp32)
        let encoder = try SAM2Checkpoint.supportEncoder(path: sam2)
        let model = encoder.sam2
        var supports: [SupportMemory] = []
        for j in 0..<(ks.max() ?? 1) {
            let image = try PNG.read(data: QueryBenchCommand.targetPNG(seed: 100 + UInt64(j), size: size), name: "s")
            let radius = Float((size / 4 + 40 * j) % (size / 2) + size / 8)
            var mask = [UInt8](repeating: 0, count: size * size)
            for y in 0..<size {
                for x in 0..<size {
                    let dy = Float(y - size / 2), dx = Float(x - size / 2)
                    if dy * dy + dx * dx < radius * radius { mask[y * size + x] = 1 }
                }
            }
            supports.append(try encoder.encodeSupport(image: image, mask: mask))
            if let dumpMemories {
                try FileManager.default.createDirectory(atPath: dumpMemories, withIntermediateDirectories: true)
                try supports[j].memoryBits.withUnsafeBytes { Data($0) }.write(
                    to: URL(fileURLWithPath: (dumpMemories as NSString).appendingPathComponent("support-\(j).bf16")))
            }
        }
        let codec = try memoryCodec.map { name in
            guard let codec = MemoryCodec(rawValue: name) else {
                throw ValidationError("unknown --memory-codec \(name)")
            }
            return codec
        }
        // Side two: the same supports as a bank with the codec returns them.
        let stored = codec.map { codec in supports.map { codec.roundTrip($0) } } ?? supports
        if let codec {
            print("Comparing supports stored \(codec) (encoded, then decoded) with bf16; both sides in fp32.")
            for (j, memory) in supports.enumerated() {
                let sizes = MemoryCodec.allCases.map { c -> String in
                    let (bytes, seconds) = c.measure(memory)
                    return "\(c) \(bytes) B (decode \(String(format: "%.2f", seconds * 1000)) ms)"
                }
                print("support \(j) memory values: " + sizes.joined(separator: ", "))
            }
        }
        print("SAM 2 \(model.config.name), \(supports.count) supports encoded in fp32; \(BLASKernels.summary)")
        print("oneDNN \(OneDNN.version), ISA \(OneDNN.isaName)")
        var worst = (relative: 0.0, differing: 0.0)
        var worstAbsolute = 0.0
        for t in 0..<targets {
            let image = try PNG.read(data: QueryBenchCommand.targetPNG(seed: 3000 + UInt64(t), size: size), name: "t")
            let pixels = try SAM2Preprocess.imageTensor(image, size: model.config.imageSize, name: "target")
            for k in ks where k <= supports.count {
                var outputs: [(masks: Tensor, iou: [Float], score: Float)] = []
                let sides: [(Precision, [SupportMemory])] =
                    codec == nil ? [(.fp32, supports), (.bf16, supports)] : [(.fp32, supports), (.fp32, stored)]
                for (precision, memories) in sides {
                    try Precision.use(precision)
                    let f = model.encode(pixels)
                    let conditioned = model.conditionedFeatures(
                        f, bank: try model.memoryBank.assemble(Array(memories[0..<k])))
                    let raw = model.decode(conditioned, f, multimask: true, outputSize: (size, size)).raw
                    outputs.append((raw.masks, raw.iou, raw.objectScore))
                }
                try Precision.use(.fp32)
                var chosen = 1
                for i in 2...3 where outputs[0].iou[i] > outputs[0].iou[chosen] { chosen = i }
                let a = sliced(outputs[0].masks, axis: 0, range: chosen..<(chosen + 1))
                let b = sliced(outputs[1].masks, axis: 0, range: chosen..<(chosen + 1))
                var maxDiff: Float = 0, maxAbs: Float = 0
                for (x, y) in zip(a.data, b.data) {
                    maxDiff = max(maxDiff, abs(x - y))
                    maxAbs = max(maxAbs, abs(x))
                }
                let fa = interpolate(a, size: (size, size), mode: .bilinear).data
                let fb = interpolate(b, size: (size, size), mode: .bilinear).data
                var differing = 0, foreground = 0
                for (x, y) in zip(fa, fb) {
                    if (x > 0) != (y > 0) { differing += 1 }
                    if x > 0 { foreground += 1 }
                }
                let relative = Double(maxDiff / max(maxAbs, 1e-30))
                worstAbsolute = max(worstAbsolute, Double(maxDiff))
                let fraction = Double(differing) / Double(fa.count)
                worst = (max(worst.relative, relative), max(worst.differing, fraction))
                print(
                    "target \(t) k=\(k): low-res logits max abs err \(String(format: "%.2e", maxDiff)), "
                        + "max rel err \(String(format: "%.2e", relative)), mask "
                        + "pixels differing \(String(format: "%.3f", 100 * fraction))% (fp32 foreground "
                        + "\(String(format: "%.1f", 100 * Double(foreground) / Double(fa.count)))%, object score "
                        + "\(String(format: "%.2f", outputs[0].score)) / \(String(format: "%.2f", outputs[1].score)))")
            }
        }
        print(
            "worst: max abs err \(String(format: "%.2e", worstAbsolute)), max rel err "
                + "\(String(format: "%.2e", worst.relative)), mask pixels differing "
                + "\(String(format: "%.3f", 100 * worst.differing))%")
    }
}

// `ragseg-bench segment`: per-stage seconds of the few-shot pipeline for one 1024x1024 target and
// k supports (image encode, support encode per support, memory attention, decode + upsample), next to
// the official PyTorch pipeline's (tools/bench_segment_torch.py) on the same machine, plus CPU seconds
// and peak RSS. The weights are the random sam2.1-tiny checkpoint that script writes (so both sides run
// the same model); any SAM 2 checkpoint works. Timing does not depend on the weight values.
import ArgumentParser
import Dispatch
import Foundation
import RAGSegCommandOptions
import SAM2
import TensorCore

struct SegmentBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "segment",
        abstract: "Benchmark the few-shot segmentation pipeline per stage for k supports (1024x1024).",
        discussion: """
            First (same thread count; also writes the random tiny weights both sides use):
              python tools/bench_segment_torch.py --ks 1,2,4,8 --threads 2 --out torch_segment.json \\
                  --write-weights /tmp/sam2.1_tiny_random.safetensors
            then:
              ragseg-bench segment --sam2 /tmp/sam2.1_tiny_random.safetensors --ks 1 2 4 8 --threads 2 \\
                  --reference torch_segment.json
            Supports are encoded once each (their seconds include their image encode); the target's image \
            encode is timed once and shared by every k; memory attention and decode are best of --repeats. \
            Every stage is given in wall seconds and in process CPU seconds (all threads; steadier on a shared machine).
            Total = the k supports + the target, i.e. one `ragseg segment` run with k supports and one target.
            """)

    @OptionGroup var precision: PrecisionOptions
    @Option(name: .customLong("sam2"), help: "SAM 2 checkpoint (.safetensors).")
    var modelPath: String

    @OptionGroup var sweep: SweepOptions

    @Option(help: "Timed runs of the k-dependent stages (best is reported).")
    var repeats: Int = 2

    func run() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
        let counts = sweep.ks, threads = sweep.threads
        let maxK = counts.max()!
        Threads.set(threads)
        var torch: [String: Any] = [:]
        if let reference = sweep.reference {
            let data = try Data(contentsOf: URL(fileURLWithPath: reference))
            guard let json = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw ValidationError("\(reference): expected the JSON object tools/bench_segment_torch.py writes")
            }
            torch = json
        }
        let cpuStart = processCPUSeconds(), wallStart = now()
        let segmenter = try SupportSegmenter(path: modelPath)
        let s = segmenter.imageSize, model = segmenter.model
        func image(_ seed: UInt64) -> Tensor { SAM2RandomWeights(seed: seed).randomImage(size: s) }
        /// Wall and process-CPU seconds of `body`.
        func time<T>(_ body: () throws -> T) rethrows -> (T, Seconds) {
            let start = now(), cpu = processCPUSeconds()
            let r = try body()
            return (r, Seconds(wall: now() - start, cpu: processCPUSeconds() - cpu))
        }
        _ = segmenter.model.imageEncoder.encode(image(99))  // warm-up

        // Supports: a centred disc of varying radius each (nonempty masks take the full path).
        var supports: [SupportMemory] = [], supportSeconds: [Seconds] = []
        for j in 0..<maxK {
            let r = (s / 4 + 40 * j) % (s / 2) + s / 8, c = s / 2
            let mask = Tensor(shape: [s, s]) { p in
                for y in 0..<s {
                    for x in 0..<s { p[y * s + x] = (y - c) * (y - c) + (x - c) * (x - c) < r * r ? 1 : 0 }
                }
            }
            let (memory, seconds) = try time {
                try model.encodeSupport(
                    SAM2FrameFeatures(segmenter.model.imageEncoder.encode(image(UInt64(j)))), mask: mask)
            }
            supports.append(memory)
            supportSeconds.append(seconds)
        }
        let (target, imageSeconds) = time { SAM2FrameFeatures(segmenter.model.imageEncoder.encode(image(1000))) }

        print(BLASKernels.summary)
        print(
            """
            threads \(threads); image \(s)x\(s); target image encode \(fmt(imageSeconds.wall)) s; support encode each: 
            """
                + supportSeconds.map { fmt($0.wall) }.joined(separator: ", ") + " s")
        print("   k  stage              swift s  torch s  ratio  swift cpu  torch cpu  cpu ratio")
        let torchK = torch["k"] as? [String: [String: Double]] ?? [:]
        var attentionPerK: [(Int, Double)] = []
        for k in counts {
            var best = (Seconds(wall: .infinity, cpu: 0), Seconds(wall: .infinity, cpu: 0))
            for _ in 0..<repeats {
                let (conditioned, attention) = try time {
                    model.conditionedFeatures(target, bank: try model.memoryBank.assemble(Array(supports.prefix(k))))
                }
                let (_, decode) = time { model.decodeTarget(conditioned, target, outputSize: (s, s)) }
                if attention.wall + decode.wall < best.0.wall + best.1.wall { best = (attention, decode) }
            }
            attentionPerK.append((k, best.0.wall))
            let supportTotal = supportSeconds.prefix(k).reduce(Seconds(wall: 0, cpu: 0), +)
            let stages: [(String, String, Seconds)] = [
                ("imageEncode", "image encode", imageSeconds),
                ("supportEncode", "support encode x\(k)", supportTotal),
                ("memoryAttention", "memory attention", best.0),
                ("decode", "decode + upsample", best.1),
            ]
            let total = stages.reduce(Seconds(wall: 0, cpu: 0)) { $0 + $1.2 }
            for (key, name, seconds) in stages + [("total", "total", total)] {
                let t = torchK[String(k)]?[key], tc = torchK[String(k)]?[key + ":cpu"]
                print(
                    pad(String(k), 4) + "  " + name.padding(toLength: 17, withPad: " ", startingAt: 0)
                        + pad(fmt(seconds.wall), 9) + pad(t.map { fmt($0) } ?? "-", 9)
                        + pad(t.map { fmt(seconds.wall / $0, 2) } ?? "-", 7)
                        + pad(fmt(seconds.cpu), 11) + pad(tc.map { fmt($0) } ?? "-", 11)
                        + pad(tc.map { fmt(seconds.cpu / $0, 2) } ?? "-", 11))
            }
        }
        if attentionPerK.count >= 2, let first = attentionPerK.first, let last = attentionPerK.last, last.0 > first.0 {
            // Linear in k means (t_k - t_k0) / (k - k0) is about constant: print it per step.
            let slopes = zip(attentionPerK, attentionPerK.dropFirst()).map { a, b in (b.1 - a.1) / Double(b.0 - a.0) }
            print("memory attention seconds per extra support: " + slopes.map { fmt($0) }.joined(separator: ", "))
        }
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        print(
            String(
                format: "swift: process CPU %.1f s over %.1f s wall; peak RSS %.0f MiB", processCPUSeconds() - cpuStart,
                now() - wallStart, Double(usage.ru_maxrss) / 1024))
        if let cpu = torch["cpuSeconds"] as? Double, let wall = torch["wallSeconds"] as? Double,
            let rss = torch["peakRSSMiB"] as? Double
        {
            print(
                "torch \(torch["torch"] as? String ?? "?"): "
                    + String(format: "process CPU %.1f s over %.1f s wall; peak RSS %.0f MiB", cpu, wall, rss))
        }
    }

    struct Seconds {
        var wall: Double
        var cpu: Double
        static func + (a: Seconds, b: Seconds) -> Seconds { Seconds(wall: a.wall + b.wall, cpu: a.cpu + b.cpu) }
    }
}

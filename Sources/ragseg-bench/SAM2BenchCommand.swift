// `ragseg-bench sam2`: seconds per 1024x1024 image of the SAM 2 image encoder (trunk + neck +
// conv_s0/conv_s1, i.e. the reference's forward_image), next to the official PyTorch code's time
// (tools/bench_sam2_torch.py) and against this machine's sgemm throughput measured in the same run.
// Random weights: timing does not depend on the values.
import ArgumentParser
import Foundation
import RAGSegCommandOptions
import SAM2
import TensorCore

struct SAM2BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sam2",
        abstract: "Benchmark the SAM 2 image encoder (1024x1024, random weights).",
        discussion: """
            For the PyTorch side run first (same thread count):
              python tools/bench_sam2_torch.py --sizes tiny,base_plus --threads 2 --out torch_sam2.json
            then: ragseg-bench sam2 --sizes tiny base_plus --threads 2 --reference torch_sam2.json
            GFLOP counts follow docs/sam2.md (convs, linears, attention matmuls; padded window tokens included).
            """)

    @OptionGroup var precision: PrecisionOptions
    @Option(parsing: .upToNextOption, help: "Model sizes: tiny, small, base_plus, large.")
    var sizes: [String] = ["tiny", "base_plus"]

    @Option(help: "Threads for BLAS and the tensor core.")
    var threads: Int = 2

    @Option(help: "Untimed runs before timing.")
    var warmup: Int = 1

    @Option(help: "Timed runs (the mean is reported).")
    var repeats: Int = 1

    @Option(help: "JSON written by tools/bench_sam2_torch.py ({\"tiny\": seconds, ...}).")
    var reference: String?

    func run() throws {
        Threads.set(threads)
        var torchSeconds: [String: Double] = [:]
        if let reference {
            let data = try Data(contentsOf: URL(fileURLWithPath: reference))
            guard let json = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw ValidationError("\(reference): expected a JSON object of size -> seconds")
            }
            for (k, v) in json { if let s = v as? Double { torchSeconds[k] = s } }
        }
        let sgemm = measureSgemm()
        print(BLASKernels.summary)
        print(String(format: "threads %d; sgemm 2048^3: %.1f GFLOP/s", threads, sgemm))
        print("size       GFLOP   swift s  swift cpu   GFLOP/s  %sgemm  torch s  torch cpu  ratio  cpu ratio")
        for name in sizes {
            guard let config = SAM2Config.named(name) else {
                throw ValidationError("unknown size '\(name)' (tiny, small, base_plus, large)")
            }
            let encoder = try SAM2ImageEncoder(SAM2RandomWeights(seed: 1).scope, config: config)
            let image = SAM2RandomWeights(seed: 2).randomImage(size: config.imageSize)
            for _ in 0..<warmup { _ = encoder.encode(image) }
            let start = Date(), cpuStart = processCPUSeconds()
            for _ in 0..<max(1, repeats) { _ = encoder.encode(image) }
            let seconds = Date().timeIntervalSince(start) / Double(max(1, repeats))
            let cpu = (processCPUSeconds() - cpuStart) / Double(max(1, repeats))
            let gflop = config.flops.total / 1e9
            let rate = gflop / seconds
            func cell(_ value: Double?, _ width: Int) -> String {
                let text = value.map { String(format: "%.2f", $0) } ?? "-"
                return String(repeating: " ", count: max(0, width - text.count)) + text
            }
            let torch = torchSeconds[name], torchCPU = torchSeconds[name + ":cpu"]
            print(
                name.padding(toLength: 10, withPad: " ", startingAt: 0)
                    + String(
                        format: " %6.1f  %8.2f  %8.2f  %8.1f  %5.1f%%", gflop, seconds, cpu, rate, 100 * rate / sgemm)
                    + cell(torch, 9) + cell(torchCPU, 10)
                    + cell(torch.map { seconds / $0 }, 8) + cell(torchCPU.map { cpu / $0 }, 8))
        }
    }

    /// Best of three 2048x2048x2048 sgemm runs, GFLOP/s.
    func measureSgemm() -> Double {
        let n = 2048
        let a = SAM2RandomWeights(seed: 3).randomImage(size: n).data  // 3*n*n values, the first n*n used
        var c = [Float](repeating: 0, count: n * n)
        var best = Double.infinity
        for _ in 0..<3 {
            let start = Date()
            a.withUnsafeBufferPointer { p in
                precondition(p.count >= n * n)
                c.withUnsafeMutableBufferPointer { out in
                    gemm(
                        transA: false, transB: true, m: n, n: n, k: n, a: p.baseAddress!, lda: n,
                        b: p.baseAddress!, ldb: n, c: out.baseAddress!, ldc: n)
                }
            }
            best = min(best, Date().timeIntervalSince(start))
        }
        return 2 * Double(n * n) * Double(n) / best / 1e9
    }
}

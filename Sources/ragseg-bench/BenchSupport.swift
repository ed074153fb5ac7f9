// What the benchmarks share: the options of the query-path sweeps, clocks, number formatting, models.
import ArgumentParser
import DINOv2
import Dispatch
import Foundation
import RAGSegPipeline
import SupportBank

/// The options of the benchmarks that sweep the number of supports (`segment`, `query`): the support
/// counts, as a list of integers (`--ks 1 4 8`, or `--ks 1 --ks 4`), the threads, and the PyTorch figures.
struct SweepOptions: ParsableArguments {
    @Option(parsing: .upToNextOption, help: "Support counts k to time, e.g. --ks 1 4 8.")
    var ks: [Int] = [1, 2, 4, 8]

    @Option(help: "Threads for BLAS and the tensor core (give the PyTorch script the same).")
    var threads = 2

    @Option(
        help:
            "JSON written by the benchmark's PyTorch script (tools/bench_segment_torch.py, tools/bench_query_torch.py)."
    )
    var reference: String?

    func validate() throws {
        guard !ks.isEmpty, ks.allSatisfy({ $0 >= 1 }) else {
            throw ValidationError("--ks takes support counts of at least 1")
        }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
    }
}

extension IndexKind: ExpressibleByArgument {}
extension MemoryCodec: ExpressibleByArgument {}

/// Seconds on a monotonic clock.
func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

/// CPU seconds (user + system, all threads) this process has used so far: steadier than wall time on a
/// shared machine.
func processCPUSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

/// x with `digits` decimals.
func fmt(_ x: Double, _ digits: Int = 3) -> String { String(format: "%.\(digits)f", x) }

/// s right-aligned in `width` columns.
func pad(_ s: String, _ width: Int) -> String { String(repeating: " ", count: max(0, width - s.count)) + s }

/// DINOv2 for the query benchmarks: the weights file given, else ViT-S/14 with random weights made in-process
/// (the retrieval embedding's cost does not depend on the weights).
func benchRetrievalEncoder(_ path: String?) throws -> DINOv2RetrievalEncoder {
    if let path { return try DINOv2RetrievalEncoder(path: path) }
    return DINOv2RetrievalEncoder(
        network: DINOv2Model(randomWeights: .small, seed: 1),
        model: ModelIdentity(
            name: "dinov2", variant: "small-random-in-process", sha256: String(repeating: "0", count: 64)))
}

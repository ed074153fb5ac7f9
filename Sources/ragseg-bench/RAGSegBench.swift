// `ragseg-bench`: the benchmarks, in their own executable so that `ragseg --help` lists only what a user runs.
// Run them from a release build; PyTorch is timed side by side where a tools/bench_*_torch.py script exists.
import ArgumentParser

@main
struct RAGSegBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ragseg-bench",
        abstract: "Benchmarks of the compute kernels, the models, the query path and the support bank.",
        subcommands: [
            BenchOps.self, BenchDINOv2.self, SAM2BenchCommand.self, SegmentBenchCommand.self, QueryBenchCommand.self,
            VolumeBenchCommand.self,
            BankBench.self, AccuracyBenchCommand.self,
        ])
}

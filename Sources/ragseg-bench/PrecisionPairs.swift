// `ragseg-bench query --pairs N`: fp32 and bf16 queries alternating in one process, one query of each per pair,
// the order swapped every pair, each on a new target. On a shared machine whose neighbours come and go, runs of
// one precision and then the other (even alternating processes) catch different neighbours; a pair's two queries
// are seconds apart, so the median of the pairs' ratios is the steadiest measure of bf16's speed-up.
import Foundation
import TensorCore

enum PrecisionPairs {
    /// For each k, `pairs` ratios fp32 total / bf16 total. `query(k)` runs one query under the current precision
    /// and returns its total wall seconds. The first bf16 query of the process (which rounds the weights) runs
    /// once untimed. The precision is `restore` afterwards.
    static func run(ks: [Int], pairs: Int, restore: Precision, query: (Int) throws -> Double) throws -> [Int: [Double]]
    {
        defer { try? Precision.use(restore) }
        try Precision.use(.bf16)
        _ = try query(ks.max()!)
        var ratios: [Int: [Double]] = [:]
        for k in ks {
            for pair in 0..<pairs {
                var seconds: [Precision: Double] = [:]
                for precision in pair % 2 == 0 ? [Precision.fp32, .bf16] : [.bf16, .fp32] {
                    try Precision.use(precision)
                    seconds[precision] = try query(k)
                }
                ratios[k, default: []].append(seconds[.fp32]! / seconds[.bf16]!)
            }
        }
        return ratios
    }

    static func report(_ ratios: [Int: [Double]]) {
        guard !ratios.isEmpty else { return }
        print("")
        print("bf16 speed-up over fp32, alternating pairs of queries (fp32 total / bf16 total, wall):")
        for k in ratios.keys.sorted() {
            let sorted = ratios[k]!.sorted()
            let median =
                sorted.count % 2 == 1
                ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
            print(
                String(
                    format: "  k = %d: median %.2fx over %d pairs (%.2f-%.2f); pairs %@", k, median, sorted.count,
                    sorted.first!, sorted.last!, ratios[k]!.map { String(format: "%.2f", $0) }.joined(separator: " ")))
        }
    }
}

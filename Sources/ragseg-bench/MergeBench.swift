// `ragseg-bench bank`, merge part: `index merge` throughput (cases/s, MiB/s) on shards of full-size synthetic cases.
import Foundation
import RAGSegIO
import SupportBank

extension BankBench {
    func benchMerge() throws {
        let model = ModelIdentity(name: "bench", variant: "none", sha256: String(repeating: "0", count: 64))
        let d = 768, shards = max(1, mergeShards), n = mergeCases
        let dir = (scratch as NSString).appendingPathComponent("ragseg-bench-merge-\(getpid())")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let template = BankMetadata(
            retrievalModel: model, supportModel: model, embeddingDimension: d, memoryShape: .sam2)
        var rng = SeededRandom(state: 3)
        var paths = [String]()
        let fillStart = Date()
        for s in 0..<shards {
            let path = (dir as NSString).appendingPathComponent("shard\(s)")
            let bank = try SupportBank.create(at: path, metadata: SupportBank.metadata(fromTemplate: template))
            try bank.recordShard(ShardAssignment(index: s, count: shards))
            var i = s
            var batch = [PreparedCase]()
            while i < n {
                batch.append(BankBench.syntheticCase(i, dimension: d, shape: .sam2, rng: &rng))
                if batch.count == 64 { try bank.add(batch); batch.removeAll() }
                i += shards
            }
            if !batch.isEmpty { try bank.add(batch) }
            paths.append(path)
        }
        let fill = Date().timeIntervalSince(fillStart)
        let out = (dir as NSString).appendingPathComponent("merged")
        let cpu = processCPUSeconds()
        let start = Date()
        let report = try SupportBank.merge(into: out, from: paths)
        let wall = Date().timeIntervalSince(start)
        let cpuSeconds = processCPUSeconds() - cpu
        let raw = Double(MemoryShape.sam2.memoryCount * 2 + MemoryShape.sam2.pointerDimension * 4 + d * 4)
        let lmdb = try SupportBank.open(at: out, readOnly: true).lmdbUsedBytes
        print("")
        print("## Merge (`index merge`)")
        print("")
        print(
            """
            \(n) full-size cases (\(d)-d embedding, bf16 64x64x64 memory + 256 fp32 pointer) in \(shards) shards \
            (filled in \(String(format: "%.1f", fill)) s), merged into one bank: records copied in id order \
            (MDB_APPEND), every memory and embedding checksum checked, index built once, the result verified.
            """)
        print("")
        print("| cases | shards | index | copy s | index s | verify s | total s | cases/s | MiB/s | CPU s | LMDB MiB |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        print(
            String(
                format: "| %d | %d | %@ | %.2f | %.2f | %.2f | %.2f | %.0f | %.0f | %.2f | %.0f |", report.cases,
                shards,
                report.indexKind.rawValue, report.copySeconds, report.indexSeconds, report.verifySeconds, wall,
                Double(report.cases) / wall, Double(report.cases) * raw / wall / 1_048_576, cpuSeconds,
                Double(lmdb) / 1_048_576))
        fflush(nil)
    }
}

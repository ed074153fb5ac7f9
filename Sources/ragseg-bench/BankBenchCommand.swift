// `ragseg-bench bank`: search latency per index type and size, add throughput without encoders,
// bytes on disk per case. Synthetic data; a benchmark, not a test.
import ArgumentParser
import Foundation
import RAGSegIO
import RAGSegPipeline
import SAM2
@_spi(Benchmark) import SupportBank
import TensorCore

struct BankBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bank",
        abstract: "Benchmark the support bank: search latency (p50/p99), add throughput, disk per case.")

    @Option(parsing: .upToNextOption, help: "Index sizes (vectors).") var sizes = [10000, 100000]
    @Flag(help: "Also 1e6 vectors (several GiB of RAM; HNSW construction is slow on few cores).") var large = false
    @Option(parsing: .upToNextOption, help: "Embedding dimensions.") var dimensions = [384, 768]
    @Option(parsing: .upToNextOption, help: "Index types.") var types: [IndexKind] = [.flat, .hnsw, .ivf]
    @Option(help: "Single-vector queries timed per configuration.") var queries = 300
    @Option(
        help: "Skip index types whose construction would exceed this many seconds (estimated from the previous size).")
    var maxBuildSeconds = 240.0
    @Flag(help: "Only the search-latency part.") var searchOnly = false
    @Flag(help: "Only the add/disk part.") var addOnly = false
    @Option(
        help:
            """
            Synthetic data: clustered (mixture of n/100 Gaussian clusters, like real embeddings) or gaussian (no \
            structure: worst case for approximate indexes).
            """
    )
    var data = "clustered"
    @Option(
        parsing: .upToNextOption,
        help:
            """
            Bank sizes at which the one-case add is timed (the bank is bulk-filled up to each in turn; --large adds \
            1000000).
            """
    )
    var addSteps = [100, 10000, 100000]
    @Option(help: "Scratch folder for the add benchmark's banks.") var scratch = NSTemporaryDirectory()
    @Flag(help: "Only the merge part.") var mergeOnly = false
    @Option(help: "Merge benchmark: cases in all, full-size SAM 2 memories (0: skip it).") var mergeCases = 2048
    @Option(help: "Merge benchmark: shards the cases are spread over.") var mergeShards = 4
    @Option(help: "Embedding dimension of the add benchmark's banks.") var bankDimension = 768
    @Option(parsing: .upToNextOption, help: "Memory codecs whose bytes per full-size case are measured.")
    var codecs: [MemoryCodec] = [.bf16, .int8, .bf16Zstd]
    @Option(help: "Largest add step at which a snapshot of the bank is timed (`index snapshot`).")
    var snapshotMax = 100_000

    func run() throws {
        if !mergeOnly {
            if !addOnly { try benchSearch() }
            if !searchOnly { try benchAdd() }
        }
        if !searchOnly && !addOnly && mergeCases > 0 { try benchMerge() }
    }

    /// n normalized vectors: plain Gaussian, or around `clusters` random centres (noise of norm ~0.7).
    static func vectors(_ n: Int, _ d: Int, seed: UInt64, clusters: Int = 0) -> [Float] {
        var rng = SeededRandom(state: seed)
        let centres = clusters > 0 ? vectors(clusters, d, seed: 0xC0FFEE &+ UInt64(d)) : []
        let noise = clusters > 0 ? Float(0.7) / Float(d).squareRoot() : 1
        var out = [Float](repeating: 0, count: n * d)
        for i in 0..<n {
            var norm: Float = 0
            let c = clusters > 0 ? Int(rng.next() % UInt64(clusters)) : 0
            for j in 0..<d {
                let g = rng.gaussian() * noise + (clusters > 0 ? centres[c * d + j] : 0)
                out[i * d + j] = g
                norm += g * g
            }
            let inv = 1 / norm.squareRoot()
            for j in 0..<d { out[i * d + j] *= inv }
        }
        return out
    }

    static func percentile(_ sorted: [Double], _ p: Double) -> Double {
        sorted[min(sorted.count - 1, Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1)]
    }

    func benchSearch() throws {
        let sizeList = sizes + (large ? [1_000_000] : [])
        let cores = ProcessInfo.processInfo.activeProcessorCount
        print("## Search latency (one query at a time, 1 OpenMP thread, k = 10; build with \(cores) threads)")
        let clustered = data == "clustered"
        print(
            clustered
                ? """
                Data: normalized vectors in n/100 Gaussian clusters (queries from the same clusters). Recall@10 vs \
                exact Flat.
                """
                : """
                Data: normalized Gaussian vectors (no cluster structure: worst case for HNSW/IVF recall). \
                Recall@10 vs exact Flat.
                """
        )
        print("")
        print("| d | n | index | build s | p50 ms | p99 ms | recall@10 |")
        print("|---|---|---|---|---|---|---|")
        for d in dimensions {
            var lastBuildPerVector = [IndexKind: Double]()
            for n in sizeList {
                let clusters = clustered ? max(1, n / 100) : 0
                let data = BankBench.vectors(n, d, seed: UInt64(d), clusters: clusters)
                let queryVectors = BankBench.vectors(queries, d, seed: 999, clusters: clusters)
                let ids = (0..<n).map(Int64.init)
                var truth = [[Int64]]()
                let truthQueries = min(queries, 100)
                for kind in types {
                    if let perVector = lastBuildPerVector[kind], perVector * Double(n) > maxBuildSeconds {
                        print(
                            """
                            | \(d) | \(n) | \(kind.rawValue) | skipped (estimated \(Int(perVector * Double(n))) s \
                            build) | | | |
                            """
                        )
                        fflush(nil)
                        continue
                    }
                    let factory =
                        kind == .ivf ? "IVF\(IndexKind.ivfCellCount(n)),Flat" : (kind == .hnsw ? "HNSW32" : "Flat")
                    let index = try FaissIndex(dimension: d, factory: factory)
                    if kind == .hnsw { try index.setSearchParameter("efSearch", 64) }
                    FaissIndex.threads = cores
                    let t0 = Date()
                    if kind == .ivf {
                        let trainCount = min(n, 39 * IndexKind.ivfCellCount(n))
                        try index.train(Array(data[0..<(trainCount * d)]))
                        try index.setSearchParameter("nprobe", 16)
                    }
                    try index.add(data, ids: ids)
                    let build = Date().timeIntervalSince(t0)
                    lastBuildPerVector[kind] = build / Double(n)
                    if kind == .flat || truth.isEmpty {
                        // Exact neighbours from a Flat index (built here if flat is not benchmarked).
                        let exact =
                            kind == .flat
                            ? index
                            : try { () throws -> FaissIndex in
                                let f = try FaissIndex(dimension: d, factory: "Flat")
                                try f.add(data, ids: ids)
                                return f
                            }()
                        let (_, found) = try exact.search(Array(queryVectors[0..<(truthQueries * d)]), k: 10)
                        truth = (0..<truthQueries).map { Array(found[($0 * 10)..<($0 * 10 + 10)]) }
                    }
                    FaissIndex.threads = 1
                    var times = [Double]()
                    var hitsFound = 0
                    for q in 0..<queries {
                        let query = Array(queryVectors[(q * d)..<((q + 1) * d)])
                        let s = DispatchTime.now().uptimeNanoseconds
                        let (_, found) = try index.search(query, k: 10)
                        times.append(Double(DispatchTime.now().uptimeNanoseconds - s) / 1e6)
                        if q < truthQueries { hitsFound += Set(found).intersection(truth[q]).count }
                    }
                    times.sort()
                    let recall = Double(hitsFound) / Double(truthQueries * 10)
                    print(
                        String(
                            format: "| %d | %d | %@ | %.1f | %.3f | %.3f | %.3f |", d, n, kind.rawValue, build,
                            BankBench.percentile(times, 50), BankBench.percentile(times, 99), recall))
                    fflush(nil)
                }
            }
        }
        print("")
    }

    /// A prepared case of random content with the given memory shape.
    static func syntheticCase(_ i: Int, dimension: Int, shape: MemoryShape, rng: inout SeededRandom) -> PreparedCase {
        let embedding = (0..<dimension).map { _ in rng.gaussian() }
        // Finite bf16 values (an int8 bank refuses NaN/inf), Gaussian like a memory's activations.
        let memory = BankBench.fastVectors(1, shape.memoryCount, rng: &rng).map { bfloat16Bits($0 * 64) }
        let pointer = [Float](repeating: Float(i), count: shape.pointerDimension)
        return PreparedCase(
            image: "synthetic/\(i).png", mask: "synthetic/\(i)_mask.png",
            contentHash: SHA256.hash(Array("bench \(i)".utf8)), width: 512, height: 512,
            embedding: embedding,
            memories: [
                (
                    1,
                    SupportMemory(
                        channels: shape.channels, height: shape.height, width: shape.width,
                        memoryBits: memory, pointer: pointer, isEmpty: false)
                )
            ])
    }

    func benchAdd() throws {
        let model = ModelIdentity(name: "bench", variant: "none", sha256: String(repeating: "0", count: 64))
        let d = bankDimension
        print("## Add throughput (encoders excluded) and disk use")
        // Full-size SAM 2 memories: throughput and bytes per case, per memory codec.
        for codec in codecs {
            let dir = (scratch as NSString).appendingPathComponent("ragseg-bench-full-\(getpid())")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            var metadata = BankMetadata(
                retrievalModel: model, supportModel: model, embeddingDimension: d, memoryShape: .sam2)
            if codec != .bf16 { metadata.memoryCodec = codec }
            let bank = try SupportBank.create(at: dir, metadata: metadata)
            var rng = SeededRandom(state: 1)
            let n = 256
            let cases = (0..<n).map { BankBench.syntheticCase($0, dimension: d, shape: .sam2, rng: &rng) }
            var t0 = Date()
            for c in cases.prefix(64) { try bank.add([c]) }
            let single = Date().timeIntervalSince(t0) / 64
            t0 = Date()
            var i = 64
            while i < n {
                try bank.add(Array(cases[i..<min(n, i + 16)]))
                i += 16
            }
            let batched = Date().timeIntervalSince(t0) / Double(n - 64)
            try bank.checkpoint(force: true)
            let stats = try bank.statistics()
            // bf16-zstd records vary: measured against the bf16 payload they pack.
            let raw = (codec == .bf16Zstd ? MemoryCodec.bf16 : codec).recordBytes(.sam2) - 24 + d * 4
            let used = bank.lmdbUsedBytes
            var reads = [Double]()
            for id in 1...UInt64(n) {
                let s = DispatchTime.now().uptimeNanoseconds
                _ = try bank.memory(id, label: 1)
                reads.append(Double(DispatchTime.now().uptimeNanoseconds - s) / 1e6)
            }
            reads.sort()
            print("")
            print(
                """
                Full-size cases, memory codec \(codec) (64x64x64 memory record \(codec == .bf16Zstd ? "at most " : "")\
                \(codec.recordBytes(.sam2)) B incl. its 24 B header and 256 fp32 pointer, + \(d) fp32 embedding; raw \
                payload \(raw) B\(codec == .bf16Zstd ? " as bf16" : "")), \(n) cases:
                """
            )
            print(
                String(
                    format: "- one case per transaction (fsync each): %.2f ms/case (%.0f cases/s, %.0f MiB/s)",
                    single * 1000, 1 / single, Double(raw) / single / 1048576))
            print(
                String(
                    format: "- 16 cases per transaction: %.2f ms/case (%.0f cases/s, %.0f MiB/s)",
                    batched * 1000, 1 / batched, Double(raw) / batched / 1048576))
            print(
                String(
                    format:
                        """
                        - disk: LMDB pages in use %.1f KiB/case, files allocated %.1f KiB/case; raw payload %.1f \
                        KiB/case (overhead %+.1f%% / %+.1f%%)
                        """,
                    Double(used) / Double(n) / 1024, Double(stats.diskBytes) / Double(n) / 1024, Double(raw) / 1024,
                    (Double(used) / Double(n * raw) - 1) * 100, (Double(stats.diskBytes) / Double(n * raw) - 1) * 100))
            print(
                String(
                    format: "- reading one memory (LMDB, checksum, decode to bf16): p50 %.3f ms, p99 %.3f ms",
                    BankBench.percentile(reads, 50), BankBench.percentile(reads, 99)))
        }
        // Cost of one more real-shaped case as the bank grows. Reaching 1e6 cases through `add` takes
        // most of an hour (and 1e6 real memories would be 512 GB), so the bank is filled by a
        // benchmark-only path: large transactions of synthetic cases with real records, embeddings,
        // hashes and journal entries but 8-byte placeholder memories. What is timed is `add` of one case
        // with a full 512 KiB bf16 memory, in its own transaction, exactly as `index add` does it.
        let steps = addSteps + (large ? [1_000_000] : [])
        let dir = (scratch as NSString).appendingPathComponent("ragseg-bench-scale-\(getpid())")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let bank = try SupportBank.create(
            at: dir,
            metadata: BankMetadata(
                retrievalModel: model, supportModel: model, embeddingDimension: d, memoryShape: .sam2))
        var rng = SeededRandom(state: 2)
        var count = 0
        let timed = 100
        var realCases = 0, realBytes = 0  // the timed cases of earlier steps are in the bank too
        print("")
        print(
            """
            One-case add as the bank grows (\(d)-d, index auto: Flat, IVF past \
            \(IndexKind.autoApproximateThreshold(dimension: d)) vectors).
            """
        )
        print("Each timed add is one real-shaped case (512 KiB bf16 memory + pointer + embedding) in its own")
        print("transaction (fsync), \(timed) per size, after `checkpoint` has restructured the index for that size;")
        print("then \(timed) more with LMDB's fsync off (the add's own work, without the disk's sync latency).")
        print(
            "Add CPU = CPU seconds of the whole process (user + system, all threads) during each timed add: unlike the")
        print("wall-clock columns it does not grow when other processes compete for the cores or the disk.")
        print("The cases already in the bank were bulk-filled for the benchmark: real records, embeddings, hashes and")
        print("journal entries, 8-byte placeholder memories (same B-tree leaf footprint as a real memory's overflow")
        print("reference). Disk: LMDB pages in use per filler case (everything but the memory payload), LMDB growth")
        print("per timed real case, index file per vector.")
        print("")
        print(
            """
            | cases in bank | index | add p50 ms | add p99 ms | add max ms | add CPU p50 ms | CPU p99 ms | no fsync: \
            p50 ms | p99 ms | checkpoint after the adds ms | fill s | restructure + write s | LMDB B/filler case | \
            LMDB KiB/real case | index B/vector |
            """
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        let chunk = 8192
        var searchRows = [String]()
        for target in steps {
            let fillStart = Date()
            while count < target {
                let n = min(chunk, target - count)
                try bank.benchmarkBulkFill(normalizedVectors: BankBench.fastVectors(n, d, rng: &rng))
                count += n
            }
            let fill = Date().timeIntervalSince(fillStart)
            var t0 = Date()
            // The restructure (Flat -> IVF, IVF retrain at 4x) happens here, then a full write.
            try bank.checkpoint(force: true)
            let restructure = Date().timeIntervalSince(t0)
            let before = bank.lmdbUsedBytes
            let fillerBytes = before - realBytes
            let fillerCases = count - realCases
            var times = [Double]()
            var cpuTimes = [Double]()
            for _ in 0..<timed {
                let c = BankBench.syntheticCase(count, dimension: d, shape: .sam2, rng: &rng)
                count += 1
                let cpu = processCPUSeconds()
                let s = DispatchTime.now().uptimeNanoseconds
                try bank.add([c])
                times.append(Double(DispatchTime.now().uptimeNanoseconds - s) / 1e6)
                cpuTimes.append((processCPUSeconds() - cpu) * 1000)
            }
            cpuTimes.sort()
            // The same without LMDB's fsync: the work of an add apart from the disk's sync latency
            // (which dominates above and varies with whatever else uses the disk).
            var unsynced = [Double]()
            try bank.benchmarkSetSync(false)
            for _ in 0..<timed {
                let c = BankBench.syntheticCase(count, dimension: d, shape: .sam2, rng: &rng)
                count += 1
                let s = DispatchTime.now().uptimeNanoseconds
                try bank.add([c])
                unsynced.append(Double(DispatchTime.now().uptimeNanoseconds - s) / 1e6)
            }
            try bank.benchmarkSetSync(true)
            unsynced.sort()
            let stepBytes = bank.lmdbUsedBytes - before
            realBytes += stepBytes
            realCases += 2 * timed
            // What `index add` does at its end: writes index.faiss only when cheap (<= 64 MiB) or overdue.
            t0 = Date()
            try bank.checkpoint(force: false)
            let after = Date().timeIntervalSince(t0) * 1000
            times.sort()
            let stats = try bank.statistics()
            searchRows.append(try searchAndSnapshot(bank, cases: target, kind: stats.indexKind, rng: &rng))
            print(
                String(
                    format:
                        """
                        | %d | %@ | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.1f | %.1f | %.1f | %.0f | %.1f \
                        | %.0f |
                        """,
                    target, stats.indexKind.rawValue,
                    BankBench.percentile(times, 50), BankBench.percentile(times, 99), times.last!,
                    BankBench.percentile(cpuTimes, 50), BankBench.percentile(cpuTimes, 99),
                    BankBench.percentile(unsynced, 50), BankBench.percentile(unsynced, 99), after, fill, restructure,
                    Double(fillerBytes) / Double(fillerCases), Double(stepBytes) / Double(2 * timed) / 1024,
                    Double(stats.indexFileBytes) / Double(stats.indexVectors)))
            fflush(nil)
        }
        print("")
        print(
            """
            Search through the bank (`SupportBank.search`, k = 10, one thread: FAISS plus reading the 10 records from \
            LMDB), \(BankBench.searchQueries) random queries, at each size above; and `snapshot` (what `ragseg index \
            snapshot` runs: compacted LMDB copy + index at its position) up to \(snapshotMax) cases:
            """)
        print("")
        print(
            "| cases | index | search p50 ms | search p99 ms | thread CPU p99 ms | snapshot s | LMDB copy s | "
                + "snapshot MiB |")
        print("|---|---|---|---|---|---|---|---|")
        for row in searchRows { print(row) }
    }

    static let searchQueries = 1000

    /// One table row: bank search latency at this size, and the time of a snapshot when the bank is small enough.
    func searchAndSnapshot(_ bank: SupportBank, cases: Int, kind: IndexKind, rng: inout SeededRandom) throws -> String {
        let queries = BankBench.fastVectors(BankBench.searchQueries, bank.metadata.embeddingDimension, rng: &rng)
        let d = bank.metadata.embeddingDimension
        var times = [Double](), cpuTimes = [Double]()
        // This thread's CPU time too: on a shared machine the wall-clock tail is mostly time spent preempted.
        func threadCPU() -> Double {
            var t = timespec()
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
            return Double(t.tv_sec) * 1e3 + Double(t.tv_nsec) / 1e6
        }
        for q in 0..<BankBench.searchQueries {
            let query = Array(queries[(q * d)..<((q + 1) * d)])
            let s = DispatchTime.now().uptimeNanoseconds
            let c = threadCPU()
            _ = try bank.search(query, k: 10)
            cpuTimes.append(threadCPU() - c)
            times.append(Double(DispatchTime.now().uptimeNanoseconds - s) / 1e6)
        }
        times.sort()
        cpuTimes.sort()
        var snapshot = "| | | |"
        if cases <= snapshotMax {
            let target = (scratch as NSString).appendingPathComponent("ragseg-bench-snapshot-\(getpid())")
            defer { try? FileManager.default.removeItem(atPath: target) }
            let report = try bank.snapshot(to: target)
            snapshot = String(
                format: "| %.2f | %.2f | %.0f |", report.seconds, report.copySeconds, Double(report.lmdbBytes) / 1048576
            )
        }
        return String(
            format: "| %d | %@ | %.3f | %.3f | %.3f ", cases, kind.rawValue, BankBench.percentile(times, 50),
            BankBench.percentile(times, 99), BankBench.percentile(cpuTimes, 99)) + snapshot
    }

    /// n normalized Gaussian vectors, both Box-Muller outputs used (the bulk fill makes millions).
    static func fastVectors(_ n: Int, _ d: Int, rng: inout SeededRandom) -> [Float] {
        var out = [Float](repeating: 0, count: n * d)
        out.withUnsafeMutableBufferPointer { v in
            var i = 0
            while i < v.count {
                let u1 = max(Double(rng.next() >> 11) / Double(1 << 53), 1e-300)
                let u2 = Double(rng.next() >> 11) / Double(1 << 53)
                let r = (-2 * log(u1)).squareRoot()
                v[i] = Float(r * cos(2 * .pi * u2))
                if i + 1 < v.count { v[i + 1] = Float(r * sin(2 * .pi * u2)) }
                i += 2
            }
            for row in 0..<n {
                var norm: Float = 0
                for j in 0..<d { norm += v[row * d + j] * v[row * d + j] }
                let inv = 1 / norm.squareRoot()
                for j in 0..<d { v[row * d + j] *= inv }
            }
        }
        return out
    }
}

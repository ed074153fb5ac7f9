// `ragseg-bench query`: the latency of one retrieval-augmented query end to end (issue #7), split into
// embed / search / load / encode / attend / decode, for several k, in-process and through `ragseg serve`'s
// HTTP endpoint on loopback, next to the official PyTorch pipeline (tools/bench_query_torch.py); peak RSS.
// The bank is synthetic (random memories, pointers and embeddings: timing does not depend on the values);
// the query runs the product's own path (RetrievalSegmenter, SegmentationServer). A benchmark, not a test.
import ArgumentParser
import DINOv2
import Dispatch
import Foundation
import RAGSegCommandOptions
import RAGSegIO
import RAGSegPipeline
import RAGSegServer
import SAM2
import SupportBank
import TensorCore

struct QueryBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "query",
        abstract:
            """
            Benchmark one retrieval query end to end per stage (embed, search, load, encode, attend, decode) for k \
            supports.
            """,
        discussion: """
            First (same thread count; also writes the random sam2.1 tiny weights both sides use):
              python tools/bench_query_torch.py --ks 1,4,8 --cases 1000 --threads 2 --out torch_query.json \\
                  --write-weights /tmp/tiny_sam2.safetensors
            then:
              ragseg-bench query --sam2 /tmp/tiny_sam2.safetensors --ks 1 4 8 --cases 1000 --threads 2 \\
                  --reference torch_query.json --server
            The bank is built in --scratch from --cases synthetic cases (random bf16 memories and pointers, random \
            unit embeddings; no encoder runs) and deleted afterwards. Each query is a new synthetic gray \
            --size x --size PNG (SAM 2 keeps the last image's features, so a repeated image would skip the encoder). \
            Per k, --repeats queries run; the one with the smallest total is shown. Stages run one after the \
            other on both sides; total = the whole query (wall, end to end). \
            CPU = process CPU seconds, all threads (steadier than wall on a shared machine).
            """)

    @OptionGroup var precision: PrecisionOptions
    @Option(
        name: .customLong("sam2"),
        help: "SAM 2 checkpoint (.safetensors), e.g. the one tools/bench_query_torch.py --write-weights saves.")
    var sam2: String

    @Option(
        name: .customLong("dinov2"), help: "DINOv2 weights (default: ViT-S/14 with random weights made in-process).")
    var dinov2: String?

    @OptionGroup var sweep: SweepOptions

    @Option(help: "Synthetic cases in the bank.")
    var cases = 1000

    @Option(help: "Queries per k (a new image each); the one with the smallest total is shown.")
    var repeats = 3

    @Option(help: "Side of the square gray target image.")
    var size = 1024

    @Flag(help: "Also time the same query through `ragseg serve`'s POST /segment, in-process over loopback.")
    var server = false

    @Option(
        help: """
            Also run this many fp32/bf16 pairs of queries per k, alternating in this process, and print the median \
            of the pairs' speed-ups (bf16 needs native bf16; see PrecisionPairs.swift).
            """)
    var pairs = 0

    @Option(help: "Folder for the temporary bank.")
    var scratch = NSTemporaryDirectory()

    func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
        guard pairs >= 0 else { throw ValidationError("--pairs must not be negative") }
        guard cases >= 1 else { throw ValidationError("--cases must be at least 1") }
        guard size >= 16 else { throw ValidationError("--size must be at least 16") }
        guard let maxK = sweep.ks.max(), maxK <= min(cases, ServerConfiguration.maxK) else {
            throw ValidationError(
                "--ks must lie in 1...\(min(cases, ServerConfiguration.maxK)) (at most --cases and the server's limit)")
        }
    }

    func run() async throws {
        let counts = sweep.ks, threads = sweep.threads
        Threads.set(threads)
        let torch = try readReference()
        let wallStart = now(), cpuStart = processCPUSeconds()

        // Models.
        let support = try SAM2Checkpoint.supportEncoder(path: sam2)
        let retrieval = try benchRetrievalEncoder(dinov2)

        // The synthetic bank.
        let bankPath = (scratch as NSString).appendingPathComponent("ragseg-bench-query-\(getpid())")
        defer { try? FileManager.default.removeItem(atPath: bankPath) }
        let fillStart = now()
        let bank = try SupportBank.create(
            at: bankPath,
            metadata: BankMetadata(
                retrievalModel: retrieval.model, supportModel: support.model, embeddingDimension: retrieval.dimension,
                memoryShape: support.memoryShape,
                preprocessing: retrieval.preprocessing.merging(support.preprocessing) { a, _ in a },
                labels: ["object"]))
        var rng = SeededRandom(state: 7)
        var filled = 0
        while filled < cases {
            let batch = (filled..<min(cases, filled + 64)).map {
                Self.syntheticCase($0, dimension: retrieval.dimension, shape: support.memoryShape, rng: &rng)
            }
            try bank.add(batch)
            filled += batch.count
        }
        try bank.checkpoint(force: true)
        let stats = try bank.statistics()
        let fillSeconds = now() - fillStart
        let segmenter = try RetrievalSegmenter(bank: bank, retrieval: retrieval, support: support)

        // Targets: a new image per query.
        var seed: UInt64 = 1
        func nextImage() throws -> (image: PNGImage, png: [UInt8]) {
            seed += 1
            let png = Self.targetPNG(seed: seed, size: size)
            return (try PNG.read(data: png, name: "target \(seed)"), png)
        }

        _ = try segmenter.segment(try nextImage().image, name: "warm-up", k: counts.max()!)
        struct Run { var wall: QueryStageSplit; var cpu: QueryStageSplit }
        var best: [Int: Run] = [:], totals: [Int: [Double]] = [:]
        for k in counts {
            for _ in 0..<repeats {
                let result = try segmenter.segment(try nextImage().image, name: "target", k: k)
                let run = Run(wall: QueryStageSplit(result.timings), cpu: QueryStageSplit(result.cpuTimings))
                totals[k, default: []].append(run.wall.total)
                if run.wall.total < best[k]?.wall.total ?? .infinity { best[k] = run }
            }
        }

        let pairRatios =
            pairs > 0
            ? try PrecisionPairs.run(ks: counts, pairs: pairs, restore: precision.precision) { k in
                QueryStageSplit(try segmenter.segment(try nextImage().image, name: "pair", k: k).timings).total
            } : [:]

        var served: [Int: (wall: Double, cpu: Double, all: [Double])] = [:]
        if server {
            let uploads = (bankPath as NSString).appendingPathComponent("uploads")
            let http = try SegmentationServer(
                segmenter: segmenter,
                configuration: ServerConfiguration(
                    host: "127.0.0.1", port: 0, k: counts[0], maxUploadBytes: 64 << 20, uploadsDirectory: uploads))
            let (ports, continuation) = AsyncStream<Int>.makeStream()
            let task = Task {
                defer { continuation.finish() }
                try await http.run(gracefulShutdownSignals: []) { continuation.yield($0) }
            }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else {
                try await task.value
                throw QueryBenchError(description: "the HTTP server did not start")
            }
            do {
                _ = try await LoopbackHTTP.post(
                    port: port, path: "/segment?k=\(counts.max()!)", body: try nextImage().png)
                for k in counts {
                    for _ in 0..<repeats {
                        let png = try nextImage().png
                        let start = now(), cpu = processCPUSeconds()
                        let reply = try await LoopbackHTTP.post(port: port, path: "/segment?k=\(k)", body: png)
                        let wall = now() - start, cpuSeconds = processCPUSeconds() - cpu
                        guard reply.status == 200 else {
                            throw QueryBenchError(
                                description:
                                    """
                                    POST /segment?k=\(k) answered \(reply.status): \
                                    \(String(decoding: reply.body, as: UTF8.self))
                                    """
                            )
                        }
                        var entry = served[k] ?? (.infinity, 0, [])
                        entry.all.append(wall)
                        if wall < entry.wall { (entry.wall, entry.cpu) = (wall, cpuSeconds) }
                        served[k] = entry
                    }
                }
            } catch {
                await http.shutdown()
                _ = try? await task.value
                throw error
            }
            await http.shutdown()
            try await task.value
        }

        // Report.
        print(BLASKernels.summary)
        let dino = retrieval.network.config
        print(
            """
            threads \(threads); target \(size)x\(size) gray PNG; SAM 2 input \(support.imageSize); DINOv2 \
            d=\(dino.hiddenSize) 
            """
                + """
                depth \(dino.depth) at \
                \(retrieval.inputSize)x\(retrieval.inputSize)\(dinov2 == nil ? " (random weights, in-process)" : "")
                """
        )
        print(
            """
            bank: \(stats.cases) synthetic cases (random memories, \(support.memoryShape) pointer, and random unit \
            \(retrieval.dimension)-d 
            """
                + """
                embeddings; no encoder ran), index \(stats.indexKind.rawValue), \
                \(String(format: "%.0f", Double(stats.diskBytes) / 1048576)) MiB on disk, 
                """
                + "filled in \(fmt(fillSeconds, 1)) s; memories read from the page cache (warm), not from a cold disk")
        if let torchVersion = torch?["torch"] as? String {
            print(
                "PyTorch \(torchVersion) (\(sweep.reference!)): \(torch?["cases"] as? Int ?? 0) embeddings searched, "
                    + """
                    \(torch?["threads"] as? Int ?? 0) threads, OMP_WAIT_POLICY \
                    \(torch?["ompWaitPolicy"] as? String ?? "?"), 
                    """
                        + """
                        target \(torch?["size"] as? Int ?? 0)x\(torch?["size"] as? Int ?? 0); supports' memories \
                        precomputed in RAM (not timed)
                        """
            )
        }
        print(
            """
            per k: the query with the smallest total of \(repeats); wall and process-CPU milliseconds; ratio = RAGSeg \
            / PyTorch
            """
        )
        let torchK = torch?["k"] as? [String: [String: Any]] ?? [:]
        for k in counts {
            guard let run = best[k] else { continue }
            let t = torchK[String(k)]
            func torchValue(_ key: String) -> Double? { t?[key] as? Double }
            print("")
            print(
                "k = \(k)   (totals of the \(repeats) runs: "
                    + (totals[k] ?? []).map { fmt($0) }.joined(separator: ", ") + " s)")
            print("stage                      wall ms   cpu ms | torch wall  torch cpu | wall ratio  cpu ratio")
            func row(_ name: String, _ wall: Double?, _ cpu: Double?, _ tw: Double?, _ tc: Double?) {
                func cell(_ x: Double?, _ width: Int, _ digits: Int = 1, scale: Double = 1e3) -> String {
                    pad(x.map { fmt($0 * scale, digits) } ?? "-", width)
                }
                let wallRatio = wall.flatMap { w in tw.flatMap { $0 > 0 ? w / $0 : nil } }
                let cpuRatio = cpu.flatMap { c in tc.flatMap { $0 > 0 ? c / $0 : nil } }
                print(
                    name.padding(toLength: 24, withPad: " ", startingAt: 0) + cell(wall, 10) + cell(cpu, 9) + " |"
                        + cell(tw, 11) + cell(tc, 11) + " |" + cell(wallRatio, 11, 2, scale: 1)
                        + cell(cpuRatio, 11, 2, scale: 1))
            }
            row("embed (DINOv2)", run.wall["embed"], run.cpu["embed"], torchValue("embed"), torchValue("embed:cpu"))
            row(
                "encode (SAM 2 image)", run.wall["encode"], run.cpu["encode"], torchValue("encode"),
                torchValue("encode:cpu"))
            row(
                "search (FAISS top-k)", run.wall["search"], run.cpu["search"], torchValue("search"),
                torchValue("search:cpu"))
            row("load (k memories)", run.wall["load"], run.cpu["load"], nil, nil)
            row("attend", run.wall["attend"], run.cpu["attend"], torchValue("attend"), torchValue("attend:cpu"))
            row("decode", run.wall["decode"], run.cpu["decode"], torchValue("decode"), torchValue("decode:cpu"))
            row("total (end to end)", run.wall.total, run.cpu.total, torchValue("total"), torchValue("total:cpu"))
            if let s = served[k] {
                row("server POST /segment", s.wall, s.cpu, nil, nil)
            }
            var notes = [
                String(
                    format: "search+load %.2f ms = %.3f%% of the total (target < 2%%: %@)",
                    run.wall.retrievalAndLoad * 1e3,
                    100 * run.wall.retrievalAndLoadShare, run.wall.retrievalAndLoadShare < 0.02 ? "met" : "NOT met")
            ]
            if let tw = torchValue("total") {
                notes.append(
                    String(
                        format: "total %.2fx PyTorch's wall, %@ CPU (target <= 0.5: %@)", run.wall.total / tw,
                        torchValue("total:cpu").map { String(format: "%.2fx", run.cpu.total / $0) } ?? "-",
                        run.wall.total / tw <= 0.5 ? "met" : "NOT met"))
            }
            if let s = served[k] {
                notes.append(
                    String(
                        format: "server: best %.3f s (runs %@ s); minus the best in-process total: %+.3f s "
                            + "(PNG decode, HTTP, mask PNG encode, plus run-to-run noise)",
                        s.wall, s.all.map { fmt($0) }.joined(separator: ", "), s.wall - run.wall.total))
            }
            for note in notes { print("  " + note) }
        }
        PrecisionPairs.report(pairRatios)
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        print("")
        print(
            String(
                format:
                    "ragseg: peak RSS %.0f MiB (models, bank pages read, server); process CPU %.1f s over %.1f s wall",
                Double(usage.ru_maxrss) / 1024, processCPUSeconds() - cpuStart, now() - wallStart))
        if let torch, let rss = torch["peakRSSMiB"] as? Double, let cpu = torch["cpuSeconds"] as? Double,
            let wall = torch["wallSeconds"] as? Double
        {
            print(String(format: "torch: peak RSS %.0f MiB; process CPU %.1f s over %.1f s wall", rss, cpu, wall))
        }
    }

    func readReference() throws -> [String: Any]? {
        guard let reference = sweep.reference else { return nil }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: reference)) } catch {
            throw QueryBenchError(description: "--reference \(reference): cannot read: \(error.localizedDescription)")
        }
        guard let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any], json["k"] is [String: Any]
        else {
            throw QueryBenchError(
                description: "--reference \(reference): expected the JSON object tools/bench_query_torch.py writes")
        }
        return json
    }

    /// A bank case of random content: unit embedding, bf16 memory values in [-2, 2), pointer in [-1, 1).
    static func syntheticCase(_ i: Int, dimension: Int, shape: MemoryShape, rng: inout SeededRandom) -> PreparedCase {
        var embedding = (0..<dimension).map { _ in rng.uniform() - 0.5 }
        let norm = embedding.reduce(0) { $0 + $1 * $1 }.squareRoot()
        embedding = embedding.map { $0 / norm }
        let memory = (0..<shape.memoryCount).map { _ in bfloat16Bits(4 * rng.uniform() - 2) }
        let pointer = (0..<shape.pointerDimension).map { _ in 2 * rng.uniform() - 1 }
        return PreparedCase(
            image: "synthetic/\(i).png", mask: "synthetic/\(i)_mask.png",
            contentHash: SHA256.hash(Array("bench query \(i)".utf8)), width: 512, height: 512,
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

    /// A gray "scan" as PNG bytes: smooth background, a bright textured ellipse placed by `seed`, noise.
    static func targetPNG(seed: UInt64, size: Int) -> [UInt8] {
        var rng = SeededRandom(state: seed)
        let s = Float(size)
        let cx = s * (0.3 + 0.4 * rng.uniform()), cy = s * (0.3 + 0.4 * rng.uniform())
        let rx = s * (0.1 + 0.15 * rng.uniform()), ry = s * (0.1 + 0.15 * rng.uniform())
        var pixels = [UInt8](repeating: 0, count: size * size)
        for y in 0..<size {
            for x in 0..<size {
                let u = (Float(x) - cx) / rx, v = (Float(y) - cy) / ry
                var value =
                    u * u + v * v <= 1 ? 170 + 20 * sin(u * 5) : 60 + 25 * sin(Float(x) / 37) * cos(Float(y) / 53)
                value += 24 * (rng.uniform() - 0.5)
                pixels[y * size + x] = UInt8(max(0, min(255, value)))
            }
        }
        return PNG.encodeGray8(pixels, width: size, height: size)
    }

    func time(_ body: () throws -> Void) rethrows -> (wall: Double, cpu: Double) {
        let start = now(), cpu = processCPUSeconds()
        try body()
        return (now() - start, processCPUSeconds() - cpu)
    }
}

struct QueryBenchError: Error, CustomStringConvertible {
    var description: String
}

/// A minimal HTTP/1.1 client over a blocking loopback socket (one request per connection): what a
/// client does, without a client library's own overhead in the timing.
enum LoopbackHTTP {
    struct Reply: Sendable {
        var status: Int
        var body: [UInt8]
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static func post(port: Int, path: String, body: [UInt8], contentType: String = "image/png") async throws -> Reply {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(
                    with: Result { try postBlocking(port: port, path: path, body: body, contentType: contentType) })
            }
        }
    }

    static func postBlocking(port: Int, path: String, body: [UInt8], contentType: String) throws -> Reply {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: errno \(errno)") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw Failure(description: "connect to 127.0.0.1:\(port): errno \(errno)") }
        let head =
            "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nContent-Type: \(contentType)\r\n"
            + "Content-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        let request = Array(head.utf8) + body
        var sent = 0
        while sent < request.count {
            let n = request[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw Failure(description: "send: errno \(errno)") }
            sent += n
        }
        // Read until the header's Content-Length is satisfied (or the server closes).
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var headerEnd: Int? = nil, contentLength: Int? = nil
        while true {
            if let end = headerEnd, let length = contentLength, reply.count >= end + length { break }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n >= 0 else { throw Failure(description: "recv: errno \(errno)") }
            if n == 0 { break }
            reply += buffer[0..<n]
            if headerEnd == nil, let range = reply.firstRange(of: Array("\r\n\r\n".utf8)) {
                headerEnd = range.upperBound
                let header = String(decoding: reply[..<range.lowerBound], as: UTF8.self).lowercased()
                for line in header.split(separator: "\r\n") where line.hasPrefix("content-length:") {
                    contentLength = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces))
                }
            }
        }
        guard let end = headerEnd else {
            throw Failure(description: "no HTTP header in the reply (\(reply.count) bytes)")
        }
        let statusLine = String(decoding: reply[..<end], as: UTF8.self).split(separator: "\r\n").first ?? ""
        let parts = statusLine.split(separator: " ")
        guard parts.count >= 2, let status = Int(parts[1]) else {
            throw Failure(description: "bad status line '\(statusLine)'")
        }
        return Reply(status: status, body: Array(reply[end...]))
    }
}

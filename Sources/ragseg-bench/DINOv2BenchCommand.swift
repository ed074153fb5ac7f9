import ArgumentParser
import DINOv2
import Dispatch
import Foundation
import RAGSegCommandOptions
import TensorCore

/// `ragseg-bench dinov2`: images/s of the DINOv2 encoder (random weights) beside PyTorch's in the same run.
struct BenchDINOv2: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dinov2",
        abstract: "Time the DINOv2 forward pass (ViT-S/14, ViT-B/14) at batch 1 and 8 and compare with PyTorch.",
        discussion: """
            Each case: one warm-up pass, then passes until --min-seconds have elapsed (at least 2); the best pass \
            is reported. GFLOP/s counts the GEMM work of the forward pass (DINOv2Config.flops) and is set against \
            a 1024³ sgemm timed in the same run. The PyTorch column runs tools/bench_dinov2_torch.py \
            (transformers Dinov2Model, same thread count) when --python has torch and transformers.
            """)

    @OptionGroup var precision: PrecisionOptions
    @Option(parsing: .upToNextOption, help: "Models to time: S, B, L.")
    var models = ["S", "B"]

    @Option(parsing: .upToNextOption, help: "Batch sizes.")
    var batches = [1, 8]

    @Option(help: "Input size (a multiple of 14).")
    var size = 224

    @Option(help: "Threads for BLAS and the parallel loops (PyTorch gets the same).")
    var threads = 2

    @Option(help: "Minimum timed seconds per case.")
    var minSeconds = 3.0

    @Option(help: "Python with torch + transformers (default: /tmp/refenv/bin/python if present, else python3).")
    var python: String?

    @Option(help: "The PyTorch timing script.")
    var torchScript = "tools/bench_dinov2_torch.py"

    @Flag(help: "Skip the PyTorch comparison.")
    var noTorch = false

    @Flag(
        inversion: .prefixedNo,
        help:
            "Also time both sides on one thread by CPU time, a measure of work that other processes' load barely moves."
    )
    var cpuTime = true

    func validate() throws {
        guard size > 0, size % 14 == 0 else { throw ValidationError("--size must be a positive multiple of 14") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        for m in models where BenchDINOv2.configs[m] == nil {
            throw ValidationError("unknown model '\(m)' (use S, B or L)")
        }
        guard !batches.isEmpty, batches.allSatisfy({ $0 >= 1 }) else {
            throw ValidationError("--batches must be positive integers")
        }
    }

    static let configs: [String: DINOv2Config] = ["S": .small, "B": .base, "L": .large]

    /// Best time of `body` after one warm-up, repeating until `minSeconds` of wall time (at least 2 runs).
    /// `cpu` times each run by this process's CPU time instead of wall time.
    func best(cpu: Bool = false, _ body: () throws -> Void) rethrows -> (seconds: Double, runs: Int) {
        func reading() -> Double { cpu ? processCPUSeconds() : now() }
        try body()
        var bestTime = Double.infinity, runs = 0
        let start = DispatchTime.now().uptimeNanoseconds
        repeat {
            let t0 = reading()
            try body()
            bestTime = min(bestTime, reading() - t0)
            runs += 1
        } while runs < 2 || Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 < minSeconds
        return (bestTime, runs)
    }

    func run() throws {
        Threads.set(threads)
        // Reference throughput of the BLAS underneath, same threads, same run.
        let n = 1024
        let a = Tensor(shape: [n, n], data: (0..<(n * n)).map { Float(($0 * 7919) % 1000) / 1000 - 0.5 })
        let sgemm = 2 * Double(n * n * n) / best { _ = matmul(a, a) }.seconds / 1e9

        struct Row {
            var model: String; var batch: Int; var mode: String; var seconds: Double; var gflops: Double;
            var torch: Double?
        }
        var rows: [Row] = []
        for name in models {
            let config = BenchDINOv2.configs[name]!
            let model = DINOv2Model(randomWeights: config, seed: 1)
            for b in batches {
                let x = Tensor(
                    shape: [b, 3, size, size], data: (0..<(b * 3 * size * size)).map { Float($0 % 255) / 64 - 2 })
                // Batches also run image-parallel (one image group per core, single-threaded ops).
                for imageParallel in (b > 1 && threads > 1 ? [false, true] : [false]) {
                    let timed = try best {
                        _ = imageParallel ? try model.forwardImageParallel(x) : try model.forward(x)
                    }
                    let perImage = timed.seconds / Double(b)
                    let mode = imageParallel ? "images" : "ops"
                    rows.append(
                        Row(
                            model: name, batch: b, mode: mode, seconds: perImage,
                            gflops: config.flops(height: size, width: size) / perImage / 1e9, torch: nil))
                    print(
                        String(
                            format: "ragseg ViT-%@/14 batch %d (%@ parallel): %.1f ms/image (%d runs)", name, b, mode,
                            perImage * 1e3, timed.runs))
                }
            }
        }
        // One thread, CPU time: the work per image, nearly independent of what else the machine runs.
        var cpuRows: [Row] = []
        if cpuTime {
            Threads.set(1)
            for name in models {
                let config = BenchDINOv2.configs[name]!
                let model = DINOv2Model(randomWeights: config, seed: 1)
                for b in batches {
                    let x = Tensor(
                        shape: [b, 3, size, size], data: (0..<(b * 3 * size * size)).map { Float($0 % 255) / 64 - 2 })
                    let perImage = try best(cpu: true) { _ = try model.forward(x) }.seconds / Double(b)
                    cpuRows.append(
                        Row(
                            model: name, batch: b, mode: "1 thread", seconds: perImage,
                            gflops: config.flops(height: size, width: size) / perImage / 1e9, torch: nil))
                    print(
                        String(
                            format: "ragseg ViT-%@/14 batch %d, 1 thread: %.1f ms/image CPU", name, b, perImage * 1e3))
                }
            }
            Threads.set(threads)
        }
        var torchNote = "PyTorch: skipped (--no-torch)"
        if !noTorch {
            let (results, note) = runTorch(threads: threads, cpu: false)
            torchNote = note
            for i in rows.indices { rows[i].torch = results["\(rows[i].model)/\(rows[i].batch)"] }
            if cpuTime {
                let (cpuResults, _) = runTorch(threads: 1, cpu: true)
                for i in cpuRows.indices { cpuRows[i].torch = cpuResults["\(cpuRows[i].model)/\(cpuRows[i].batch)"] }
            }
        }

        print("")
        print(BLASKernels.summary)
        print(
            """
            DINOv2 forward, \(size)x\(size), \(threads) thread\(threads == 1 ? "" : "s"), random weights; sgemm \
            1024^3: \(String(format: "%.1f", sgemm)) GFLOP/s
            """
        )
        print(
            """
            model      batch  parallel  ragseg img/s  ms/img   GFLOP/s  %sgemm | torch img/s  ms/img | torch time / ours
            """
        )
        for r in rows {
            let mode = r.mode.padding(toLength: 8, withPad: " ", startingAt: 0)
            var line = String(
                format: "ViT-%@/14  %5d  %@  %12.2f  %6.1f  %8.1f  %5.0f%% |", r.model, r.batch, mode, 1 / r.seconds,
                r.seconds * 1e3, r.gflops, 100 * r.gflops / sgemm)
            if let t = r.torch {
                line += String(format: " %11.2f  %6.1f | %6.2fx", 1 / t, t * 1e3, t / r.seconds)
            } else {
                line += "           -       - |      -"
            }
            print(line)
        }
        print(
            """
            parallel: ops = each GEMM/loop split over the threads; images = one image group per thread, \
            single-threaded ops
            """
        )
        if !cpuRows.isEmpty {
            print("")
            print("Same work on 1 thread, timed by process CPU time (barely moved by other processes' load)")
            print("model      batch  ragseg CPU ms/img  GFLOP/s | torch CPU ms/img | torch / ours")
            for r in cpuRows {
                var line = String(
                    format: "ViT-%@/14  %5d  %17.1f  %7.1f |", r.model, r.batch, r.seconds * 1e3, r.gflops)
                line +=
                    r.torch.map { String(format: " %16.1f | %6.2fx", $0 * 1e3, $0 / r.seconds) }
                    ?? "                - |      -"
                print(line)
            }
        }
        print(torchNote)
    }

    /// Runs the PyTorch script; returns seconds/image keyed "model/batch", and a line saying what ran.
    func runTorch(threads: Int, cpu: Bool) -> ([String: Double], String) {
        let interpreter =
            python
            ?? (FileManager.default.isExecutableFile(atPath: "/tmp/refenv/bin/python")
                ? "/tmp/refenv/bin/python" : "python3")
        guard FileManager.default.fileExists(atPath: torchScript) else {
            return (
                [:], "PyTorch: not run (\(torchScript) not found; run from the repository root or pass --torch-script)"
            )
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments =
            [
                interpreter, torchScript, "--models", models.joined(separator: ","),
                "--batches", batches.map(String.init).joined(separator: ","), "--size", "\(size)",
                "--threads", "\(threads)", "--min-seconds", "\(minSeconds)",
            ] + (cpu ? ["--cpu-time"] : [])
        let pipe = Pipe(), errors = Pipe()
        process.standardOutput = pipe
        process.standardError = errors
        do { try process.run() } catch { return ([:], "PyTorch: could not start \(interpreter): \(error)") }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        let errorText = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let last = errorText.split(separator: "\n").last.map(String.init) ?? ""
            return ([:], "PyTorch: not available with \(interpreter) (exit \(process.terminationStatus)) \(last)")
        }
        var results: [String: Double] = [:]
        var attention = "?"
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                let model = object["model"] as? String, let batch = object["batch"] as? Int,
                let seconds = object["seconds_per_image"] as? Double
            else { continue }
            results["\(model)/\(batch)"] = seconds
            attention = object["attn"] as? String ?? attention
        }
        return (
            results,
            """
            PyTorch: \(interpreter) \(torchScript) (transformers Dinov2Model, attention \(attention), \(threads) \
            threads)
            """
        )
    }
}

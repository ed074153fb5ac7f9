import ArgumentParser
import Dispatch
import Foundation
import RAGSegCommandOptions
import TensorCore

/// `ragseg-bench ops`: GFLOP/s of the tensor-core kernels at the shapes SAM 2 runs, relative to plain sgemm.
struct BenchOps: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ops",
        abstract: "Time sgemm, conv2d and attention at SAM 2 shapes and report GFLOP/s and % of sgemm.")

    @Option(help: "Threads for BLAS and the parallel loops.")
    var threads: Int = Threads.count

    @Option(help: "Timed repetitions per op (the best is reported).")
    var repeats: Int = 3

    /// The precision of the ops' products (the sgemm reference and the engine table are what they say).
    @OptionGroup var precision: PrecisionOptions

    func run() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
        // Each op's "% sgemm" is against sgemm 1024³ timed in alternation with that op (best of each),
        // so load from other processes on a shared machine skews both numbers alike.
        var rows: [(name: String, flops: Double, seconds: Double, sgemmRate: Double)] = []

        // sgemm 1024³ with 1 and 2 threads; the reference for the % column uses --threads.
        let n = 1024
        let a = random([n, n], seed: 1), b = random([n, n], seed: 2)
        let sgemmFlops = 2 * Double(n * n * n)
        var reference = 0.0
        for t in Array(Set([1, 2, threads])).sorted() {
            Threads.set(t)
            let s = best { _ = matmul(a, b) }
            if t == threads { reference = sgemmFlops / s }
            rows.append(("sgemm 1024^3, \(t) thread\(t == 1 ? "" : "s")", sgemmFlops, s, 0))
        }
        for i in rows.indices { rows[i].sgemmRate = reference }
        Threads.set(threads)
        func timed(_ body: () -> Void) -> (Double, Double) {
            bestAlternating(body) { _ = matmul(a, b) }
        }
        func add(_ name: String, _ flops: Double, _ timing: (Double, Double)) {
            rows.append((name, flops, timing.0, sgemmFlops / timing.1))
        }

        // SAM 2 (Hiera) patch embedding: 3 -> 96, 7x7, stride 4, padding 3 on a 1024² image.
        let image = random([1, 3, 1024, 1024], seed: 3), patchW = random([96, 3, 7, 7], seed: 4)
        add(
            "conv 3->96 7x7 s4 p3, 1024^2", 2.0 * 96 * 147 * 256 * 256,
            timed { _ = conv2d(image, weight: patchW, bias: nil, stride: 4, padding: 3) })
        // Dense 3x3 conv at the 64x64 feature level.
        let feature = random([1, 256, 64, 64], seed: 5), w3 = random([256, 256, 3, 3], seed: 6)
        add(
            "conv 256->256 3x3 p1, 64^2", 2.0 * 256 * 2304 * 4096,
            timed { _ = conv2d(feature, weight: w3, bias: nil, padding: 1) })
        // Depthwise 7x7 as in the memory encoder's CXBlock.
        let dw = random([256, 1, 7, 7], seed: 7)
        add(
            "conv depthwise 7x7 256ch, 64^2", 2.0 * 256 * 49 * 4096,
            timed { _ = conv2d(feature, weight: dw, bias: nil, padding: 3, groups: 256) })
        // Linear at the token level: 4096 tokens, 256 -> 2048.
        // As a model's layer calls it, so that --precision bf16 runs it in bf16 (its weight rounded once).
        let tokens = random([4096, 256], seed: 8), fc = Linear(weight: random([2048, 256], seed: 9), bias: nil)
        add("linear 4096x256 -> 2048", 2.0 * 4096 * 256 * 2048, timed { _ = fc(tokens) })
        // Attention: image self-attention (4096 x 4096) and memory cross-attention (4096 x 8192), 256 ch, 1 head.
        for keys in [4096, 8192] {
            let q = random([4096, 256], seed: 10), k = random([keys, 256], seed: 11), v = random([keys, 256], seed: 12)
            add(
                "attention 4096x\(keys), 256ch, 1 head", 2.0 * 2 * 4096 * Double(keys) * 256,
                timed { _ = attention(query: q, key: k, value: v, heads: 1) })
        }

        print(BLASKernels.summary)
        printEngineTable()
        print(
            """
            threads: \(threads), best of \(repeats); % sgemm = vs sgemm 1024^3 at \(threads) thread(s), timed \
            alternately with each op
            """
        )
        print(
            pad("op", 38) + pad("ms", 10, right: true) + pad("GFLOP/s", 10, right: true)
                + pad("% sgemm", 10, right: true))
        for row in rows {
            let gflops = row.flops / row.seconds / 1e9
            print(
                pad(row.name, 38) + pad(fixed(row.seconds * 1e3, 1), 10, right: true)
                    + pad(fixed(gflops, 1), 10, right: true)
                    + pad(fixed(100 * gflops * 1e9 / row.sgemmRate, 0), 10, right: true))
        }
    }

    /// One core's GFLOP/s of OpenBLAS sgemm, oneDNN f32 and oneDNN bf16 (bf16 inputs, fp32 accumulation and
    /// output) at the models' product shapes, C = A · Bᵀ as a linear layer computes it. Single-threaded: RAGSeg
    /// splits products over its workers itself, each running one such call.
    private func printEngineTable() {
        let threads = Threads.count
        Threads.set(1)
        defer { Threads.set(threads) }
        print("oneDNN \(OneDNN.version), ISA \(OneDNN.isaName); one thread, C[m,n] = A[m,k] · B[n,k]ᵀ, GFLOP/s")
        let shapes = [
            (2048, 2048, 2048), (4096, 256, 256), (16384, 384, 96), (4096, 1024, 256), (4096, 256, 1024),
            (16384, 96, 384), (1024, 3072, 768), (256, 4096, 256),
        ]
        print(
            pad("m x n x k", 20) + pad("sgemm", 9, right: true) + pad("dnnl f32", 10, right: true)
                + pad("dnnl bf16", 11, right: true) + "  bf16 kernel")
        for (m, n, k) in shapes {
            let a = random([m, k], seed: 21), b = random([n, k], seed: 22)
            let a16 = bfloat16Array(a), b16 = bfloat16Array(b)
            var c = [Float](repeating: 0, count: m * n)
            let flops = 2 * Double(m) * Double(n) * Double(k)
            var rates = [Double]()
            for engine in 0..<3 {
                let seconds = best {
                    a.withUnsafeBufferPointer { pa in
                        b.withUnsafeBufferPointer { pb in
                            c.withUnsafeMutableBufferPointer { pc in
                                switch engine {
                                case 0:
                                    gemm(
                                        transA: false, transB: true, m: m, n: n, k: k, a: pa.baseAddress!, lda: k,
                                        b: pb.baseAddress!, ldb: k, c: pc.baseAddress!, ldc: n)
                                case 1:
                                    OneDNN.matmul(
                                        .f32, transA: false, transB: true, m: m, n: n, k: k, a: pa.baseAddress!,
                                        lda: k, b: pb.baseAddress!, ldb: k, c: pc.baseAddress!, ldc: n)
                                default:
                                    OneDNN.matmul(
                                        .bf16, transA: false, transB: true, m: m, n: n, k: k, a: a16, lda: k,
                                        b: b16, ldb: k, c: pc.baseAddress!, ldc: n)
                                }
                            }
                        }
                    }
                }
                rates.append(flops / seconds / 1e9)
            }
            let kernel =
                (try? OneDNN.implementation(bf16: true, transA: false, transB: true, m: m, n: n, k: k)) ?? "?"
            print(
                pad("\(m)x\(n)x\(k)", 20) + pad(fixed(rates[0], 0), 9, right: true)
                    + pad(fixed(rates[1], 0), 10, right: true) + pad(fixed(rates[2], 0), 11, right: true) + "  "
                    + kernel)
        }
    }

    /// Best wall times of `body` and `reference`, run alternately `repeats` times after a warm-up of each.
    private func bestAlternating(_ body: () -> Void, reference: () -> Void) -> (Double, Double) {
        body()
        reference()
        var fastest = (Double.infinity, Double.infinity)
        for _ in 0..<repeats {
            var start = DispatchTime.now().uptimeNanoseconds
            body()
            fastest.0 = min(fastest.0, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            start = DispatchTime.now().uptimeNanoseconds
            reference()
            fastest.1 = min(fastest.1, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return fastest
    }

    /// Best wall time of `repeats` runs after one warm-up run.
    private func best(_ body: () -> Void) -> Double {
        body()
        var fastest = Double.infinity
        for _ in 0..<repeats {
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            fastest = min(fastest, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return fastest
    }

    private func random(_ shape: [Int], seed: UInt64) -> Tensor {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        return Tensor(shape: shape) { p in
            for i in p.indices {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17
                p[i] = Float(state >> 40) / Float(1 << 24) - 0.5
            }
        }
    }

    private func pad(_ s: String, _ width: Int, right: Bool = false) -> String {
        let fill = String(repeating: " ", count: max(0, width - s.count))
        return right ? fill + s : s + fill
    }

    private func fixed(_ x: Double, _ digits: Int) -> String {
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let v = (x * scale).rounded() / scale
        return digits == 0 ? String(Int(v)) : String(v)
    }
}

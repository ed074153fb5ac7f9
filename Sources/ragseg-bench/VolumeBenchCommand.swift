// `ragseg-bench volume`: slices per second of `segment --index` on a synthetic 512x512xN volume, the
// per-slice stage split beside one 2-D query of the same size, and peak RSS. The volume path runs the
// product's own call (VolumeSegmentation: read, slice, retrieve and segment per slice, assemble, write); the
// bank is synthetic as in `ragseg-bench query`. Run it once per N (peak RSS is per process). A benchmark,
// not a test.
import ArgumentParser
import DINOv2
import Evaluation
import Foundation
import RAGSegCommandOptions
import RAGSegIO
import RAGSegPipeline
import SAM2
import SupportBank
import TensorCore

struct VolumeBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "volume",
        abstract: "Benchmark volume segmentation: slices/s, per-slice stages, peak RSS for a 512x512xN volume.",
        discussion: """
            Example (random sam2.1 tiny weights from tools/bench_query_torch.py --write-weights):
              ragseg-bench volume --sam2 /tmp/tiny_sam2.safetensors --slices 100 --segment 0:8 --threads 2
              ragseg-bench volume --sam2 /tmp/tiny_sam2.safetensors --slices 400 --segment 0:8 --threads 2
              ragseg-bench volume --sam2 /tmp/tiny_sam2.safetensors --slices 100 --segment 0:8 --precision bf16
            The volume is int16 CT-like (a body, an organ, noise), --size x --size x --slices, written as .nii.gz \
            in --scratch (slice by slice) and read back in place (NIfTI.open: inflated into an unlinked \
            temporary file in $TMPDIR and mapped); --segment A:B limits the slices segmented (all by default). \
            Peak RSS (getrusage ru_maxrss) holds the models and one slice's work: neither the volume nor its \
            label volume is ever held in memory, so it must not grow with N or with the slices segmented.
            """)

    @Option(name: .customLong("sam2"), help: "SAM 2 checkpoint (.safetensors).")
    var sam2: String

    @Option(
        name: .customLong("dinov2"), help: "DINOv2 weights (default: ViT-S/14 with random weights made in-process).")
    var dinov2: String?

    @Option(help: "Slices N of the volume.") var slices = 100
    @Option(help: "In-plane size of the volume.") var size = 512
    @Option(help: "Slices to segment, A:B (default: all).") var segment: String?
    @Option(name: .customLong("k"), help: "Supports per slice.") var k = 4
    @Option(help: "Synthetic cases in the bank.") var cases = 200
    @Option(help: "Threads for BLAS and the tensor core.") var threads = 2
    @Option(help: "Folder for the temporary bank and volume.") var scratch = NSTemporaryDirectory()
    @OptionGroup var precision: PrecisionOptions

    func run() throws {
        Threads.set(threads)
        let range = try segment.map(VolumeQueryOptions.sliceRange)
        print("cpu: \(Self.cpuModel()); threads \(threads); precision \(Precision.current)")
        let support = try SAM2Checkpoint.supportEncoder(path: sam2)
        let retrieval = try benchRetrievalEncoder(dinov2)
        let work = (scratch as NSString).appendingPathComponent("ragseg-bench-volume-\(getpid())")
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        var metadata = BankMetadata(
            retrievalModel: retrieval.model, supportModel: support.model, embeddingDimension: retrieval.dimension,
            memoryShape: support.memoryShape,
            preprocessing: retrieval.preprocessing.merging(support.preprocessing) { a, _ in a }, labels: ["object"])
        metadata.volumeSettings = VolumeSettings(axis: .axial, intensity: .ctDefault)
        let bank = try SupportBank.create(at: (work as NSString).appendingPathComponent("bank"), metadata: metadata)
        var rng = SeededRandom(state: 7)
        for start in stride(from: 0, to: cases, by: 64) {
            try bank.add(
                (start..<min(cases, start + 64)).map {
                    QueryBenchCommand.syntheticCase(
                        $0, dimension: retrieval.dimension, shape: support.memoryShape, rng: &rng)
                })
        }
        try bank.checkpoint(force: true)
        let segmenter = try RetrievalSegmenter(bank: bank, retrieval: retrieval, support: support)
        let volumePath = (work as NSString).appendingPathComponent("scan.nii.gz")
        try Self.writeSyntheticVolume(size: size, slices: slices, to: volumePath)
        let rssBefore = Self.peakRSSMiB()

        // One 2-D query of a slice-sized image, for comparison (warm: the models have run once before it).
        let query = try VolumeSegmentation(
            bank: bank.metadata, bankPath: bank.path, selection: .all, k: k, sliceRange: range)
        let first = range?.lowerBound ?? 0
        let slice = try VolumeSliceImages(
            try NIfTI.open(volumePath).intensities(frame: nil, name: volumePath), axis: .axial, mapping: .ctDefault,
            name: volumePath
        ).image(first)
        // SAM 2 keeps the last image's features: the warm-up and the 2-D query use images no slice equals
        // (the slice's pixels rotated and reversed), so neither they nor the volume run skip the encoder.
        var warmUp = slice, probe = slice
        warmUp.pixels = Array(slice.pixels.dropFirst() + slice.pixels.prefix(1))
        probe.pixels = slice.pixels.reversed()
        _ = try segmenter.segment(warmUp, name: "warm-up", k: k)
        let twoD = QueryStageSplit(try segmenter.segment(probe, name: "2-D query", k: k).timings)

        let start = now()
        let image = try NIfTI.open(volumePath)
        let readSeconds = now() - start
        let result = try query.run(image, name: volumePath, segmenter: segmenter)
        let writeStart = now()
        try result.output.write(to: (work as NSString).appendingPathComponent("labels.nii.gz"))
        let writeSeconds = now() - writeStart
        let total = now() - start
        let report = result.report
        let segmented = report.slices.count
        print("volume \(size)x\(size)x\(slices) int16; \(segmented) slices segmented (k = \(k), \(cases) bank cases)")
        print(
            "read \(fmt(readSeconds)) s, prepare \(fmt(report.seconds["prepare"] ?? 0)) s, segment "
                + "\(fmt(report.seconds["segment"] ?? 0)) s, assemble \(fmt(report.seconds["assemble"] ?? 0)) s, "
                + "write \(fmt(writeSeconds)) s, total \(fmt(total)) s")
        print(
            String(
                format: "slices/s: %.3f (segment only), %.3f (end to end)",
                Double(segmented) / (report.seconds["segment"] ?? .infinity), Double(segmented) / total))
        print("stage       per slice ms   2-D query ms")
        for stage in QueryStage.allCases {
            let perSlice = (report.stageSeconds[stage] ?? 0) / Double(max(segmented, 1))
            print(
                stage.rawValue.padding(toLength: 10, withPad: " ", startingAt: 0)
                    + pad(fmt(perSlice * 1e3, 1), 14) + pad(fmt(twoD[stage.rawValue] * 1e3, 1), 15))
        }
        let voxelMiB = Double(size * size * slices) / 1_048_576
        print(
            String(
                format: "peak RSS %.0f MiB after segmenting and writing (%.0f MiB before the volume was read); "
                    + "the volume has %.1f Mi voxels (int16 file, read in place)", Self.peakRSSMiB(), rssBefore,
                voxelMiB))
        // 3-D metrics at this size (a plane at a time, as eval scores): the organ (> 80 HU) against itself
        // shifted 3 voxels along i and 1 along k.
        let intensities = try image.intensities(frame: nil, name: volumePath)
        let shape = image.header.spatialShape
        let plane = shape[0] * shape[1]
        func organ(_ k: Int) -> [Bool] { intensities.values((k * plane)..<((k + 1) * plane)).map { $0 > 80 } }
        let metricStart = now()
        let scores = volumeScores(shape: shape, spacing: image.header.voxelSizeMillimetres) { k, p, t in
            let truth = organ(k)
            t = truth
            p = [Bool](repeating: false, count: plane)
            guard k > 0 else { return }
            let below = organ(k - 1)
            for j in 0..<shape[1] {
                for i in 3..<shape[0] where below[i - 3 + shape[0] * j] { p[i + shape[0] * j] = true }
            }
        }
        let metricSeconds = now() - metricStart
        let organVoxels = (0..<shape[2]).reduce(0) { $0 + organ($1).filter { $0 }.count }
        print(
            String(
                format: "3-D Dice/IoU/HD95 of a %d-voxel organ: %.2f s (Dice %.4f, HD95 %.2f mm)", organVoxels,
                metricSeconds, scores.dice, scores.hd95 ?? -1))
        print(String(format: "peak RSS %.0f MiB after the metrics", Self.peakRSSMiB()))
    }

    /// A CT-like int16 volume: air, a body cylinder, an organ ellipsoid, noise; 0.8 x 0.8 x 2 mm, axial;
    /// written a slice at a time.
    static func writeSyntheticVolume(size: Int, slices: Int, to path: String) throws {
        var header = NIfTIHeader(shape: [size, size, slices], datatype: .int16)
        let affine = Affine(rows: [[-0.8, 0, 0, 200], [0, -0.8, 0, 200], [0, 0, 2, -Double(slices)]])
        header.setSform(affine, code: 1)
        header.setQform(affine, code: 1)
        var rng = SeededRandom(state: 3)
        let c = Double(size) / 2
        try NIfTI.write(header: header, to: path) { emit in
            var bytes = [UInt8]()
            for k in 0..<slices {
                bytes.removeAll(keepingCapacity: true)
                let z = (Double(k) / Double(max(slices - 1, 1)) - 0.5) * 2
                for j in 0..<size {
                    for i in 0..<size {
                        let x = (Double(i) - c) / c, y = (Double(j) - c) / c
                        var v = -1000.0
                        if x * x + y * y < 0.8 { v = 40 }
                        if (x - 0.2) * (x - 0.2) / 0.09 + y * y / 0.16 + z * z / 0.5 < 1 { v = 120 }
                        withUnsafeBytes(of: Int16(v + 20 * (rng.unit() - 0.5)).littleEndian) {
                            bytes.append(contentsOf: $0)
                        }
                    }
                }
                try emit(bytes)
            }
        }
    }

    static func peakRSSMiB() -> Double {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        return Double(usage.ru_maxrss) / 1024
    }

    static func cpuModel() -> String {
        let text = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let line = text.split(separator: "\n").first { $0.hasPrefix("model name") }
        return line.map { String($0.split(separator: ":", maxSplits: 1)[1]).trimmingCharacters(in: .whitespaces) }
            ?? "unknown"
    }
}

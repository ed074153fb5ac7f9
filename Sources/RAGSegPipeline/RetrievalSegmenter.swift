// The query path of RAGSeg: DINOv2 embedding -> nearest cases in the bank -> their stored SAM 2
// memories -> SAM 2 image encoder on the target -> memory attention -> mask decoder. Supports are never
// re-encoded: only the target image goes through the networks.
import Dispatch
import Foundation
import RAGSegIO
import SAM2
import SupportBank
import TensorCore

public struct RetrievalSegmenterError: Error, CustomStringConvertible, Sendable {
    public let path: String
    public let message: String
    public var description: String { "\(path): \(message)" }
}

/// The timed stages of one query, in the order they run; the raw values are the keys of the JSON reports.
public enum QueryStage: String, CaseIterable, Codable, CodingKey, Sendable {
    /// DINOv2 embedding of the target.
    case embed
    /// SAM 2 image encoder on the target.
    case encode
    /// FAISS top-k (+ record filtering).
    case search
    /// The k memories read from LMDB.
    case load
    /// Memory-bank assembly + memory attention.
    case attend
    /// Mask decoder (+ refinement with a prompt) + resize to the image.
    case decode
    /// The whole call.
    case total

    /// The stage SAM2MemoryModel.segment names when it reports one done ("attend", "decode").
    init(memoryModelStage name: String) {
        guard let stage = QueryStage(rawValue: name) else {
            preconditionFailure("SAM 2 reported an unknown stage '\(name)'")
        }
        self = stage
    }
}

/// One target's result: what was retrieved, what SAM 2 made of it, and where the time went.
public struct RetrievalSegmentation: Sendable {
    /// Retrieved cases in support order (most similar first), with their cosine similarities.
    public var supports: [SearchHit]
    public var label: Int
    public var segmentation: SAM2Segmentation
    /// Wall seconds per stage, in `stageOrder` (`QueryStage` says what each one covers).
    public var timings: [(stage: QueryStage, seconds: Double)]
    /// Process CPU seconds (all threads) of the same stages: a steadier measure of the work than wall time
    /// on a shared machine.
    public var cpuTimings: [(stage: QueryStage, seconds: Double)]

    public static let stageOrder = QueryStage.allCases

    /// Binary mask at the input size: logits > 0.
    public var mask: [Bool] { segmentation.logits.data.map { $0 > 0 } }

    /// The retrieved ids for log lines, "#3 #8(empty)": (empty) marks an empty-mask memory.
    public var retrievedSummary: String {
        supports.map { "#\($0.id)" + ($0.record.labels.contains(label) ? "" : "(empty)") }.joined(separator: " ")
    }
}

/// Seconds elapsed since `t`.
func seconds(since t: DispatchTime) -> Double {
    Double(DispatchTime.now().uptimeNanoseconds - t.uptimeNanoseconds) / 1e9
}

/// CPU seconds this process has used so far, all threads together.
public func processCPUSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

/// Wall and process-CPU time per stage of one call: `mark(stage)` closes the stage that began at the last mark.
struct StageClock {
    private(set) var wall: [(stage: QueryStage, seconds: Double)] = []
    private(set) var cpu: [(stage: QueryStage, seconds: Double)] = []
    private let start = DispatchTime.now(), startCPU = processCPUSeconds()
    private var last = DispatchTime.now(), lastCPU = processCPUSeconds()

    mutating func mark(_ stage: QueryStage) {
        let cpuNow = processCPUSeconds()
        wall.append((stage, seconds(since: last)))
        cpu.append((stage, cpuNow - lastCPU))
        last = DispatchTime.now()
        lastCPU = processCPUSeconds()
    }

    mutating func finish() {
        wall.append((.total, seconds(since: start)))
        cpu.append((.total, processCPUSeconds() - startCPU))
    }
}

public final class RetrievalSegmenter: @unchecked Sendable {
    public let bank: SupportBank
    public let retrieval: DINOv2RetrievalEncoder
    public let support: SAM2SupportEncoder

    /// Checks that the bank was built with exactly these weights (SHA-256) before anything is searched.
    public init(bank: SupportBank, retrieval: DINOv2RetrievalEncoder, support: SAM2SupportEncoder) throws {
        try bank.requireModels(retrieval: retrieval.model, support: support.model)
        guard bank.metadata.memoryShape == support.memoryShape else {
            throw RetrievalSegmenterError(
                path: bank.path,
                message:
                    "bank stores \(bank.metadata.memoryShape) memories, the SAM 2 model makes \(support.memoryShape)")
        }
        self.bank = bank
        self.retrieval = retrieval
        self.support = support
    }

    /// Segments `label` (1...L) in `image` from its `k` nearest bank cases: a case whose mask has the label
    /// supports with that label's memory, one without it with its empty-mask memory, so a target like the
    /// cases that lack the structure can come out empty. With `positiveOnly`, only cases whose mask has the
    /// label are retrieved. (Cases of format-1 banks have no empty-mask memory and are retrieved only for
    /// the labels they have.) Cases in `excluding` are never retrieved (leave-one-out evaluation). A
    /// non-empty `prompt` (clicks/box in the image's pixel coordinates) refines the memory-conditioned
    /// result (SAM2/Prompt.swift).
    public func segment(
        _ image: PNGImage, name: String, k: Int, label: Int = 1, positiveOnly: Bool = false,
        excluding: Set<UInt64> = [], prompt: SAM2Prompt? = nil
    ) throws -> RetrievalSegmentation {
        guard k > 0 else { throw RetrievalSegmenterError(path: name, message: "k must be at least 1") }
        if let prompt, !prompt.isEmpty {
            do { try prompt.validate(width: image.width, height: image.height) } catch let error as SAM2PromptError {
                throw RetrievalSegmenterError(path: name, message: error.message)
            }
        }
        var clock = StageClock()

        // The DINOv2 embedding and the SAM 2 image encoding of the target are independent, but they run one
        // after the other, each with every core: each one's GEMMs and loops already keep all workers busy, so
        // running both at once only shares the same cores. Measured on 2 cores (ragseg-bench query): together
        // they took 228 ms longer than in sequence with OpenBLAS's threads, and with one worker pool Dispatch
        // serializes nested parallel loops, so the encoder ran on one core (+650 ms).
        let query = try retrieval.embed(image)
        clock.mark(.embed)
        let targetFeatures = try support.features(image, name: name)
        clock.mark(.encode)

        // Over-fetch so that excluded cases and cases with no memory for this label can be skipped.
        func usable(_ record: CaseRecord) -> Bool {
            positiveOnly ? record.labels.contains(label) : record.memorySlot(for: label) != nil
        }
        var hits: [SearchHit] = []
        var fetch = k + excluding.count
        var total: Int? = nil  // bank size, looked up only when the first search falls short
        while true {
            hits = try bank.search(query, k: fetch).filter { !excluding.contains($0.id) && usable($0.record) }
            if hits.count >= k { break }
            let cases = try total ?? bank.statistics().cases
            total = cases
            if fetch >= cases { break }
            fetch = min(cases, fetch * 2 + 8)
        }
        hits = Array(hits.prefix(k))
        clock.mark(.search)
        guard !hits.isEmpty else {
            let which = positiveOnly ? "has label \(label)" : "has label \(label) or an empty-mask memory"
            throw RetrievalSegmenterError(
                path: bank.path, message: "no case in the bank \(which) (after excluding \(excluding.count))")
        }

        let memories = try hits.map { hit -> SupportMemory in
            guard let stored = try bank.supportMemory(for: hit.record, label: label) else {
                let what = hit.record.labels.contains(label) ? "lists label \(label)" : "records an empty-mask memory"
                throw RetrievalSegmenterError(
                    path: bank.path,
                    message: "case \(hit.id) \(what) but has no stored memory for it (run `ragseg index verify`)")
            }
            return stored
        }
        clock.mark(.load)

        let result = try support.sam2.segment(
            targetFeatures, supports: memories,
            outputSize: (height: image.height, width: image.width), prompt: prompt,
            stageDone: { clock.mark(QueryStage(memoryModelStage: $0)) })
        clock.finish()
        return RetrievalSegmentation(
            supports: hits, label: label, segmentation: result,
            timings: clock.wall, cpuTimings: clock.cpu)
    }
}

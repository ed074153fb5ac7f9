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

/// One target's result: what was retrieved, what SAM 2 made of it, and where the time went.
public struct RetrievalSegmentation: Sendable {
    /// Retrieved cases in support order (most similar first), with their cosine similarities.
    public var supports: [SearchHit]
    public var label: Int
    public var segmentation: SAM2Segmentation
    /// Seconds per stage: embed, search, load, encode (embed and encode run concurrently), attend+decode, total.
    public var timings: [(stage: String, seconds: Double)]

    /// Binary mask at the input size: logits > 0.
    public var mask: [Bool] { segmentation.logits.data.map { $0 > 0 } }
}

/// Seconds elapsed since `t`.
func seconds(since t: DispatchTime) -> Double { Double(DispatchTime.now().uptimeNanoseconds - t.uptimeNanoseconds) / 1e9 }

public final class RetrievalSegmenter: @unchecked Sendable {
    public let bank: SupportBank
    public let retrieval: DINOv2RetrievalEncoder
    public let support: SAM2SupportEncoder

    /// Checks that the bank was built with exactly these weights (SHA-256) before anything is searched.
    public init(bank: SupportBank, retrieval: DINOv2RetrievalEncoder, support: SAM2SupportEncoder) throws {
        try bank.requireModels(retrieval: retrieval.model, support: support.model)
        guard bank.metadata.memoryShape == support.memoryShape else {
            throw RetrievalSegmenterError(path: bank.path, message: "bank stores \(bank.metadata.memoryShape) memories, the SAM 2 model makes \(support.memoryShape)")
        }
        self.bank = bank
        self.retrieval = retrieval
        self.support = support
    }

    /// Segments `label` (1...L) in `image` from its `k` nearest bank cases that have that label;
    /// cases in `excluding` are never retrieved (leave-one-out evaluation). A non-empty `prompt` (clicks/box
    /// in the image's pixel coordinates) refines the memory-conditioned result (SAM2/Prompt.swift).
    public func segment(_ image: PNGImage, name: String, k: Int, label: Int = 1,
                        excluding: Set<UInt64> = [], prompt: SAM2Prompt? = nil) throws -> RetrievalSegmentation {
        guard k > 0 else { throw RetrievalSegmenterError(path: name, message: "k must be at least 1") }
        if let prompt, !prompt.isEmpty {
            do { try prompt.validate(width: image.width, height: image.height) } catch let error as SAM2PromptError {
                throw RetrievalSegmenterError(path: name, message: error.message)
            }
        }
        let start = DispatchTime.now()

        // The DINOv2 embedding and the SAM 2 image encoding of the target are independent: run both at once.
        nonisolated(unsafe) var embedding: Result<[Float], Error> = .failure(CancellationError())
        nonisolated(unsafe) var features: Result<SAM2FrameFeatures, Error> = .failure(CancellationError())
        nonisolated(unsafe) var embedSeconds = 0.0, encodeSeconds = 0.0
        DispatchQueue.concurrentPerform(iterations: 2) { job in
            let t = DispatchTime.now()
            if job == 0 {
                embedding = Result { try retrieval.embed(image) }
                embedSeconds = seconds(since: t)
            } else {
                features = Result { try support.features(image, name: name) }
                encodeSeconds = seconds(since: t)
            }
        }
        let query = try embedding.get()
        let targetFeatures = try features.get()

        // Over-fetch so that excluded cases and cases without this label can be skipped.
        var t = DispatchTime.now()
        var hits: [SearchHit] = []
        var fetch = k + excluding.count
        var total: Int? = nil  // bank size, looked up only when the first search falls short
        while true {
            hits = try bank.search(query, k: fetch).filter { !excluding.contains($0.id) && $0.record.labels.contains(label) }
            if hits.count >= k { break }
            let cases = try total ?? bank.statistics().cases
            total = cases
            if fetch >= cases { break }
            fetch = min(cases, fetch * 2 + 8)
        }
        hits = Array(hits.prefix(k))
        let searchSeconds = seconds(since: t)
        guard !hits.isEmpty else {
            throw RetrievalSegmenterError(path: bank.path, message: "no case in the bank has label \(label) (after excluding \(excluding.count))")
        }

        t = DispatchTime.now()
        let shape = bank.metadata.memoryShape
        let memories = try hits.map { hit -> SAM2.SupportMemory in
            guard let stored = try bank.memory(hit.id, label: label) else {
                throw RetrievalSegmenterError(path: bank.path, message: "case \(hit.id) lists label \(label) but has no stored memory for it (run `ragseg index verify`)")
            }
            return SAM2.SupportMemory(bank: stored, shape: shape)
        }
        let loadSeconds = seconds(since: t)

        t = DispatchTime.now()
        let result = try support.memoryModel.segment(targetFeatures, supports: memories,
                                                     outputSize: (height: image.height, width: image.width), prompt: prompt)
        let decodeSeconds = seconds(since: t)
        return RetrievalSegmentation(
            supports: hits, label: label, segmentation: result,
            timings: [("embed", embedSeconds), ("search", searchSeconds), ("load", loadSeconds),
                      ("encode", encodeSeconds), ("attend+decode", decodeSeconds), ("total", seconds(since: start))])
    }
}

// The JSON report of one segmented image: what `ragseg segment --index --json` prints per target and
// `POST /segment?format=json` answers. One Codable type, encoded with the same settings (`QueryReport.json`),
// so the two documents cannot drift apart; each front end fills only its own optional fields.
import Foundation
import SAM2
import SupportBank

public struct QueryReport: Codable, Sendable, Equatable {
    /// `segment`: the target file, and the mask written (or, with --mask-per-label, label name -> file).
    public var file: String?
    public var mask: String?
    public var masks: [String: String]?
    public var width: Int
    public var height: Int
    /// `POST /segment`: supports per label, seconds waited for the model queue, and the object pixels of
    /// the returned mask.
    public var k: Int?
    public var queueSeconds: Double?
    public var foregroundPixels: Int?
    /// One entry per segmented label, in the bank's label order.
    public var labels: [LabelReport]
    /// The points/box that refined the result, when given.
    public var prompt: PromptReport?

    public init(width: Int, height: Int, labels: [LabelReport], prompt: PromptReport? = nil) {
        self.width = width
        self.height = height
        self.labels = labels
        self.prompt = prompt
    }

    /// JSON with the keys sorted, as every RAGSeg report is written; `pretty` adds line breaks and
    /// indentation (the command line's choice; the server answers compact JSON).
    public static func json<T: Encodable>(_ value: T, pretty: Bool) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys] : [.sortedKeys]
        return try encoder.encode(value)
    }
}

/// One label's part of a query: the supports retrieved, SAM 2's scores, and the time per stage.
public struct LabelReport: Codable, Sendable, Equatable {
    public var label: String
    /// Retrieved cases in support order (most similar first).
    public var retrieved: [RetrievedCase]
    /// SAM 2's predicted IoU of each output mask, and the one chosen.
    public var iou: [Double]
    public var chosen: Int
    public var objectScore: Double
    /// Pixels of this label's own mask (logits > 0).
    public var foregroundPixels: Int
    public var seconds: StageSeconds

    public init(label: String, result r: RetrievalSegmentation) {
        let s = r.segmentation
        self.label = label
        retrieved = r.supports.map {
            RetrievedCase(
                id: $0.id, similarity: Double($0.score), image: $0.record.image,
                hasLabel: $0.record.labels.contains(r.label))
        }
        iou = s.iou.map(Double.init)
        chosen = s.chosen
        objectScore = Double(s.objectScore)
        foregroundPixels = s.logits.data.reduce(0) { $0 + ($1 > 0 ? 1 : 0) }
        seconds = StageSeconds(r.timings)
    }
}

/// A retrieved case: its id, cosine similarity and image, and whether its mask has the label (false:
/// its empty-mask memory was the support).
public struct RetrievedCase: Codable, Sendable, Equatable {
    public var id: UInt64
    public var similarity: Double
    public var image: String
    public var hasLabel: Bool
}

/// Wall seconds per stage, written as {"attend": s, "decode": s, ...} (keys: `QueryStage` raw values).
public struct StageSeconds: Codable, Sendable, Equatable {
    public var seconds: [QueryStage: Double]

    public init(_ stages: [(stage: QueryStage, seconds: Double)]) {
        seconds = Dictionary(stages.map { ($0.stage, $0.seconds) }, uniquingKeysWith: { first, _ in first })
    }

    public subscript(_ stage: QueryStage) -> Double? { seconds[stage] }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: QueryStage.self)
        seconds = try Dictionary(
            uniqueKeysWithValues: container.allKeys.map { ($0, try container.decode(Double.self, forKey: $0)) })
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: QueryStage.self)
        for stage in QueryStage.allCases { if let s = seconds[stage] { try container.encode(s, forKey: stage) } }
    }
}

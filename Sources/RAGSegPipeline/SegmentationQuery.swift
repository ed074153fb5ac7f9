// One retrieval-augmented query as the front ends run it (`ragseg segment --index`, `POST /segment`): the
// label selection resolved and checked against the bank, each label segmented from its retrieved supports,
// the masks composed, and the report both front ends print as JSON. Front ends parse their arguments,
// call this, and write or send what it returns.
import RAGSegIO
import SAM2
import SupportBank

/// Which of the bank's labels a query segments.
public enum LabelSelection: Sendable, Equatable {
    /// Every label: one mask for a binary bank, a label map (or per-label masks) otherwise.
    case all
    /// The label of that name.
    case named(String)

    /// A label argument as both front ends take it: a name, or "all" (also when absent).
    public init(_ value: String?) {
        self = value.map { $0 == "all" ? .all : .named($0) } ?? .all
    }
}

/// A query the bank cannot answer as asked. Each front end words it in its own terms (command-line
/// options, URL parameters); the cases carry what the message needs.
public enum SegmentationQueryError: Error, Sendable, Equatable {
    /// The bank has no label `name`; `labels` are the ones it has.
    case unknownLabel(String, labels: [String])
    /// Points/box refine one object, but every label of a multi-label bank (`labels`) was selected.
    case promptNeedsOneLabel(labels: [String])
    /// A label map of the bank's `labelCount` labels does not fit an 8-bit PNG (MaskComposition.maxLabelInMap).
    case labelMapTooSmall(labelCount: Int)
}

/// A checked query: which labels, how many supports, which prompt, and how the masks are composed.
public struct SegmentationQuery: Sendable {
    /// The bank's label names (label n is `bankLabels[n - 1]`).
    public let bankLabels: [String]
    /// The labels segmented (1...L), in the bank's order.
    public let labels: [Int]
    public let k: Int
    public let positiveOnly: Bool
    public let prompt: SAM2Prompt
    /// One mask per label instead of one label map (the label map's 255-label limit does not apply).
    public let maskPerLabel: Bool

    /// Resolves `selection` against the bank's labels and checks, in this order, that the label exists,
    /// that a prompt goes with one label, and that a label map (without `maskPerLabel`) fits 8 bits.
    public init(
        bankLabels: [String], selection: LabelSelection, k: Int, positiveOnly: Bool = false,
        prompt: SAM2Prompt = SAM2Prompt(), maskPerLabel: Bool = false
    ) throws {
        switch selection {
        case .all:
            labels = Array(1...bankLabels.count)
        case .named(let name):
            guard let i = bankLabels.firstIndex(of: name) else {
                throw SegmentationQueryError.unknownLabel(name, labels: bankLabels)
            }
            labels = [i + 1]
        }
        if !prompt.isEmpty && labels.count > 1 { throw SegmentationQueryError.promptNeedsOneLabel(labels: bankLabels) }
        if labels.count > 1 && !maskPerLabel && labels.max()! > MaskComposition.maxLabelInMap {
            throw SegmentationQueryError.labelMapTooSmall(labelCount: bankLabels.count)
        }
        self.bankLabels = bankLabels
        self.k = k
        self.positiveOnly = positiveOnly
        self.prompt = prompt
        self.maskPerLabel = maskPerLabel
    }

    /// The name of label `label` (1...L).
    public func name(of label: Int) -> String { bankLabels[label - 1] }

    /// Segments every selected label of `image` (`name` identifies it in errors) and composes the masks;
    /// `foreground` is the value of a binary mask's object pixels (a label map holds label numbers).
    public func run(_ image: PNGImage, name: String, segmenter: RetrievalSegmenter, foreground: UInt8 = 255) throws
        -> SegmentationQueryResult
    {
        let results = try labels.map {
            try segmenter.segment(image, name: name, k: k, label: $0, positiveOnly: positiveOnly, prompt: prompt)
        }
        let masks = results.map(\.mask)
        var composed: [UInt8]? = nil, labelMasks: [[UInt8]]? = nil
        if maskPerLabel {
            labelMasks = masks.map { mask in mask.map { $0 ? foreground : 0 } }
        } else {
            // A label map only when it is written: over 255 labels it cannot be made.
            composed = MaskComposition.mask(
                logits: results.map(\.segmentation.logits.data), labels: labels, foreground: foreground)
        }
        // The label map's nonzero pixels are the union of the label masks.
        let covered =
            composed.map { map in map.map { $0 != 0 } }
            ?? masks.dropFirst().reduce(masks[0]) { union, mask in zip(union, mask).map { $0 || $1 } }
        let report = QueryReport(
            width: image.width, height: image.height,
            labels: zip(labels, results).map { LabelReport(label: self.name(of: $0), result: $1) },
            prompt: prompt.isEmpty ? nil : PromptReport(prompt))
        return SegmentationQueryResult(
            labels: labels, segmentations: results, composedMask: composed, labelMasks: labelMasks, covered: covered,
            retrievedIDs: Set(results.flatMap { $0.supports.map(\.id) }).sorted(), report: report)
    }
}

/// What a query produced for one image.
public struct SegmentationQueryResult: Sendable {
    /// The labels segmented, and each one's retrieval and segmentation (same order).
    public var labels: [Int]
    public var segmentations: [RetrievalSegmentation]
    /// The one mask written for the image (MaskComposition): one label's 0/foreground mask, or the label
    /// map; nil with `maskPerLabel`.
    public var composedMask: [UInt8]?
    /// With `maskPerLabel`: each label's own 0/foreground mask (labels may overlap).
    public var labelMasks: [[UInt8]]?
    /// Pixels some label covers (what an overlay outlines).
    public var covered: [Bool]
    /// The cases retrieved for any label, ascending, each once.
    public var retrievedIDs: [UInt64]
    /// The JSON report of this image (front ends add their own fields: file names, queue time...).
    public var report: QueryReport
}

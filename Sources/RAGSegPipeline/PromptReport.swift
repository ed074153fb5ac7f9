// How a prompt appears in JSON reports (`ragseg segment --json`, `ragseg serve` format=json).
import SAM2

/// A prompt as reports echo it: points [[x, y, label], ...] and the box [x0, y0, x1, y1] when given, in
/// image pixels.
public struct PromptReport: Codable, Sendable, Equatable {
    public var points: [[Double]]
    public var box: [Double]?

    public init(_ prompt: SAM2Prompt) {
        points = prompt.points.map { [Double($0.x), Double($0.y), Double($0.label)] }
        box = prompt.box.map { [$0.x0, $0.y0, $0.x1, $0.y1].map(Double.init) }
    }
}

extension SAM2Prompt {
    /// `PromptReport` as a JSONSerialization object (the `segment --support` report).
    public var reportObject: [String: Any] {
        let report = PromptReport(self)
        var object: [String: Any] = ["points": report.points]
        if let box = report.box { object["box"] = box }
        return object
    }
}

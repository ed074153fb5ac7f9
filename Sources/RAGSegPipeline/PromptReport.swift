// How a prompt appears in JSON reports (`ragseg segment --json`, `ragseg serve` format=json).
import SAM2

extension SAM2Prompt {
    /// {"points": [[x, y, label], ...], "box": [x0, y0, x1, y1]} (box only when given), image pixels.
    public var reportObject: [String: Any] {
        var object: [String: Any] = ["points": points.map { [Double($0.x), Double($0.y), Double($0.label)] }]
        if let box { object["box"] = [box.x0, box.y0, box.x1, box.y1].map(Double.init) }
        return object
    }
}

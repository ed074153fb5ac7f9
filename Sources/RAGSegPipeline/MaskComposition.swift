// The mask a target's results are written as: what `segment --index` saves and `serve` returns.

public enum MaskComposition {
    /// Label maps are 8-bit PNGs, so they hold labels up to 255 (per-label masks have no such limit).
    public static let maxLabelInMap = 255

    /// One label: `foreground` where its logit is positive, 0 elsewhere. Several labels: a label map, each
    /// pixel the label whose logit is highest among the positive ones (the first listed on a tie), 0 where
    /// none is positive. `logits[j]` are label `labels[j]`'s logits at the image's size.
    public static func mask(logits: [[Float]], labels: [Int], foreground: UInt8) -> [UInt8] {
        precondition(logits.count == labels.count && !labels.isEmpty, "one logits array per label")
        let n = logits[0].count
        precondition(logits.allSatisfy { $0.count == n }, "logits of different sizes")
        var pixels = [UInt8](repeating: 0, count: n)
        if logits.count == 1 {
            for i in 0..<n where logits[0][i] > 0 { pixels[i] = foreground }
            return pixels
        }
        precondition(
            labels.allSatisfy { (1...maxLabelInMap).contains($0) }, "label map labels must be 1...\(maxLabelInMap)")
        return labelMap(logits: logits, labels: labels).map { UInt8($0) }
    }

    /// Each pixel the label whose logit is highest among the positive ones (the first listed on a tie), 0
    /// where none is positive: the rule of `mask` for several labels, without the 8-bit limit (label volumes
    /// are 16-bit).
    public static func labelMap(logits: [[Float]], labels: [Int]) -> [UInt16] {
        precondition(logits.count == labels.count && !labels.isEmpty, "one logits array per label")
        let n = logits[0].count
        precondition(logits.allSatisfy { $0.count == n }, "logits of different sizes")
        precondition(labels.allSatisfy { (1...65535).contains($0) }, "labels must be 1...65535")
        var pixels = [UInt16](repeating: 0, count: n)
        var best = [Float](repeating: 0, count: n)
        for (values, label) in zip(logits, labels) {
            for i in 0..<n where values[i] > best[i] {
                best[i] = values[i]
                pixels[i] = UInt16(label)
            }
        }
        return pixels
    }
}

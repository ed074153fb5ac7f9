// FPN neck of the SAM 2 image encoder (`image_encoder.py FpnNeck`): a 1x1 lateral conv per trunk stage
// and a nearest x2 top-down path into the levels listed in `fpnTopDownLevels` (sum fusion).
// Works channels-last: a 1x1 conv on [H, W, C] tokens is a single Linear.
import TensorCore

public struct FpnNeck: Sendable {
    /// Lateral 1x1 convs as Linear weights [neckDim, C], indexed like the official `convs`
    /// (convs[0] goes with the coarsest stage).
    let laterals: [Linear]
    let topDownLevels: Set<Int>

    /// `scope`: the neck's parameters (`image_encoder.neck`).
    init(_ scope: WeightScope, config: SAM2Config) throws {
        let channels = Array(config.stageDims.reversed())  // backbone_channel_list, coarse -> fine
        laterals = try channels.enumerated().map { j, c in
            try Linear(pointwiseConv: scope["convs"][j]["conv"], input: c, output: config.neckDim)
        }
        topDownLevels = Set(config.fpnTopDownLevels)
    }

    /// stages: trunk outputs [h, w, c], finest first. Returns every level [h, w, neckDim], finest first
    /// (before scalp: the caller drops the coarsest ones).
    func callAsFunction(_ stages: [Tensor]) -> [Tensor] {
        let n = laterals.count - 1
        precondition(stages.count == laterals.count, "FPN expects \(laterals.count) stages, got \(stages.count)")
        var levels = [Tensor?](repeating: nil, count: stages.count)
        var previous: Tensor? = nil
        for i in stride(from: n, through: 0, by: -1) {
            var lateral = laterals[n - i](stages[i])
            if topDownLevels.contains(i), let coarser = previous {
                addNearestUpsampled2x(into: &lateral, from: coarser)
            }
            previous = lateral
            levels[i] = lateral
        }
        return levels.map { $0! }
    }
}

/// target[y, x, :] += source[y/2, x/2, :] (nearest x2, channels-last).
func addNearestUpsampled2x(into target: inout Tensor, from source: Tensor) {
    let height = target.dim(0), width = target.dim(1), channels = target.dim(2)
    let sourceWidth = source.dim(1)
    precondition(
        source.dim(0) * 2 == height && sourceWidth * 2 == width && source.dim(2) == channels,
        "nearest x2: \(source.shape) does not double to \(target.shape)")
    source.withUnsafeBufferPointer { src in
        target.withUnsafeMutableBufferPointer { dst in
            for y in 0..<height {
                for x in 0..<width {
                    let o = dst.baseAddress! + (y * width + x) * channels
                    let s = src.baseAddress! + ((y / 2) * sourceWidth + x / 2) * channels
                    for c in 0..<channels { o[c] += s[c] }
                }
            }
        }
    }
}

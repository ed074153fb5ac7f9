// FPN neck of the SAM 2 image encoder (`FpnNeck`; sam2.md §4.1): a 1x1 lateral conv per trunk stage
// and a nearest x2 top-down path into the levels listed in `fpnTopDownLevels` (sum fusion).
// Works channels-last: a 1x1 conv on [H, W, C] tokens is a single Linear.
import TensorCore

public struct FpnNeck: Sendable {
    /// Lateral 1x1 convs as Linear weights [neckDim, C], indexed like the official `convs`
    /// (convs[0] goes with the coarsest stage).
    let laterals: [(weight: Tensor, bias: Tensor)]
    let topDownLevels: Set<Int>

    init(weights: some SAM2TensorSource, config: SAM2ImageEncoderConfig) throws {
        let channels = Array(config.stageDims.reversed())  // backbone_channel_list, coarse -> fine
        laterals = try channels.enumerated().map { j, c in
            let w = try weights.tensor("image_encoder.neck.convs.\(j).conv.weight", shape: [config.neckDim, c, 1, 1])
            let b = try weights.tensor("image_encoder.neck.convs.\(j).conv.bias", shape: [config.neckDim])
            return (w.reshaped([config.neckDim, c]), b)
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
            var lateral = linear(stages[i], weight: laterals[n - i].weight, bias: laterals[n - i].bias)
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
    precondition(source.dim(0) * 2 == height && sourceWidth * 2 == width && source.dim(2) == channels,
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

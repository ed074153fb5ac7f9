// How a volume becomes the 2-D slices the models see: the anatomical axis cut across, how intensities
// become bytes, and which frame of a 4-D image is read. A bank built from volumes records the settings
// it was built with (`BankMetadata.volumeSettings`), so queries slice and window their volumes the same way.

/// The slicing and intensity settings of a volume bank or query. Codable as plain strings so a bank's
/// metadata reads naturally: `{"sliceAxis":"axial","intensity":"window 400,40","channel":0}`.
public struct VolumeSettings: Codable, Equatable, Sendable {
    /// "axial", "coronal" or "sagittal" (`SliceAxis.rawValue`).
    public var sliceAxis: String
    /// "window W,L" (HU) or "percentile LOW,HIGH" (of the nonzero voxels): `IntensityMapping.settingText`.
    public var intensity: String
    /// Frame (channel) of a 4-D image: nnU-Net's `_0000` channel is 0.
    public var channel: Int

    public init(axis: SliceAxis, intensity: IntensityMapping, channel: Int = 0) {
        sliceAxis = axis.rawValue
        self.intensity = intensity.settingText
        self.channel = channel
    }

    /// The axis, or nil when the stored text names none (a damaged or newer bank).
    public var axis: SliceAxis? { SliceAxis(rawValue: sliceAxis) }
    /// The intensity mapping, or nil when the stored text is not one `settingText` writes.
    public var mapping: IntensityMapping? { IntensityMapping(settingText: intensity) }

    /// One line for logs and reports: "axial, window 400,40, channel 0".
    public var summary: String { "\(sliceAxis), \(intensity), channel \(channel)" }
}

extension IntensityMapping {
    /// "window 400,40" or "percentile 0.5,99.5": numbers in Swift's shortest round-trip form.
    public var settingText: String {
        switch self {
        case .window(let w): return "window \(Self.number(w.width)),\(Self.number(w.level))"
        case .percentile(let lower, let upper): return "percentile \(Self.number(lower)),\(Self.number(upper))"
        }
    }

    /// Parses what `settingText` writes.
    public init?(settingText text: String) {
        let parts = text.split(separator: " ", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { return nil }
        let numbers = parts[1].split(separator: ",", omittingEmptySubsequences: false).compactMap { Double($0) }
        guard numbers.count == 2, numbers.allSatisfy(\.isFinite) else { return nil }
        switch parts[0] {
        case "window":
            guard numbers[0] > 0 else { return nil }
            self = .window(CTWindow(width: numbers[0], level: numbers[1]))
        case "percentile":
            guard numbers[0] >= 0, numbers[1] <= 100, numbers[0] < numbers[1] else { return nil }
            self = .percentile(lower: numbers[0], upper: numbers[1])
        default:
            return nil
        }
    }

    /// 400 -> "400", 0.5 -> "0.5", -600 -> "-600".
    private static func number(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : String(v)
    }
}

// Intensities to 8 bits, as MedSAM prepares CT and MR: a CT window on Hounsfield units, or MR clipping
// at the 0.5 and 99.5 percentiles of the nonzero voxels; then bytes, gray replicated to RGB. The bytes are
// the hand-off point on purpose: a slice windowed here and the same slice exported as an 8-bit PNG with
// the same window give the models identical input.
import TensorCore

/// A CT window: the `width` HU wide range centred on `level`.
public struct CTWindow: Sendable, Equatable {
    public var width: Double
    public var level: Double

    public init(width: Double, level: Double) {
        self.width = width
        self.level = level
    }

    public var lower: Double { level - width / 2 }
    public var upper: Double { level + width / 2 }

    /// OHIF's presets (width/level HU).
    public static let presets: [(name: String, window: CTWindow)] = [
        ("abdomen", CTWindow(width: 400, level: 40)),
        ("liver", CTWindow(width: 150, level: 90)),
        ("lung", CTWindow(width: 1500, level: -600)),
        ("bone", CTWindow(width: 2500, level: 480)),
        ("brain", CTWindow(width: 80, level: 40)),
    ]

    /// A preset name (case-insensitive) or "W,L" (numbers, width > 0), e.g. "350,50".
    public static func parse(_ text: String) -> CTWindow? {
        let key = text.lowercased()
        if let preset = presets.first(where: { $0.name == key }) { return preset.window }
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map {
            String($0.drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
        }
        guard parts.count == 2, let width = Double(parts[0]), let level = Double(parts[1]),
            width.isFinite, level.isFinite, width > 0
        else { return nil }
        return CTWindow(width: width, level: level)
    }

    /// What `parse` accepts, for help texts and errors.
    public static var accepted: String {
        presets.map { "\($0.name) (\(Int($0.window.width))/\(Int($0.window.level)))" }.joined(separator: ", ")
            + ", or W,L"
    }
}

/// How a volume's intensities become bytes.
public enum IntensityMapping: Sendable, Equatable {
    /// Clip to the window, then scale linearly to 0...255.
    case window(CTWindow)
    /// Clip to the `lower`...`upper` percentiles (in %) of the volume's nonzero voxels, then scale.
    case percentile(lower: Double, upper: Double)

    /// MR's default: 0.5 to 99.5 % of the nonzero voxels.
    public static let mrDefault = IntensityMapping.percentile(lower: 0.5, upper: 99.5)
    /// CT's default: the abdomen (soft tissue) window 400/40.
    public static let ctDefault = IntensityMapping.window(CTWindow(width: 400, level: 40))

    /// The default for an nnU-Net channel name (dataset.json `channel_names`): "CT" (any case) picks
    /// the CT window, everything else (MR sequences, unknown) percentile clipping.
    public static func defaultFor(channelName: String?) -> IntensityMapping {
        channelName?.uppercased() == "CT" ? ctDefault : mrDefault
    }

    /// The clipping range for `volume` (for percentiles, of its nonzero voxels; numpy's default
    /// linear-interpolation percentile). A volume without nonzero voxels gives 0...0.
    public func bounds(_ volume: [Float]) -> (lower: Double, upper: Double) {
        switch self {
        case .window(let w):
            return (w.lower, w.upper)
        case .percentile(let low, let high):
            let sorted = volume.filter { $0 != 0 }.sorted()
            guard !sorted.isEmpty else { return (0, 0) }
            return (Self.percentile(sorted, low), Self.percentile(sorted, high))
        }
    }

    /// numpy.percentile's linear method on ascending `sorted`: position p/100 * (n - 1), interpolated.
    static func percentile(_ sorted: [Float], _ p: Double) -> Double {
        percentile(count: sorted.count, p) { sorted[$0] }
    }

    /// The same on `count` ascending values of which `value(rank)` gives the one at `rank`.
    static func percentile(count: Int, _ p: Double, value: (Int) -> Float) -> Double {
        let (below, above, fraction) = ranks(count: count, p)
        let a = Double(value(below)), b = Double(value(above))
        return a + (b - a) * fraction
    }

    /// The two ranks numpy's linear percentile interpolates between, and the weight of the upper one.
    static func ranks(count: Int, _ p: Double) -> (below: Int, above: Int, fraction: Double) {
        let position = p / 100 * Double(count - 1)
        let below = Int(position.rounded(.down))
        return (below, min(below + 1, count - 1), position - Double(below))
    }
}

/// The 8-bit rule, in one place: v clipped to [lower, upper], byte = floor((v - lower) * 255 / (upper - lower)
/// + 0.5) computed in Double (round half up); every byte 0 when upper <= lower. Multiplying before dividing
/// keeps exact halves exact (a level half-way up a window gives 127.5, hence 128).
public func eightBit(_ values: [Float], lower: Double, upper: Double) -> [UInt8] {
    guard upper > lower else { return [UInt8](repeating: 0, count: values.count) }
    let range = upper - lower
    return values.map { value in
        let clipped = min(max(Double(value), lower), upper)
        return UInt8((clipped - lower) * 255 / range + 0.5)
    }
}

/// An 8-bit gray slice as the models take it: [3, height, width] in [0, 1], gray replicated to R, G
/// and B, each byte divided by 255 (what PNGImage.rgbFloat gives for the same bytes read from a PNG).
public func rgbTensor(gray: [UInt8], width: Int, height: Int) -> Tensor {
    precondition(gray.count == width * height, "\(gray.count) bytes for a \(width)x\(height) slice")
    let n = width * height
    let scale: Float = 1 / 255
    return Tensor(shape: [3, height, width]) { out in
        for i in 0..<n {
            let v = Float(gray[i]) * scale
            out[i] = v; out[n + i] = v; out[2 * n + i] = v
        }
    }
}

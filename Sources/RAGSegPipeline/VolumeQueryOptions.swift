// The text forms of a volume query's options, parsed once for both front ends: the command line's
// --slices/--slice-axis/--window/--channel and the server's slices/slice_axis/window/channel parameters.
import RAGSegIO

public enum VolumeQueryOptions {
    /// The problem with an option's value, in words both front ends prefix with the option's name.
    public struct Invalid: Error, Sendable, Equatable {
        public let message: String
        public init(message: String) { self.message = message }
    }

    /// "A:B": slices A to B - 1 (half-open, as Python and nnU-Net count), A < B, both >= 0.
    public static func sliceRange(_ text: String) throws -> Range<Int> {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let a = Int(parts[0]), let b = Int(parts[1]), a >= 0, a < b else {
            throw Invalid(message: "expects A:B with 0 <= A < B (slices A to B-1), got '\(text)'")
        }
        return a..<b
    }

    public static func axis(_ text: String) throws -> SliceAxis {
        guard let axis = SliceAxis(rawValue: text.lowercased()) else {
            throw Invalid(message: "expects axial, coronal or sagittal, got '\(text)'")
        }
        return axis
    }

    /// A CT window (a preset name or "W,L"), or "percentile" (0.5-99.5 % of the nonzero voxels, MR's
    /// default), or "percentile:LOW,HIGH".
    public static func mapping(_ text: String) throws -> IntensityMapping {
        let lowered = text.lowercased()
        if lowered == "percentile" { return .mrDefault }
        if lowered.hasPrefix("percentile:") {
            let parsed = IntensityMapping(settingText: "percentile " + lowered.dropFirst("percentile:".count))
            guard let parsed else {
                throw Invalid(message: "expects percentile:LOW,HIGH with 0 <= LOW < HIGH <= 100, got '\(text)'")
            }
            return parsed
        }
        guard let window = CTWindow.parse(text) else {
            throw Invalid(message: "expects \(CTWindow.accepted), or percentile[:LOW,HIGH], got '\(text)'")
        }
        return .window(window)
    }

    public static func channel(_ text: String) throws -> Int {
        guard let c = Int(text), c >= 0 else {
            throw Invalid(message: "expects a frame number >= 0 (0-based), got '\(text)'")
        }
        return c
    }

    /// Whether a path names a NIfTI file (by its ending: .nii or .nii.gz, any case).
    public static func isNIfTIPath(_ path: String) -> Bool {
        let lowered = path.lowercased()
        return lowered.hasSuffix(".nii") || lowered.hasSuffix(".nii.gz")
    }
}

// The volume settings options of `index create` and `index add`: slice axis, intensity mapping, channel.
import ArgumentParser
import RAGSegIO
import RAGSegPipeline
import SupportBank

struct VolumeSettingOptions: ParsableArguments {
    @Option(help: "Volumes: anatomical axis the slices are cut across: axial, coronal or sagittal (default axial).")
    var sliceAxis: String?
    @Option(
        help: ArgumentHelp(
            "Volumes: CT window on Hounsfield units, \(CTWindow.accepted) (width,level).",
            discussion: "Default: abdomen for a dataset whose channel is named CT, else --percentile 0.5,99.5.",
            valueName: "name|W,L"))
    var window: String?
    @Option(
        help: ArgumentHelp(
            "Volumes: clip to these percentiles of the volume's nonzero voxels, then scale (MR; default 0.5,99.5).",
            valueName: "low,high"))
    var percentile: String?
    @Option(
        help: """
            Volumes: channel to read, 0-based: the frame of a 4-D image, nnU-Net's CASE_XXXX file (default 0).
            """)
    var channel: Int?

    var given: Bool { sliceAxis != nil || window != nil || percentile != nil || channel != nil }

    func validate() throws {
        if window != nil && percentile != nil { throw ValidationError("give --window or --percentile, not both") }
        _ = try axis()
        _ = try mapping()
        if let channel, channel < 0 { throw ValidationError("--channel must be 0 or more, got \(channel)") }
    }

    func axis() throws -> SliceAxis? {
        guard let sliceAxis else { return nil }
        guard let axis = SliceAxis(rawValue: sliceAxis.lowercased()) else {
            throw ValidationError("unknown --slice-axis \(sliceAxis) (axial, coronal or sagittal)")
        }
        return axis
    }

    func mapping() throws -> IntensityMapping? {
        if let window {
            guard let w = CTWindow.parse(window) else {
                throw ValidationError("unknown --window \(window): give \(CTWindow.accepted)")
            }
            return .window(w)
        }
        if let percentile {
            let text = "percentile " + percentile.replacingOccurrences(of: " ", with: "")
            guard let mapping = IntensityMapping(settingText: text) else {
                throw ValidationError("--percentile takes LOW,HIGH with 0 <= LOW < HIGH <= 100, got \(percentile)")
            }
            return mapping
        }
        return nil
    }
}

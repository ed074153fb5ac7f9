// Retrieval-augmented segmentation of a NIfTI volume, slice by slice (the paper's method: every slice
// retrieves its own k nearest bank cases). Slices are cut in the bank's display orientation and windowed
// with the bank's settings (unless overridden), segmented one at a time (only one slice's features exist at
// any moment), and their label slices are put back into the volume's own voxel order and written with the
// input's header geometry. `segment --index`, `eval` and `POST /segment` all call this.
import Dispatch
import RAGSegIO
import SupportBank

/// Settings a query gives explicitly; nil fields come from the bank.
public struct VolumeSettingsOverride: Sendable, Equatable {
    public var axis: SliceAxis?
    public var mapping: IntensityMapping?
    public var channel: Int?

    public init(axis: SliceAxis? = nil, mapping: IntensityMapping? = nil, channel: Int? = nil) {
        self.axis = axis
        self.mapping = mapping
        self.channel = channel
    }
}

/// A volume query that cannot run as asked; `path` is the file (or bank) concerned.
public struct VolumeSegmentationError: Error, CustomStringConvertible, Sendable, Equatable {
    public let path: String
    public let message: String
    public var description: String { "\(path): \(message)" }

    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }
}

/// What segmenting one volume produced.
public struct VolumeSegmentationResult: Sendable {
    /// The label volume in the input's voxel order (label numbers, 0 background), kept out of memory:
    /// `output.write(to:)` writes it as a NIfTI file without making an array of it.
    public let output: LabelVolumeBuffer
    public var report: VolumeReport

    /// The label volume as an array (for replies held in memory and tests).
    public var labels: VoxelGrid<UInt16> { output.grid() }
    /// `labels` as a NIfTI image with the input's geometry (NIfTIImage.labelMap).
    public var labelMap: NIfTIImage { output.labelMap() }
}

/// A checked volume query: labels, k, slicing and intensity settings, slice range.
public struct VolumeSegmentation: Sendable {
    public let bankLabels: [String]
    /// Labels segmented (1...L); each is written with its own number.
    public let labels: [Int]
    public let k: Int
    public let positiveOnly: Bool
    public let axis: SliceAxis
    public let mapping: IntensityMapping
    /// The frame given explicitly or recorded by the bank; nil: none (a multi-frame image is then an error).
    public let channel: Int?
    /// The frame given in the query: also checked against a single-frame image (the bank's is not).
    public let explicitChannel: Int?
    public let bankSettings: VolumeSettings?
    /// Half-open range of slice indices to segment (nil: all).
    public let sliceRange: Range<Int>?
    /// How the settings differ from the bank's, one line each (front ends print them).
    public let notes: [String]

    /// Resolves the labels (as a 2-D query does; the 8-bit label-map limit does not apply to 16-bit label
    /// volumes) and the settings: each one given in `override`, else the bank's, else the defaults (axial,
    /// percentile 0.5-99.5) with a note that the bank records none.
    public init(
        bank: BankMetadata, bankPath: String, selection: LabelSelection, k: Int, positiveOnly: Bool = false,
        override: VolumeSettingsOverride = VolumeSettingsOverride(), sliceRange: Range<Int>? = nil
    ) throws {
        guard k > 0 else { throw VolumeSegmentationError(path: bankPath, message: "k must be at least 1") }
        if let sliceRange, sliceRange.isEmpty || sliceRange.lowerBound < 0 {
            throw VolumeSegmentationError(
                path: bankPath, message: "slice range \(sliceRange.lowerBound):\(sliceRange.upperBound) is empty")
        }
        bankLabels = bank.labels
        labels = try SegmentationQuery(bankLabels: bank.labels, selection: selection, k: k, maskPerLabel: true).labels
        self.k = k
        self.positiveOnly = positiveOnly
        self.sliceRange = sliceRange
        explicitChannel = override.channel
        bankSettings = bank.volumeSettings
        var notes: [String] = []
        if let recorded = bank.volumeSettings {
            guard let bankAxis = recorded.axis ?? override.axis, let bankMapping = recorded.mapping ?? override.mapping
            else {
                throw VolumeSegmentationError(
                    path: bankPath,
                    message: "the bank's volume settings (\(recorded.summary)) cannot be read; give --slice-axis and "
                        + "--window (or --percentile) explicitly")
            }
            axis = override.axis ?? bankAxis
            mapping = override.mapping ?? bankMapping
            channel = override.channel ?? recorded.channel
            if let a = override.axis, a.rawValue != recorded.sliceAxis {
                notes.append("slice axis \(a.rawValue) differs from the bank's \(recorded.sliceAxis)")
            }
            if let m = override.mapping, m.settingText != recorded.intensity {
                notes.append("intensities \(m.settingText) differ from the bank's \(recorded.intensity)")
            }
            if let c = override.channel, c != recorded.channel {
                notes.append("channel \(c) differs from the bank's \(recorded.channel)")
            }
        } else {
            axis = override.axis ?? .axial
            mapping = override.mapping ?? .mrDefault
            channel = override.channel
            notes.append(
                """
                the bank records no volume settings (it was built from 2-D images): slicing \(axis.rawValue), \
                intensities \(mapping.settingText)
                """)
        }
        self.notes = notes
    }

    /// Segments `image` (read from `name`): every slice in the range retrieves its own supports (never one of
    /// `excluding`) and is segmented for every selected label; `progress(done, total)` after each slice.
    public func run(
        _ image: NIfTIImage, name: String, segmenter: RetrievalSegmenter, excluding: Set<UInt64> = [],
        progress: (Int, Int) -> Void = { _, _ in }
    ) throws -> VolumeSegmentationResult {
        try run(VolumeVoxels(image), name: name, segmenter: segmenter, excluding: excluding, progress: progress)
    }

    /// The same on voxels read in place (`NIfTI.open`): memory holds one slice's work, not the volume.
    public func run(
        _ image: VolumeVoxels, name: String, segmenter: RetrievalSegmenter, excluding: Set<UInt64> = [],
        progress: (Int, Int) -> Void = { _, _ in }
    ) throws -> VolumeSegmentationResult {
        let start = DispatchTime.now()
        var phase = DispatchTime.now()
        func lap() -> Double {
            let now = DispatchTime.now()
            defer { phase = now }
            return Double(now.uptimeNanoseconds - phase.uptimeNanoseconds) / 1e9
        }
        let header = image.header
        let frame = header.frameCount > 1 ? channel : explicitChannel
        let slices = try VolumeSliceImages(
            try image.intensities(frame: frame, name: name), axis: axis, mapping: mapping, name: name)
        let range = sliceRange ?? 0..<slices.count
        guard range.upperBound <= slices.count else {
            throw VolumeSegmentationError(
                path: name,
                message: """
                    slices \(range.lowerBound):\(range.upperBound) are outside the volume's \(slices.count) \
                    \(axis.rawValue) slices (0:\(slices.count))
                    """)
        }
        let prepareSeconds = lap()

        // Slices outside the range stay 0; each segmented slice goes into place as soon as it exists.
        let output = try LabelVolumeBuffer(like: header, maxLabel: labels.max() ?? 0, name: name)
        var counts = [Int](repeating: 0, count: bankLabels.count + 1)
        var sliceReports: [SliceReport] = []
        var stageTotals: [QueryStage: Double] = [:]
        for (done, index) in range.enumerated() {
            let sliceImage = slices.image(index)
            let sliceName = "\(name) \(axis.rawValue) slice \(index)"
            var logits: [[Float]] = []
            var reports: [SliceLabelReport] = []
            for label in labels {
                let r = try segmenter.segment(
                    sliceImage, name: sliceName, k: k, label: label, positiveOnly: positiveOnly, excluding: excluding)
                for (stage, seconds) in r.timings { stageTotals[stage, default: 0] += seconds }
                let values = r.segmentation.logits.data
                logits.append(values)
                reports.append(
                    SliceLabelReport(
                        label: bankLabels[label - 1], retrieved: r.supports.map { RetrievedSlice($0, label: label) },
                        foregroundPixels: values.reduce(0) { $0 + ($1 > 0 ? 1 : 0) },
                        objectScore: Double(r.segmentation.objectScore)))
            }
            let labelSlice = MaskComposition.labelMap(logits: logits, labels: labels)
            for v in labelSlice where v != 0 { counts[Int(v)] += 1 }
            output.put(labelSlice, index: index, layout: slices.layout)
            sliceReports.append(SliceReport(slice: index, labels: reports))
            progress(done + 1, range.count)
        }
        let segmentSeconds = lap()

        // Nothing is left to assemble: the label slices are already in place (kept for the report's keys).
        let assembleSeconds = lap()

        let voxelVolume = header.voxelVolumeMillilitres
        let report = VolumeReport(
            shape: header.spatialShape, spacing: header.voxelSizeMillimetres, voxelVolumeMl: voxelVolume,
            settings: VolumeSettings(axis: axis, intensity: mapping, channel: frame ?? 0), bankSettings: bankSettings,
            notes: notes, sliceCount: slices.count, firstSlice: range.lowerBound, lastSlice: range.upperBound - 1,
            k: k,
            labels: labels.map {
                VolumeLabelReport(
                    label: bankLabels[$0 - 1], value: $0, voxels: counts[$0], volumeMl: Double(counts[$0]) * voxelVolume
                )
            },
            slices: sliceReports,
            seconds: [
                "prepare": prepareSeconds, "segment": segmentSeconds, "assemble": assembleSeconds,
                "total": Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9,
            ],
            stageSeconds: StageSeconds(stageTotals.map { (stage: $0.key, seconds: $0.value) }))
        return VolumeSegmentationResult(output: output, report: report)
    }
}

// The JSON report of one segmented volume: what `ragseg segment --index VOLUME --json` prints and
// `POST /segment?format=json` answers for a NIfTI upload. One Codable type for both front ends, encoded
// with QueryReport.json (sorted keys).
import RAGSegIO
import SupportBank

public struct VolumeReport: Codable, Sendable, Equatable {
    /// `segment`: the input file and the label volume written.
    public var file: String?
    public var output: String?
    /// Stored dimensions (i, j, k) and voxel sizes in mm along them (from the affine).
    public var shape: [Int]
    public var spacing: [Double]
    /// One voxel's volume in mL: |det| of the affine's 3x3 part / 1000.
    public var voxelVolumeMl: Double
    /// The settings the slices were made with, and the bank's own (nil: a bank of 2-D images).
    public var settings: VolumeSettings
    public var bankSettings: VolumeSettings?
    /// Where the settings differ from the bank's, and other things a user should know (one line each).
    public var notes: [String]
    /// Slices along the axis, and the range segmented (`first...last`; the others are labelled 0).
    public var sliceCount: Int
    public var firstSlice: Int
    public var lastSlice: Int
    public var k: Int
    /// Per label: the value written in the label volume, voxels and volume over the whole volume.
    public var labels: [VolumeLabelReport]
    /// Per segmented slice, in slice order.
    public var slices: [SliceReport]
    /// Volume-level wall seconds: "read", "prepare" (reorientation, intensities), "segment" (all slices),
    /// "assemble", "write" (those a front end measures are added by it), "total".
    public var seconds: [String: Double]
    /// The per-slice query stages summed over every slice and label (keys: `QueryStage` raw values).
    public var stageSeconds: StageSeconds
    /// `POST /segment`: seconds waited for the model queue.
    public var queueSeconds: Double?
}

public struct VolumeLabelReport: Codable, Sendable, Equatable {
    public var label: String
    /// The voxel value of this label in the written label volume (its number in the bank, 1...L).
    public var value: Int
    public var voxels: Int
    public var volumeMl: Double
}

public struct SliceReport: Codable, Sendable, Equatable {
    /// Index along the slicing axis, canonical order (as `SliceOrigin.slice` counts).
    public var slice: Int
    public var labels: [SliceLabelReport]
}

public struct SliceLabelReport: Codable, Sendable, Equatable {
    public var label: String
    /// Retrieved cases in support order (most similar first).
    public var retrieved: [RetrievedSlice]
    /// Pixels of this label's own mask on the slice (logits > 0).
    public var foregroundPixels: Int
    public var objectScore: Double
}

/// A retrieved bank case with, for a slice case, the volume and slice it was cut from.
public struct RetrievedSlice: Codable, Sendable, Equatable {
    public var id: UInt64
    public var similarity: Double
    public var hasLabel: Bool
    public var image: String
    public var volume: String?
    public var volumeHash: String?
    public var slice: Int?

    public init(_ hit: SearchHit, label: Int) {
        id = hit.id
        similarity = Double(hit.score)
        hasLabel = hit.record.labels.contains(label)
        image = hit.record.image
        volume = hit.record.origin?.volume
        volumeHash = hit.record.origin?.volumeHash
        slice = hit.record.origin?.slice
    }
}

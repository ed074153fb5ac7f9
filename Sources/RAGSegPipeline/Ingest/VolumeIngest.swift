// Adding volumes to a bank, once for both front ends (`ragseg index add` and `POST /cases`): which
// volume settings an add uses (the bank's, or the given ones recorded with the first volume), and the
// per-volume loop that turns the chosen slices into prepared cases, skipping slices already stored.
import RAGSegIO
import SupportBank

/// The volume settings an add uses, and whether they must be recorded in the bank first.
public struct VolumeAddSettings: Sendable, Equatable {
    /// A setting given with the add that differs from the one the bank records.
    public enum Field: String, Sendable, Equatable {
        case axis, intensity, channel
    }

    public var settings: VolumeSettings
    /// True when the bank records no settings yet: they are recorded once the first volume passed its checks.
    public var record: Bool

    /// The bank's settings when it records any (every setting given must then agree: `differing` lists the
    /// ones that do not, and the caller refuses the add naming them in its own terms), else the given ones,
    /// the rest from the defaults (axial, `defaultMapping`, channel 0).
    public static func resolve(
        recorded: VolumeSettings?, axis: SliceAxis?, mapping: IntensityMapping?, channel: Int?,
        defaultMapping: IntensityMapping
    ) -> (resolved: VolumeAddSettings, differing: [Field]) {
        guard let recorded else {
            let settings = VolumeSettings(
                axis: axis ?? .axial, intensity: mapping ?? defaultMapping, channel: channel ?? 0)
            return (VolumeAddSettings(settings: settings, record: true), [])
        }
        var differing = [Field]()
        if let axis, axis.rawValue != recorded.sliceAxis { differing.append(.axis) }
        if let mapping, mapping.settingText != recorded.intensity { differing.append(.intensity) }
        if let channel, channel != recorded.channel { differing.append(.channel) }
        return (VolumeAddSettings(settings: recorded, record: false), differing)
    }
}

/// What one volume contributed to an add.
public struct VolumeSliceSelection: Sendable, Equatable {
    /// The slices that became (or already were) cases, ascending.
    public var chosen: [Int]
    /// How many of `chosen` hold a label.
    public var labelled: Int
    /// How many of `chosen` were in the bank already (same content), found before encoding.
    public var alreadyStored: Int
}

public enum VolumeIngest {
    /// The chosen slices of `volume` (`VolumeCase.selectedSlices(emptyEvery:)`) as cases: a slice whose
    /// content is already in `bank` goes to `stored(id, name)` without running the encoders, every other one
    /// is prepared (`CaseLoader.prepare`) and handed to `append`, in slice order. Committing is the caller's
    /// (in batches, so a long volume resumes after a kill; or all at once).
    public static func cases(
        of volume: VolumeCase, emptyEvery: Int, bank: SupportBank, retrieval: RetrievalEncoder,
        support: SupportEncoder, stored: (UInt64, String) throws -> Void, append: (PreparedCase) throws -> Void
    ) throws -> VolumeSliceSelection {
        let chosen = volume.selectedSlices(emptyEvery: emptyEvery)
        var alreadyStored = 0
        for index in chosen {
            let loaded = volume.loadedCase(index)
            if let existing = try bank.caseID(forContentHash: loaded.contentHash) {
                try stored(existing, loaded.source.image)
                alreadyStored += 1
                continue
            }
            try append(try CaseLoader.prepare(loaded, retrieval: retrieval, support: support))
        }
        return VolumeSliceSelection(
            chosen: chosen, labelled: chosen.filter { volume.isLabelled($0) }.count, alreadyStored: alreadyStored)
    }
}

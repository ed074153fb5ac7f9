// `index add` on volumes: nnU-Net v2 3-D and MSD datasets, or --images/--masks folders of NIfTI volumes.
// Every slice holding a label becomes a case, and one in N of the slices without any (empty-mask
// memories); cases are committed in batches like 2-D cases, so a killed run resumes where it stopped.
import ArgumentParser
import Foundation
import RAGSegIO
import RAGSegPipeline
import SupportBank

struct VolumeInputOptions: ParsableArguments {
    static let defaultEmptySlices = 10

    @OptionGroup var settings: VolumeSettingOptions
    @Option(
        help: ArgumentHelp(
            """
            Volumes: of the slices without any label, add the first and every N-th after it (0: none; default \
            \(defaultEmptySlices)).
            """,
            valueName: "n"))
    var emptySlices: Int?
    @Option(
        help: ArgumentHelp(
            "Volumes: largest volume read, in voxels (default \(NIfTILimits().maxVoxels)); refused before reading.",
            valueName: "n"))
    var maxVoxels: Int?

    func validate() throws {
        if let emptySlices, emptySlices < 0 { throw ValidationError("--empty-slices must be 0 or more") }
        if let maxVoxels, maxVoxels <= 0 { throw ValidationError("--max-voxels must be positive, got \(maxVoxels)") }
    }

    var limits: NIfTILimits {
        var limits = NIfTILimits()
        if let maxVoxels { limits.maxVoxels = maxVoxels }
        return limits
    }

    func refuseFor2D() throws {
        if settings.given || emptySlices != nil || maxVoxels != nil {
            throw ValidationError(
                "--slice-axis, --window, --percentile, --channel, --empty-slices and --max-voxels are for volumes")
        }
    }
}

extension VolumeSettingOptions {
    /// The channel a dataset is read at: --channel, or 0 when the dataset names at most one channel.
    func channel(for dataset: VolumeDataset?) throws -> Int {
        let names = dataset?.channelNames ?? [:]
        let list = names.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        guard let channel else {
            if names.count > 1 {
                throw ValidationError("the dataset has \(names.count) channels (\(list)); choose one with --channel N")
            }
            return 0
        }
        if !names.isEmpty && names[channel] == nil {
            throw ValidationError("the dataset has no channel \(channel) (\(list))")
        }
        return channel
    }

    /// `index create`: the settings to record, or nil for a 2-D bank (no volume option given and --dataset,
    /// if any, holds no volumes): a 2-D bank's metadata stays as it was before volumes existed.
    func settingsForCreate(dataset: String?) throws -> VolumeSettings? {
        let volumes = try dataset.flatMap { try VolumeDataset.detect($0) }
        guard given || volumes != nil else { return nil }
        let channel = try channel(for: volumes)
        return VolumeSettings(
            axis: try axis() ?? .axial,
            intensity: try mapping() ?? (volumes?.defaultMapping(channel: channel) ?? .mrDefault),
            channel: channel)
    }
}

/// Where `index add` takes volumes from.
enum VolumeInput {
    case dataset(VolumeDataset)
    case folders(images: String, labels: String)
    /// `--list` rows naming NIfTI images (image,label volume).
    case list([CaseSource])
}

extension IndexAdd {
    /// The volume input, or nil when the input is 2-D (PNG).
    func volumeSources() throws -> VolumeInput? {
        if let dataset {
            return try VolumeDataset.detect(dataset).map { .dataset($0) }
        }
        if let images, let masks, VolumeDataset.holdsVolumes(images) { return .folders(images: images, labels: masks) }
        if let list {
            let rows = try CaseSources.list(list)
            let volumeRows = rows.filter { VolumeDataset.isNIfTIName($0.image) }
            if volumeRows.isEmpty { return nil }
            guard volumeRows.count == rows.count else {
                throw BankError.input(
                    list,
                    """
                    mixes NIfTI volumes (\(volumeRows.count) rows) with 2-D images (\(rows.count - volumeRows.count) \
                    rows); give them in separate lists
                    """)
            }
            return .list(rows)
        }
        return nil
    }

    func addVolumes(_ input: VolumeInput) throws {
        let bankPath = resolveBankPath(path)
        let bank = try SupportBank.open(
            at: bankPath, mapSize: mapSizeMib.map { $0 << 20 } ?? SupportBank.defaultMapSize)
        var volumeDataset: VolumeDataset? = nil
        if case .dataset(let d) = input {
            volumeDataset = d
            if !bank.metadata.isBinary {
                let names = try CaseSources.nnUNetLabels(d.path)
                guard names == bank.metadata.labels else {
                    throw BankError.input(
                        d.path, "dataset.json labels \(names) differ from the bank's \(bank.metadata.labels)")
                }
            }
        }
        // The bank's settings; a bank without any (made for 2-D images) records them with its first volumes.
        let options = volumeInput.settings
        let recorded = bank.metadata.volumeSettings
        // Without recorded settings the dataset decides the channel (and its default intensities).
        let channel = recorded == nil ? try options.channel(for: volumeDataset) : options.channel
        let (resolved, differing) = VolumeAddSettings.resolve(
            recorded: recorded, axis: try options.axis(), mapping: try options.mapping(), channel: channel,
            defaultMapping: volumeDataset?.defaultMapping(channel: channel ?? 0) ?? .mrDefault)
        guard differing.isEmpty else {
            let names = differing.map { field -> String in
                switch field {
                case .axis: "--slice-axis"
                case .intensity: options.window != nil ? "--window" : "--percentile"
                case .channel: "--channel"
                }
            }
            throw BankError.bank(
                bank.path,
                """
                was built with volume settings \(resolved.settings.summary); \(names.joined(separator: ", ")) \
                differ (leave them out, or create another bank)
                """
            )
        }
        let settings = resolved.settings, record = resolved.record
        guard let axis = settings.axis, let mapping = settings.mapping else {
            throw BankError.bank(bank.path, "records volume settings this build does not know: \(settings.summary)")
        }
        var sources: [VolumeCaseSource]
        switch input {
        case .dataset(let d):
            if !d.channelNames.isEmpty && d.channelNames[settings.channel] == nil {
                throw BankError.input(d.path, "has no channel \(settings.channel), the bank's channel")
            }
            sources = try d.sources(channel: settings.channel)
        case .folders(let images, let labels):
            // A folder names no channels: a 4-D image is read only when --channel is given here.
            sources = try VolumeDataset.pairs(
                images: images, labels: labels, channel: settings.channel, frame: options.channel)
        case .list(let rows):
            // Like a folder, a list names no channels: a 4-D image is read only when --channel is given here.
            sources = rows.map { VolumeCaseSource(image: $0.image, labels: $0.mask, frame: options.channel) }
        }
        // Whole volumes are shared out (by the image file's SHA-256): all slices of one go to the same shard.
        sources = try sharding.select(sources, bank: bank, quiet: quiet, unit: "volumes") { $0.image }
        let slicing = VolumeSlicing(
            axis: axis, mapping: mapping, labelCount: bank.metadata.labels.count, limits: volumeInput.limits)
        // Every header first: a dataset with a bad file changes nothing.
        var totalSlices = 0
        for source in sources { totalSlices += try VolumeCaseLoader.checkHeaders(source, slicing: slicing) }
        let (retrieval, support) = try models.encoders(for: bank)
        let emptyEvery = volumeInput.emptySlices ?? VolumeInputOptions.defaultEmptySlices
        let batcher = CaseBatcher(
            bank: bank, batch: batch, progress: ProgressReporter(total: totalSlices, quiet: quiet, unit: "slices"))
        var volumes = 0
        try batcher.run {
            for source in sources {
                let volume = try VolumeCaseLoader.load(source, slicing: slicing)
                if record && volumes == 0 {
                    // Once the first volume has passed every check: a refused input leaves no settings behind.
                    try bank.recordVolumeSettings(settings)
                    if !quiet { printError("recorded the bank's volume settings: \(settings.summary)") }
                }
                let selection = try VolumeIngest.cases(
                    of: volume, emptyEvery: emptyEvery, bank: bank, retrieval: retrieval, support: support,
                    stored: { batcher.stored($0, image: $1) },  // committed earlier: the encoders did not run
                    append: batcher.append)
                batcher.skip(volume.sliceCount - selection.chosen.count)
                volumes += 1
                if !quiet {
                    let (chosen, labelled, present) = (
                        selection.chosen.count, selection.labelled, selection.alreadyStored
                    )
                    printError(
                        """
                        \(source.image): \(chosen) of \(volume.sliceCount) \(axis.rawValue) slices \
                        (\(labelled) with labels, \(chosen - labelled) without)\
                        \(present > 0 ? ", \(present) already in the bank" : "")
                        """
                    )
                }
            }
        }
        try bank.checkpoint(force: false)
        if !quiet {
            printError(
                """
                added \(batcher.added) slices of \(volumes) volume(s), \(batcher.duplicates) slices already in the \
                bank; bank has \(try bank.statistics().cases) cases
                """
            )
        }
    }
}

// `ragseg segment --index BANK scan.nii.gz --out DIR`: a NIfTI volume segmented slice by slice
// (RAGSegPipeline.VolumeSegmentation) into DIR/scan.nii.gz, a label volume with the input's geometry.
// This file parses the volume options, checks the inputs before the models load, and writes the outputs.
import ArgumentParser
import Dispatch
import Foundation
import RAGSegIO
import RAGSegPipeline
import SupportBank

struct VolumeSegmentOptions: ParsableArguments {
    @Option(help: "NIfTI targets: segment only slices A to B-1 along the slicing axis (the others are labelled 0).")
    var slices: String?

    @Option(help: "NIfTI targets: axial, coronal or sagittal (default: the bank's).")
    var sliceAxis: String?

    @Option(
        help: """
            NIfTI targets: a CT window (abdomen, liver, lung, bone, brain, or W,L in HU) or percentile[:LOW,HIGH] \
            (default: the bank's).
            """)
    var window: String?

    @Option(help: "NIfTI targets: the frame (channel) of a 4-D image, 0-based (default: the bank's).")
    var channel: String?

    var given: Bool { slices != nil || sliceAxis != nil || window != nil || channel != nil }

    /// The overrides and slice range, each checked (the error names the option).
    func parsed() throws -> (override: VolumeSettingsOverride, range: Range<Int>?) {
        func option<T>(_ name: String, _ value: String?, _ parse: (String) throws -> T) throws -> T? {
            guard let value else { return nil }
            do { return try parse(value) } catch let error as VolumeQueryOptions.Invalid {
                throw ValidationError("--\(name) \(error.message)")
            }
        }
        let axis = try option("slice-axis", sliceAxis, VolumeQueryOptions.axis)
        let mapping = try option("window", window, VolumeQueryOptions.mapping)
        let frame = try option("channel", channel, VolumeQueryOptions.channel)
        let range = try option("slices", slices, VolumeQueryOptions.sliceRange)
        return (VolumeSettingsOverride(axis: axis, mapping: mapping, channel: frame), range)
    }

    /// Volume targets go with --index and not with the options that describe PNG outputs or one image.
    func check(targets: [String], command: SegmentCommand) throws {
        let volumes = targets.filter(VolumeQueryOptions.isNIfTIPath)
        guard !volumes.isEmpty else {
            if given { throw ValidationError("--slices, --slice-axis, --window and --channel go with NIfTI targets") }
            return
        }
        guard volumes.count == targets.count else {
            throw ValidationError("give PNG images or NIfTI volumes, not both in one run")
        }
        guard command.index != nil else { throw ValidationError("NIfTI volumes are segmented with --index BANK") }
        if command.maskPerLabel || command.overlay || command.logits != nil || !command.points.isEmpty
            || !command.boxes.isEmpty || command.maskValues != 255
        {
            throw ValidationError(
                """
                --mask-per-label, --overlay, --logits, --point, --box and --mask-values apply to PNG targets; a \
                volume's output is one label volume (label numbers)
                """)
        }
        _ = try parsed()
        var names: [String: String] = [:]
        for t in volumes {
            let name = (t as NSString).lastPathComponent
            if let other = names[name] {
                throw ValidationError("volumes \(other) and \(t) would both be written to \(name)")
            }
            names[name] = t
        }
    }
}

/// `segment --index --json` on volumes: the run, then one `VolumeReport` per volume (in argument order).
struct VolumeSegmentRunReport: Encodable {
    var modelLoadSeconds: Double
    var k: Int
    var bank: String
    var volumes: [VolumeReport]
}

extension SegmentCommand {
    func runOnVolumes() throws {
        let (override, range) = try volume.parsed()
        // Every volume is opened (and so checked) before the models load; the first one is kept for the run.
        // Volumes are read in place (NIfTI.open), so memory does not grow with their size.
        var first: VolumeVoxels? = try NIfTI.open(targets[0])
        for t in targets.dropFirst() { _ = try NIfTI.open(t) }
        let bank = try SupportBank.open(at: resolveBankPath(index!), readOnly: true)
        let query: VolumeSegmentation
        do {
            query = try VolumeSegmentation(
                bank: bank.metadata, bankPath: bank.path, selection: LabelSelection(label), k: k,
                positiveOnly: positiveOnly, override: override, sliceRange: range)
        } catch let error as SegmentationQueryError {
            throw ValidationError(Self.message(error, bank: bank.path))
        }
        for note in query.notes { printError("note: \(note)") }
        let loadStart = DispatchTime.now()
        let segmenter = try BankModels.segmenter(for: bank, dinov2: dinov2, sam2: modelPath)
        let loadSeconds = Double(DispatchTime.now().uptimeNanoseconds - loadStart.uptimeNanoseconds) / 1e9
        var reports: [VolumeReport] = []
        for target in targets {
            let readStart = DispatchTime.now()
            let image = try first ?? NIfTI.open(target)
            first = nil
            let readSeconds = Double(DispatchTime.now().uptimeNanoseconds - readStart.uptimeNanoseconds) / 1e9
            let segmentStart = DispatchTime.now()
            let result = try query.run(image, name: target, segmenter: segmenter) { done, total in
                guard !json else { return }
                let elapsed = Double(DispatchTime.now().uptimeNanoseconds - segmentStart.uptimeNanoseconds) / 1e9
                let eta = elapsed / Double(done) * Double(total - done)
                printError(String(format: "segment: %@ slice %d/%d (ETA %.0f s)", target, done, total, eta))
            }
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            let outPath = (out as NSString).appendingPathComponent((target as NSString).lastPathComponent)
            let writeStart = DispatchTime.now()
            try result.output.write(to: outPath)
            var report = result.report
            report.file = target
            report.output = outPath
            report.seconds["read"] = readSeconds
            report.seconds["write"] = Double(DispatchTime.now().uptimeNanoseconds - writeStart.uptimeNanoseconds) / 1e9
            report.seconds["total", default: 0] += readSeconds + report.seconds["write"]!
            reports.append(report)
            if !json {
                let volumes = report.labels.map {
                    String(format: "%@ %d voxels %.2f mL", $0.label, $0.voxels, $0.volumeMl)
                }
                printError("segment: \(target) -> \(outPath) (\(volumes.joined(separator: "; ")))")
            }
        }
        if json {
            let report = VolumeSegmentRunReport(modelLoadSeconds: loadSeconds, k: k, bank: bank.path, volumes: reports)
            FileHandle.standardOutput.write(try QueryReport.json(report, pretty: true) + Data("\n".utf8))
        }
    }
}

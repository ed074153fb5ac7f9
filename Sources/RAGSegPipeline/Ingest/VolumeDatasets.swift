// Finding volume pairs: nnU-Net v2 3-D datasets, Medical Segmentation Decathlon (MSD) datasets and plain
// folders of volumes. A folder or dataset without NIfTI images is a 2-D one and is left to `CaseSources`.
import Foundation
import RAGSegIO
import SupportBank

/// A dataset folder of volumes and what its dataset.json says about them.
public struct VolumeDataset: Sendable {
    public enum Layout: String, Sendable {
        /// imagesTr/CASE_XXXX<file_ending> (one file per channel), labelsTr/CASE<file_ending>.
        case nnUNet = "nnU-Net v2"
        /// dataset.json "training": [{"image": ..., "label": ...}], 4-D images hold the channels.
        case msd = "MSD"
    }

    public var path: String
    public var layout: Layout
    /// Channel number -> name: nnU-Net's `channel_names`, MSD's `modality`.
    public var channelNames: [Int: String]
    /// nnU-Net's `file_ending` (".nii.gz" when absent).
    public var fileEnding: String
    var training: [(image: String, label: String)]

    /// True for .nii and .nii.gz names.
    public static func isNIfTIName(_ name: String) -> Bool {
        let lower = name.lowercased()
        return lower.hasSuffix(".nii") || lower.hasSuffix(".nii.gz")
    }

    /// The name without .nii/.nii.gz.
    static func stem(_ name: String) -> String {
        let lower = name.lowercased()
        if lower.hasSuffix(".nii.gz") { return String(name.dropLast(7)) }
        if lower.hasSuffix(".nii") { return String(name.dropLast(4)) }
        return name
    }

    /// Visible NIfTI files of a folder by stem (MSD archives carry macOS "._" files: hidden names are skipped).
    static func niftiFiles(_ dir: String) -> [String: String]? {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return nil }
        var byStem = [String: String]()
        for name in names where isNIfTIName(name) && !name.hasPrefix(".") {
            byStem[stem(name)] = (dir as NSString).appendingPathComponent(name)
        }
        return byStem
    }

    /// Whether a folder holds NIfTI files (then `--images` means volumes).
    public static func holdsVolumes(_ dir: String) -> Bool { !(niftiFiles(dir) ?? [:]).isEmpty }

    /// The volume dataset at `path`, or nil when it is not one (no NIfTI in imagesTr, and a dataset.json whose
    /// file_ending is not NIfTI): a 2-D PNG dataset.
    public static func detect(_ path: String) throws -> VolumeDataset? {
        let file = (path as NSString).appendingPathComponent("dataset.json")
        var json = [String: Any]()
        if let data = FileManager.default.contents(atPath: file) {
            guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw BankError.input(file, "is not a JSON object")
            }
            json = object
        }
        let ending = json["file_ending"] as? String
        let imagesTr = (path as NSString).appendingPathComponent("imagesTr")
        guard ending.map(isNIfTIName) ?? holdsVolumes(imagesTr) else { return nil }
        var names = [Int: String]()
        let isMSD = json["training"] != nil && ending == nil
        for (key, value) in (json[isMSD ? "modality" : "channel_names"] as? [String: Any]) ?? [:] {
            guard let channel = Int(key), channel >= 0, let name = value as? String else {
                throw BankError.input(
                    file,
                    "\(isMSD ? "modality" : "channel_names") entry \"\(key)\" is not "
                        + "\"<channel number>\": \"<name>\"")
            }
            names[channel] = name
        }
        var training = [(image: String, label: String)]()
        if isMSD {
            guard let list = json["training"] as? [[String: Any]] else {
                throw BankError.input(file, "\"training\" is not a list of {\"image\", \"label\"} objects")
            }
            for (n, entry) in list.enumerated() {
                guard let image = entry["image"] as? String, let label = entry["label"] as? String else {
                    throw BankError.input(file, "\"training\" entry \(n) lacks \"image\" or \"label\"")
                }
                // MSD writes "./imagesTr/x.nii.gz", relative to the dataset folder.
                func resolve(_ p: String) -> String {
                    p.hasPrefix("/")
                        ? p : (path as NSString).appendingPathComponent(p.hasPrefix("./") ? String(p.dropFirst(2)) : p)
                }
                training.append((resolve(image), resolve(label)))
            }
        }
        return VolumeDataset(
            path: path, layout: isMSD ? .msd : .nnUNet, channelNames: names, fileEnding: ending ?? ".nii.gz",
            training: training)
    }

    /// The intensity default for `channel`: the CT window when its name is "CT", percentiles otherwise.
    public func defaultMapping(channel: Int) -> IntensityMapping {
        IntensityMapping.defaultFor(channelName: channelNames[channel])
    }

    /// The pairs to add, reading `channel`: nnU-Net's CASE_XXXX file of that channel (a 3-D file), MSD's
    /// frame `channel` of 4-D images (3-D images when the dataset has one modality).
    public func sources(channel: Int) throws -> [VolumeCaseSource] {
        switch layout {
        case .msd:
            guard !training.isEmpty else {
                throw BankError.input((path as NSString).appendingPathComponent("dataset.json"), "no training pairs")
            }
            // One modality: 3-D images; a 4-D image then still needs its frame named (checked per file).
            let frame: Int? = channelNames.count > 1 ? channel : nil
            return training.map { VolumeCaseSource(image: $0.image, labels: $0.label, frame: frame) }
        case .nnUNet:
            let d = path as NSString
            return try VolumeDataset.pairs(
                images: d.appendingPathComponent("imagesTr"), labels: d.appendingPathComponent("labelsTr"),
                channel: channel, requireChannelSuffix: true)
        }
    }

    /// Pairs image and label volumes of two folders by stem (.nii or .nii.gz). An image stem may carry
    /// nnU-Net's channel suffix: CASE_XXXX pairs with CASE when XXXX is `channel` (other channels are not
    /// used). `frame`: the frame read from images without the suffix (nil: they must have one frame).
    /// `requireChannelSuffix`: every image must carry one (nnU-Net datasets). Unpaired files are an
    /// error listing a few, so nothing is silently skipped.
    public static func pairs(
        images: String, labels: String, channel: Int, frame: Int? = nil, requireChannelSuffix: Bool = false
    ) throws -> [VolumeCaseSource] {
        guard let imageFiles = niftiFiles(images) else { throw BankError.input(images, "cannot list directory") }
        guard let labelFiles = niftiFiles(labels) else { throw BankError.input(labels, "cannot list directory") }
        let suffix = "_" + String(format: "%04d", channel)
        var out = [VolumeCaseSource]()
        var unpaired = [String]()
        var usedLabels = Set<String>()
        for (stem, path) in imageFiles.sorted(by: { $0.key < $1.key }) {
            let tail = stem.suffix(5)
            let isChannel = stem.count > 5 && tail.first == "_" && tail.dropFirst().allSatisfy(\.isNumber)
            if isChannel && !stem.hasSuffix(suffix) && labelFiles[stem] == nil { continue }
            if requireChannelSuffix && !isChannel {
                unpaired.append(path)
                continue
            }
            let caseStem = isChannel ? String(stem.dropLast(5)) : stem
            if let label = labelFiles[stem] ?? labelFiles[caseStem] {
                // A CASE_XXXX file is one channel; `frame` picks a frame of the other (4-D) images.
                out.append(VolumeCaseSource(image: path, labels: label, frame: isChannel ? nil : frame))
                usedLabels.insert(label)
            } else {
                unpaired.append(path)
            }
        }
        unpaired += labelFiles.values.filter { !usedLabels.contains($0) }.sorted()
        guard unpaired.isEmpty else {
            throw BankError.input(
                unpaired[0],
                """
                \(unpaired.count) file(s) without a partner (pairs match by file stem\
                \(requireChannelSuffix ? ", images as CASE\(suffix)" : "")), e.g. \
                \(unpaired.prefix(3).joined(separator: ", "))
                """
            )
        }
        guard !out.isEmpty else { throw BankError.input(images, "no image/label volume pairs found") }
        return out
    }
}

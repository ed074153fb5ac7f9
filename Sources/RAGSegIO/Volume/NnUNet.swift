// nnU-Net v2 dataset conventions that volume commands need: one file per channel (`CASE_0000.nii.gz`
// is channel 0) and dataset.json's `channel_names`, which decide the intensity default.
import Foundation

public enum NnUNetDataset {
    /// The image file of `caseID`'s channel `channel` ("case_001" + 0 + ".nii.gz" -> "case_001_0000.nii.gz").
    public static func imageFileName(caseID: String, channel: Int = 0, fileEnding: String = ".nii.gz") -> String {
        let digits = String(channel)
        return caseID + "_" + String(repeating: "0", count: max(0, 4 - digits.count)) + digits + fileEnding
    }

    /// `channel_names` of a dataset.json (keys are channel numbers as text), as channel -> name.
    public static func channelNames(datasetJSON bytes: [UInt8], name: String) throws -> [Int: String] {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(bytes))
        } catch {
            throw RAGSegIOError(path: name, message: "is not valid JSON: \(error.localizedDescription)")
        }
        guard let root = object as? [String: Any], let names = root["channel_names"] as? [String: Any] else {
            throw RAGSegIOError(path: name, message: "has no \"channel_names\" object (nnU-Net v2 dataset.json)")
        }
        var result: [Int: String] = [:]
        for (key, value) in names {
            guard let channel = Int(key), channel >= 0, let text = value as? String else {
                throw RAGSegIOError(
                    path: name,
                    message: "channel_names entry \"\(key)\": \(value) is not \"<channel number>\": \"<name>\"")
            }
            result[channel] = text
        }
        return result
    }

    /// The intensity default for `channel` of a dataset.json: CT window for "CT", percentiles otherwise.
    public static func defaultIntensityMapping(datasetJSON bytes: [UInt8], channel: Int = 0, name: String) throws
        -> IntensityMapping
    {
        IntensityMapping.defaultFor(channelName: try channelNames(datasetJSON: bytes, name: name)[channel])
    }
}

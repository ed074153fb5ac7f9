// The real models of an existing bank: the weight files given on the command line, or else the ones
// recorded when the bank was created; either way checked against the bank's SHA-256 identities.
import Foundation
import SupportBank

public enum BankModels {
    /// Absolute path, as recorded in new banks.
    public static func absolute(_ path: String) -> String {
        URL(fileURLWithPath: path).standardizedFileURL.path
    }

    /// Weight files for `bank`: explicit ones win; missing ones come from the bank's record.
    public static func paths(for bank: SupportBank, dinov2: String?, sam2: String?) throws -> (
        dinov2: String, sam2: String
    ) {
        let recorded = bank.metadata.weightsPaths ?? [:]
        guard let d = dinov2 ?? recorded["dinov2"], let s = sam2 ?? recorded["sam2"] else {
            throw BankError.bank(
                bank.path,
                "records no weight files (created with --stand-in or by an older version): give --dinov2 and --sam2")
        }
        return (d, s)
    }

    /// Loads both encoders; `RetrievalSegmenter` and `requireModels` check them against the bank.
    public static func encoders(for bank: SupportBank, dinov2: String?, sam2: String?) throws -> (
        DINOv2RetrievalEncoder, SAM2SupportEncoder
    ) {
        let p = try paths(for: bank, dinov2: dinov2, sam2: sam2)
        return (try DINOv2RetrievalEncoder(path: p.dinov2), try SAM2Checkpoint.supportEncoder(path: p.sam2))
    }

    public static func segmenter(for bank: SupportBank, dinov2: String?, sam2: String?) throws -> RetrievalSegmenter {
        let (r, s) = try encoders(for: bank, dinov2: dinov2, sam2: sam2)
        return try RetrievalSegmenter(bank: bank, retrieval: r, support: s)
    }
}

// What a bank knows about the volumes its slice cases came from: recording its volume settings once,
// removing every slice of one volume together, and counting volumes.
import Foundation
import RAGSegIO

extension SupportBank {
    /// Records `settings` as the bank's volume settings in one transaction when it has none (a bank created
    /// for 2-D images gets them with its first volume); a bank that has other settings refuses. Returns the
    /// stored metadata. `metadata` of this instance keeps what was read at open.
    @discardableResult
    public func recordVolumeSettings(_ settings: VolumeSettings) throws -> BankMetadata {
        try updateStoredMetadata { stored, _ in
            if let existing = stored.volumeSettings {
                guard existing == settings else {
                    throw BankError.bank(
                        path, "was built with volume settings \(existing.summary), not \(settings.summary)")
                }
                return false
            }
            stored.volumeSettings = settings
            return true
        }
    }

    /// Removes every slice case of one volume in one transaction: the volume is named by the SHA-256 (hex)
    /// of its file or by its path as it was added. Returns the removed ids, ascending (none: nothing matched,
    /// nothing changed).
    public func removeVolume(_ volume: String) throws -> [UInt64] {
        guard !readOnly else { throw BankError.bank(path, "opened read-only") }
        let key = volume.lowercased()
        lock.lock()
        defer { lock.unlock() }
        let ids: [UInt64] = try env.write { txn in
            try catchUp(in: txn)
            var ids = [UInt64]()
            try txn.forEach(cases) { _, value in
                let record = try JSONDecoder().decode(CaseRecord.self, from: Data(value))
                if let origin = record.origin, origin.volumeHash == key || origin.volume == volume {
                    ids.append(record.id)
                }
                return true
            }
            if !ids.isEmpty { try deleteCases(ids, in: txn) }
            return ids
        }
        try env.read { try catchUp(in: $0) }
        return ids.sorted()
    }

    /// Distinct volumes (by file hash) and the slice cases cut from them.
    public func volumeCounts() throws -> (volumes: Int, slices: Int) {
        try env.read { txn in
            var hashes = Set<String>()
            var slices = 0
            try txn.forEach(cases) { _, value in
                if let origin = try JSONDecoder().decode(CaseRecord.self, from: Data(value)).origin {
                    hashes.insert(origin.volumeHash)
                    slices += 1
                }
                return true
            }
            return (hashes.count, slices)
        }
    }
}

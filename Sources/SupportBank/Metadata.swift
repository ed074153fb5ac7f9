// Reading and rewriting the bank's stored metadata (the `meta` database's "bank" key).
import Foundation

extension SupportBank {
    /// The bank's metadata as stored in `meta` (refusing a format this build does not read), for `open` and for
    /// the lock-free readers of `index merge`.
    static func readMetadata(_ env: LMDBEnvironment, _ meta: LMDBDatabase, path: String) throws -> BankMetadata {
        let metaDB = meta
        guard let bytes = try env.read({ try $0.get(metaDB, key: Array("bank".utf8)) }),
            let decoded = try? JSONDecoder().decode(BankMetadata.self, from: Data(bytes))
        else {
            throw BankError.bank(path, "bank metadata missing or unreadable")
        }
        guard BankMetadata.readableFormatVersions.contains(decoded.formatVersion) else {
            throw BankError.bank(
                path,
                """
                format version \(decoded.formatVersion) is not supported (this build reads \
                \(BankMetadata.readableFormatVersions.lowerBound)...\(BankMetadata.readableFormatVersions.upperBound))
                """
            )
        }
        return decoded
    }

    /// Rewrites the stored metadata in one transaction: `change` edits it and returns whether to write it
    /// (false: it is already as wanted); returns the stored metadata. `metadata` of this instance keeps what was
    /// read at open.
    func updateStoredMetadata(_ change: (inout BankMetadata, LMDBTransaction) throws -> Bool) throws -> BankMetadata {
        guard !readOnly else { throw BankError.bank(path, "opened read-only") }
        lock.lock()
        defer { lock.unlock() }
        return try env.write { txn in
            let key = Array("bank".utf8)
            guard let bytes = try txn.get(meta, key: key) else { throw BankError.bank(path, "bank metadata missing") }
            var stored = try JSONDecoder().decode(BankMetadata.self, from: Data(bytes))
            if try change(&stored, txn) {
                try txn.put(meta, key: key, value: Array(try JSONEncoder.sorted.encode(stored)))
            }
            return stored
        }
    }
}

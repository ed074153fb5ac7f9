// Shard banks: which share of the inputs a bank holds (`index add --shard I/N`), banks created from a template
// bank's settings (`index create --template`), and reading a bank's metadata without touching it.
import Foundation

/// The share of the inputs a shard bank holds: shard `index` of `count` (0-based, like nnU-Net's part_id).
/// An input belongs to shard `SHA-256(image file) mod count` (first 8 bytes, big-endian), so the split depends
/// on the inputs' content only: not on how they are listed, named or where they lie.
public struct ShardAssignment: Codable, Equatable, Sendable, CustomStringConvertible {
    public var index: Int
    public var count: Int

    public init(index: Int, count: Int) {
        self.index = index
        self.count = count
    }

    public var description: String { "\(index)/\(count)" }

    /// The shard (0..<count) an input whose image file has this SHA-256 belongs to.
    public static func shard(ofSHA256 digest: [UInt8], count: Int) -> Int {
        precondition(count > 0 && digest.count >= 8)
        var v: UInt64 = 0
        for b in digest.prefix(8) { v = v << 8 | UInt64(b) }
        return Int(v % UInt64(count))
    }

    public func owns(sha256 digest: [UInt8]) -> Bool { ShardAssignment.shard(ofSHA256: digest, count: count) == index }
}

extension SupportBank {
    /// Reads the metadata of the bank at `path` without a lock file and without writing anything (a finished bank
    /// on a read-only or network filesystem, e.g. a template on shared storage).
    public static func readMetadata(at path: String) throws -> BankMetadata {
        try ReadOnlyBank(path: path).metadata
    }

    /// The metadata of a new bank made with `template`'s settings (models, labels, preprocessing, memory shape,
    /// index type, volume settings): its own UUID and creation time, the template recorded, no shard yet.
    public static func metadata(fromTemplate template: BankMetadata) -> BankMetadata {
        var m = template
        m.uuid = UUID().uuidString
        m.created = Date().timeIntervalSince1970
        m.template = template.template ?? template.uuid
        m.shard = nil
        return m
    }

    /// Records that this bank holds shard `shard` (in one transaction), before `index add --shard` adds to it.
    /// A bank that holds another share, or cases added without `--shard`, refuses: mixing shares would make
    /// `index merge` count cases twice or miss them.
    @discardableResult
    public func recordShard(_ shard: ShardAssignment) throws -> BankMetadata {
        try updateStoredMetadata { stored, txn in
            if let existing = stored.shard {
                guard existing == shard else {
                    throw BankError.bank(
                        path,
                        """
                        holds shard \(existing) of the inputs, not \(shard); give each shard its own bank (created \
                        with `index create --template`)
                        """)
                }
                return false
            }
            let caseCount = try txn.count(cases)
            guard caseCount == 0 else {
                throw BankError.bank(
                    path,
                    """
                    already holds \(caseCount) case(s) added without --shard; a shard needs a bank of its own \
                    (`index create SHARD --template BANK`)
                    """)
            }
            stored.shard = shard
            return true
        }
    }
}

/// A finished bank opened read-only without a lock file (MDB_NOLOCK): nothing of it, not even lock.mdb, is
/// written. Only for banks no process writes meanwhile (a shard whose build has ended, a template).
struct ReadOnlyBank {
    let path: String
    let env: LMDBEnvironment
    let meta, cases, embeddings, memories: LMDBDatabase
    let metadata: BankMetadata

    init(path: String, mapSize: Int = SupportBank.defaultMapSize) throws {
        let dataFile = (path as NSString).appendingPathComponent("data.mdb")
        guard FileManager.default.fileExists(atPath: dataFile) else {
            throw BankError.bank(path, "no bank here (missing data.mdb)")
        }
        try BankCreation.refuseStaging(path)
        self.path = path
        env = try LMDBEnvironment(path: path, mapSize: mapSize, readOnly: true, noLock: true)
        do {
            meta = try env.database("meta", create: false)
            cases = try env.database("cases", create: false)
            embeddings = try env.database("embeddings", create: false)
            memories = try env.database("memories", create: false)
        } catch {
            throw BankError.bank(path, "not a support bank (\(error))")
        }
        let decoded = try SupportBank.readMetadata(env, meta, path: path)
        metadata = decoded
    }

    func caseCount() throws -> Int {
        let db = cases
        return try env.read { try $0.count(db) }
    }
}

// The support bank: LMDB as the single source of truth, a FAISS index as a derived search cache.
// See README.md in this directory for the on-disk layout and the consistency rules.
//
// The public API, by file:
//   SupportBank.swift  create, open, requireModels; path, metadata, indexFilePath, indexRepair
//   Writes.swift       add (a batch of prepared cases, all or nothing), remove
//   Reads.swift        search, record, embedding, memory, supportMemory, allRecords, caseID, statistics, lmdbUsedBytes
//   IndexCache.swift   checkpoint, refresh, setSearchParameter; loading, rebuilding, catching up index.faiss
//   Verify.swift       verify
//   BulkFill.swift     benchmarkBulkFill, benchmarkSetSync: `@_spi(Benchmark)`, for `ragseg-bench bank` only
import CLMDB
import Foundation
import SAM2

/// A support bank directory: `data.mdb`/`lock.mdb` (LMDB) and `index.faiss` (derived).
///
/// Thread safety: one instance may be shared by threads; searches and writes are serialized by an
/// internal lock around the in-memory FAISS index. Across processes LMDB allows one writer at a
/// time and any number of readers, each reading a consistent snapshot.
public final class SupportBank: @unchecked Sendable {
    public static let defaultMapSize = 1 << 40  // 1 TiB of address space; the file grows as written
    public static let indexFileName = "index.faiss"
    /// Journal entries the on-disk index may lag behind LMDB before a write forces a checkpoint.
    public static let checkpointInterval = 1024
    /// Index files at most this large are rewritten at every checkpoint opportunity (cheap).
    public static let cheapCheckpointBytes = 64 << 20
    /// HNSW cannot delete: removed ids stay in the graph as tombstones (filtered from results) until
    /// they exceed this fraction of the index, when the index is rebuilt from LMDB.
    public static let tombstoneRebuildFraction = 0.1

    public let path: String
    public let metadata: BankMetadata
    let env: LMDBEnvironment
    let meta, cases, embeddings, memories, hashes, journal: LMDBDatabase

    let lock = NSLock()
    var index: FaissIndex
    /// Journal sequence number the in-memory index reflects.
    var indexSeq: UInt64
    /// Concrete kind of the in-memory index and the vector count it was built (trained) for.
    var indexBuiltKind: IndexKind
    var indexBuiltCount: Int
    /// Journal sequence number of the index file on disk (nil: missing or unusable).
    var savedSeq: UInt64?
    /// What happened to the index file at open (for `info`/`verify` and the tests).
    public internal(set) var indexRepair: String?

    public var indexFilePath: String { (path as NSString).appendingPathComponent(SupportBank.indexFileName) }

    // MARK: - Create / open

    /// Creates a new bank in `path` (a new or empty directory). Crash-atomic: the bank is built in a staging
    /// folder beside `path` and renamed into place (Creation.swift), so a crash leaves no bank or a whole one.
    public static func create(at path: String, metadata: BankMetadata, mapSize: Int = defaultMapSize) throws
        -> SupportBank
    {
        try BankCreation.checkTarget(path)
        guard metadata.embeddingDimension > 0, !metadata.labels.isEmpty, metadata.labels.count < 65535 else {
            throw BankError.bank(
                path,
                "invalid metadata (embedding dimension \(metadata.embeddingDimension), \(metadata.labels.count) labels)"
            )
        }
        let staging = try BankCreation.makeStaging(for: path)
        do {
            try initialize(staging, metadata: metadata, mapSize: mapSize)
            try BankCreation.publish(staging, as: path)
        } catch {
            try? FileManager.default.removeItem(atPath: staging)
            throw error
        }
        return try open(at: path, mapSize: mapSize)
    }

    /// Writes an empty bank's databases and metadata into `path`; the environment is closed on return.
    static func initialize(_ path: String, metadata: BankMetadata, mapSize: Int) throws {
        let env = try LMDBEnvironment(path: path, mapSize: mapSize)
        try env.write { txn in
            var dbi = MDB_dbi()
            for name in ["meta", "cases", "embeddings", "memories", "hashes", "journal"] {
                try lmdbCheck(
                    mdb_dbi_open(txn.txn, name, UInt32(MDB_CREATE), &dbi), "create database \(name) in \(path)")
            }
        }
        let metaDB = try env.database("meta", create: false)
        let encoded = try JSONEncoder.sorted.encode(metadata)
        try env.write { txn in
            try txn.put(metaDB, key: Array("bank".utf8), value: Array(encoded))
            try txn.put(metaDB, key: Array("nextID".utf8), value: Codec.key(1))
            try txn.put(metaDB, key: Array("seq".utf8), value: Codec.key(0))
        }
    }

    /// Opens an existing bank, bringing its index file up to date (see README.md).
    public static func open(at path: String, mapSize: Int = defaultMapSize, readOnly: Bool = false) throws
        -> SupportBank
    {
        let dataFile = (path as NSString).appendingPathComponent("data.mdb")
        guard FileManager.default.fileExists(atPath: dataFile) else {
            if let staging = BankCreation.unfinishedStaging(for: path) {
                throw BankError.bank(
                    path,
                    """
                    no bank here: an `index create` or `index merge` of it was stopped before it finished (its \
                    staging folder \(staging) is left); run it again
                    """)
            }
            throw BankError.bank(path, "no bank here (missing data.mdb); create one with `ragseg index create`")
        }
        try BankCreation.refuseStaging(path)
        let env = try LMDBEnvironment(path: path, mapSize: mapSize, readOnly: readOnly)
        return try SupportBank(path: path, env: env, readOnly: readOnly)
    }

    /// Opens a bank still in its staging folder (`index merge` builds its index there before the rename).
    static func openStaged(at path: String, mapSize: Int = defaultMapSize) throws -> SupportBank {
        let env = try LMDBEnvironment(path: path, mapSize: mapSize)
        return try SupportBank(path: path, env: env, readOnly: false)
    }

    let readOnly: Bool

    /// Opens `env` as a bank. Internal so `snapshot` (Snapshot.swift) can finish the bank in its staging folder,
    /// which `open` refuses.
    init(path: String, env: LMDBEnvironment, readOnly: Bool) throws {
        self.path = path
        self.env = env
        self.readOnly = readOnly
        do {
            meta = try env.database("meta", create: false)
            cases = try env.database("cases", create: false)
            embeddings = try env.database("embeddings", create: false)
            memories = try env.database("memories", create: false)
            hashes = try env.database("hashes", create: false)
            journal = try env.database("journal", create: false)
        } catch {
            throw BankError.bank(path, "not a support bank (\(error))")
        }
        let decoded = try Self.readMetadata(env, meta, path: path)
        metadata = decoded
        index = try FaissIndex(dimension: decoded.embeddingDimension, factory: "Flat")
        indexSeq = 0
        indexBuiltKind = .flat
        indexBuiltCount = 0
        try loadIndex()
    }

    /// Writes a checkpoint of the index when that is cheap or overdue.
    deinit {
        if !readOnly { try? checkpoint(force: false) }
    }
}

extension SupportBank {
    /// Throws unless the given models are the ones that built this bank (vectors from other
    /// weights live in another space: mixing them would silently return wrong neighbours). The
    /// configurations are compared too where the bank recorded one (ModelIdentity.configuration).
    public func requireModels(retrieval: ModelIdentity, support: ModelIdentity) throws {
        for (given, recorded, role) in [
            (retrieval, metadata.retrievalModel, "retrieval (DINOv2)"),
            (support, metadata.supportModel, "support (SAM 2)"),
        ] {
            var weightsOnly = given
            weightsOnly.configuration = recorded.configuration
            guard weightsOnly == recorded else {
                throw BankError.bank(
                    path,
                    """
                    was built with \(role) weights \(recorded), not \(given); use the same weights or create a \
                    new bank
                    """)
            }
            if let expected = recorded.configuration, given.configuration != expected {
                throw BankError.bank(
                    path,
                    """
                    was built with another \(role) configuration: \(
                        ModelIdentity.configurationDifference(given.configuration, expected)); use the model \
                    description the bank was created with, or create a new bank
                    """)
            }
        }
    }
}

extension ModelIdentity {
    /// The first differing field of two canonical configurations, "field X (the bank's: Y)".
    static func configurationDifference(_ given: String?, _ recorded: String) -> String {
        func object(_ text: String?) -> [String: Any] {
            guard let data = text?.data(using: .utf8) else { return [:] }
            return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
        }
        func show(_ value: Any?) -> String {
            guard let value else { return "absent" }
            guard JSONSerialization.isValidJSONObject([value]),
                let data = try? JSONSerialization.data(withJSONObject: [value], options: [.sortedKeys]),
                let text = String(data: data, encoding: .utf8)
            else { return "\(value)" }
            return String(text.dropFirst().dropLast())
        }
        let a = object(given), b = object(recorded)
        for key in Set(a.keys).union(b.keys).sorted() where show(a[key]) != show(b[key]) {
            return "\(key) \(show(a[key])) (the bank's: \(show(b[key])))"
        }
        return "\(given ?? "none") (the bank's: \(recorded))"
    }
}

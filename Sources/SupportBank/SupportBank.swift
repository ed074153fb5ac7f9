// The support bank: LMDB as the single source of truth, a FAISS index as a derived search cache.
// See README.md in this directory for the on-disk layout and the consistency rules.
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

    private let lock = NSLock()
    private var index: FaissIndex
    /// Journal sequence number the in-memory index reflects.
    private var indexSeq: UInt64
    /// Concrete kind of the in-memory index and the vector count it was built (trained) for.
    private var indexBuiltKind: IndexKind
    private var indexBuiltCount: Int
    /// Journal sequence number of the index file on disk (nil: missing or unusable).
    private var savedSeq: UInt64?
    /// What happened to the index file at open (for `info`/`verify` and the tests).
    public private(set) var indexRepair: String?

    public var indexFilePath: String { (path as NSString).appendingPathComponent(SupportBank.indexFileName) }

    // MARK: - Create / open

    /// Creates a new bank in `path` (a new or empty directory).
    public static func create(at path: String, metadata: BankMetadata, mapSize: Int = defaultMapSize) throws -> SupportBank {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        if fm.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw BankError.bank(path, "exists and is not a directory") }
            let contents = (try? fm.contentsOfDirectory(atPath: path)) ?? []
            guard contents.isEmpty else { throw BankError.bank(path, "directory is not empty (a bank already exists there?)") }
        } else {
            do { try fm.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
                throw BankError.bank(path, "cannot create directory: \(error.localizedDescription)")
            }
        }
        guard metadata.embeddingDimension > 0, !metadata.labels.isEmpty, metadata.labels.count < 65535 else {
            throw BankError.bank(path, "invalid metadata (embedding dimension \(metadata.embeddingDimension), \(metadata.labels.count) labels)")
        }
        let env = try LMDBEnvironment(path: path, mapSize: mapSize)
        try env.write { txn in
            var dbi = MDB_dbi()
            for name in ["meta", "cases", "embeddings", "memories", "hashes", "journal"] {
                try lmdbCheck(mdb_dbi_open(txn.txn, name, UInt32(MDB_CREATE), &dbi), "create database \(name) in \(path)")
            }
        }
        let metaDB = try env.database("meta", create: false)
        let encoded = try JSONEncoder.sorted.encode(metadata)
        try env.write { txn in
            try txn.put(metaDB, key: Array("bank".utf8), value: Array(encoded))
            try txn.put(metaDB, key: Array("nextID".utf8), value: Codec.key(1))
            try txn.put(metaDB, key: Array("seq".utf8), value: Codec.key(0))
        }
        return try SupportBank(path: path, env: env, readOnly: false)
    }

    /// Opens an existing bank, bringing its index file up to date (see README.md).
    public static func open(at path: String, mapSize: Int = defaultMapSize, readOnly: Bool = false) throws -> SupportBank {
        let dataFile = (path as NSString).appendingPathComponent("data.mdb")
        guard FileManager.default.fileExists(atPath: dataFile) else {
            throw BankError.bank(path, "no bank here (missing data.mdb); create one with `ragseg index create`")
        }
        let env = try LMDBEnvironment(path: path, mapSize: mapSize, readOnly: readOnly)
        return try SupportBank(path: path, env: env, readOnly: readOnly)
    }

    private let readOnly: Bool

    private init(path: String, env: LMDBEnvironment, readOnly: Bool) throws {
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
        let metaDB = meta
        guard let bytes = try env.read({ try $0.get(metaDB, key: Array("bank".utf8)) }),
              let decoded = try? JSONDecoder().decode(BankMetadata.self, from: Data(bytes)) else {
            throw BankError.bank(path, "bank metadata missing or unreadable")
        }
        guard BankMetadata.readableFormatVersions.contains(decoded.formatVersion) else {
            throw BankError.bank(path, "format version \(decoded.formatVersion) is not supported (this build reads \(BankMetadata.readableFormatVersions.lowerBound)...\(BankMetadata.readableFormatVersions.upperBound))")
        }
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

    // MARK: - Index maintenance

    private struct IndexFileHeader: Codable {
        var bank: String
        var seq: UInt64
        var lmdbTransaction: Int
        var count: Int
        var kind: IndexKind
        var builtCount: Int
        var dimension: Int
    }

    private func currentSeq(_ txn: LMDBTransaction) throws -> UInt64 {
        Codec.u64(try txn.get(meta, key: Array("seq".utf8)))
    }

    /// Loads index.faiss when it is valid and belongs to this bank, then replays the journal; a
    /// missing or corrupt file is rebuilt from LMDB and rewritten.
    private func loadIndex() throws {
        if !readOnly { removeAbandonedTemporaryFiles() }
        var problem: String?
        let file = indexFilePath
        if !FileManager.default.fileExists(atPath: file) {
            problem = "index file missing"
        } else {
            do {
                let (loaded, user) = try FaissIndex.read(from: file)
                let header = try JSONDecoder().decode(IndexFileHeader.self, from: Data(user))
                let latest = try env.read { try currentSeq($0) }
                if header.bank != metadata.uuid {
                    problem = "index file belongs to another bank"
                } else if header.dimension != metadata.embeddingDimension || loaded.dimension != metadata.embeddingDimension {
                    problem = "index file dimension \(loaded.dimension) differs from the bank's \(metadata.embeddingDimension)"
                } else if header.seq > latest || loaded.count != header.count {
                    problem = "index file is ahead of LMDB or inconsistent"
                } else {
                    index = loaded
                    indexSeq = header.seq
                    indexBuiltKind = header.kind
                    indexBuiltCount = header.builtCount
                    savedSeq = header.seq
                }
            } catch {
                problem = "index file unreadable (\(error))"
            }
        }
        if let problem {
            indexRepair = "\(problem): rebuilt from LMDB"
            try env.read { try rebuildIndex(in: $0) }
            if !readOnly { try? saveIndex() }
        } else {
            try env.read { txn in try catchUp(in: txn) }
            if indexSeq != savedSeq { indexRepair = "index file was \(indexSeq - (savedSeq ?? 0)) journal entries stale: replayed" }
        }
    }

    /// Deletes `index.faiss.tmp.PID` files left by writers that died mid-write (PID no longer alive);
    /// a live writer's temporary file is left alone.
    private func removeAbandonedTemporaryFiles() {
        let prefix = SupportBank.indexFileName + ".tmp."
        for name in (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [] where name.hasPrefix(prefix) {
            guard let pid = Int32(name.dropFirst(prefix.count)) else { continue }
            if pid != getpid() && kill(pid, 0) != 0 && errno == ESRCH {
                try? FileManager.default.removeItem(atPath: (path as NSString).appendingPathComponent(name))
            }
        }
    }

    /// Rebuilds the in-memory index from the embeddings database as seen by txn.
    private func rebuildIndex(in txn: LMDBTransaction) throws {
        let dimension = metadata.embeddingDimension
        let count = try txn.count(embeddings)
        var kind = metadata.indexKind.resolved(count: count, dimension: dimension)
        if kind == .ivf && count < 1024 { kind = .flat }  // too few vectors to train k-means cells
        let fresh = try FaissIndex(dimension: dimension, factory: kind.factory(count: count, dimension: dimension))
        FaissIndex.threads = ProcessInfo.processInfo.activeProcessorCount
        let chunk = 16384
        var ids = [Int64]()
        var vectors = [Float]()
        ids.reserveCapacity(chunk)
        vectors.reserveCapacity(chunk * dimension)
        if kind == .ivf {
            // Train on an evenly spaced sample of 39 vectors per cell (FAISS's minimum).
            let stride = max(1, count / (39 * IndexKind.ivfCellCount(count)))
            var sample = [Float]()
            var i = 0
            try txn.forEach(embeddings) { _, value in
                if i % stride == 0, let v = Codec.decodeEmbedding(value, dimension: dimension) { sample += v }
                i += 1
                return true
            }
            try fresh.train(sample)
        }
        var firstError: Error?
        try txn.forEach(embeddings) { key, value in
            guard let v = Codec.decodeEmbedding(value, dimension: dimension) else {
                firstError = BankError.bank(path, "embedding of case \(Codec.id(fromKey: key)) is corrupt (checksum); run `ragseg index verify`")
                return false
            }
            ids.append(Int64(Codec.id(fromKey: key)))
            vectors += v
            if ids.count == chunk {
                do { try fresh.add(vectors, ids: ids) } catch { firstError = error; return false }
                ids.removeAll(keepingCapacity: true)
                vectors.removeAll(keepingCapacity: true)
            }
            return true
        }
        if let firstError { throw firstError }
        try fresh.add(vectors, ids: ids)
        index = fresh
        indexSeq = try currentSeq(txn)
        indexBuiltKind = kind
        indexBuiltCount = count
    }

    /// Applies journal entries after indexSeq (up to txn's snapshot) to the in-memory index.
    private func catchUp(in txn: LMDBTransaction) throws {
        let latest = try currentSeq(txn)
        guard latest > indexSeq else { return }
        var added = [UInt64]()
        var removed = [Int64]()
        try txn.forEach(journal, from: Codec.key(indexSeq + 1)) { key, value in
            if Codec.id(fromKey: key) > latest { return false }
            guard value.count == 9 else { return true }
            let id = Codec.id(fromKey: UnsafeRawBufferPointer(rebasing: value[1...]))
            if value[0] == Codec.journalAdd { added.append(id) } else { removed.append(Int64(id)) }
            return true
        }
        // Ids are never reused, so removes-then-adds gives the final state: an id added and removed
        // in this range is skipped because its embedding is gone.
        if !removed.isEmpty && index.supportsRemoval { try index.remove(removed) }
        let dimension = metadata.embeddingDimension
        var ids = [Int64]()
        var vectors = [Float]()
        for id in added {
            try txn.withValue(embeddings, key: Codec.key(id)) { raw in
                guard let raw else { return }
                guard let v = Codec.decodeEmbedding(raw, dimension: dimension) else {
                    throw BankError.bank(path, "embedding of case \(id) is corrupt (checksum); run `ragseg index verify`")
                }
                ids.append(Int64(id))
                vectors += v
            }
        }
        FaissIndex.threads = ids.count > 64 ? ProcessInfo.processInfo.activeProcessorCount : 1
        try index.add(vectors, ids: ids)
        indexSeq = latest
    }

    private func saveIndex() throws {
        let header = IndexFileHeader(bank: metadata.uuid, seq: indexSeq, lmdbTransaction: env.lastTransactionID,
                                     count: index.count, kind: indexBuiltKind, builtCount: indexBuiltCount,
                                     dimension: metadata.embeddingDimension)
        try index.write(to: indexFilePath, userData: Array(try JSONEncoder.sorted.encode(header)))
        savedSeq = indexSeq
    }

    /// Whether the index structure no longer suits the bank (auto crossing to IVF, IVF outgrowing
    /// its cells, too many HNSW tombstones).
    private func needsRebuild(liveCount: Int) -> Bool {
        var wanted = metadata.indexKind.resolved(count: liveCount, dimension: metadata.embeddingDimension)
        if wanted == .ivf && liveCount < 1024 { wanted = .flat }
        if wanted != indexBuiltKind {
            // Never fall back from an approximate index to Flat in auto mode just because cases were removed.
            return !(metadata.indexKind == .auto && indexBuiltKind != .flat)
        }
        if indexBuiltKind == .ivf && liveCount > 4 * max(indexBuiltCount, 1) { return true }
        if !index.supportsRemoval {
            let tombstones = index.count - liveCount
            return tombstones > 0 && Double(tombstones) > SupportBank.tombstoneRebuildFraction * Double(index.count)
        }
        return false
    }

    /// Brings the in-memory index up to date and writes index.faiss when it is cheap (small
    /// index) or overdue (`checkpointInterval` journal entries behind), or when `force`.
    /// Restructures the index (see `needsRebuild`) first when needed.
    public func checkpoint(force: Bool) throws {
        guard !readOnly else { return }
        lock.lock()
        defer { lock.unlock() }
        try env.read { txn in
            try catchUp(in: txn)
            if needsRebuild(liveCount: try txn.count(embeddings)) { try rebuildIndex(in: txn) }
        }
        let lag = indexSeq - (savedSeq ?? 0)
        if savedSeq == nil || (lag > 0 && (force || lag >= UInt64(SupportBank.checkpointInterval)
                || index.count * metadata.embeddingDimension * 4 <= SupportBank.cheapCheckpointBytes)) {
            try saveIndex()
        }
    }

    /// Sets a search-time parameter of the current index ("efSearch" for HNSW, "nprobe" for IVF).
    /// Throws when it does not apply to the index type in use.
    public func setSearchParameter(_ name: String, _ value: Double) throws {
        lock.lock()
        defer { lock.unlock() }
        try index.setSearchParameter(name, value)
    }

    /// Catches up with writes committed since this bank was opened (by this or other processes).
    public func refresh() throws {
        lock.lock()
        defer { lock.unlock() }
        try env.read { try catchUp(in: $0) }
    }

    // MARK: - Writes

    /// Adds cases in one LMDB transaction (all or nothing). A case whose content hash is already
    /// present is a no-op reported as `.duplicate`. Throws on invalid cases before writing.
    @discardableResult
    public func add(_ batch: [PreparedCase]) throws -> [AddOutcome] {
        guard !readOnly else { throw BankError.bank(path, "opened read-only") }
        var normalized = [[Float]]()
        for c in batch {
            normalized.append(try validate(c))
        }
        lock.lock()
        defer { lock.unlock() }
        var newIDs = [Int64]()
        var newVectors = [Float]()
        let outcomes: [AddOutcome] = try env.write { txn in
            // Another process may have written since we last looked: the index must include it
            // before our own additions are appended.
            try catchUp(in: txn)
            var nextID = Codec.u64(try txn.get(meta, key: Array("nextID".utf8)))
            var seq = try currentSeq(txn)
            var outcomes = [AddOutcome]()
            var formatChecked = false
            let now = Date().timeIntervalSince1970
            for (c, embedding) in zip(batch, normalized) {
                if let existing = try txn.get(hashes, key: c.contentHash) {
                    outcomes.append(.duplicate(of: Codec.u64(existing)))
                    continue
                }
                let id = nextID
                nextID += 1
                let hasEmptyMaskMemory = c.memories.first?.label == 0
                if hasEmptyMaskMemory && !formatChecked {
                    try upgradeFormat(txn)
                    formatChecked = true
                }
                let record = CaseRecord(id: id, image: c.image, mask: c.mask, contentHash: hexString(c.contentHash),
                                        width: c.width, height: c.height, labels: c.memories.map(\.label).filter { $0 > 0 },
                                        added: now, emptyMaskMemory: hasEmptyMaskMemory ? true : nil)
                try txn.put(cases, key: Codec.key(id), value: Array(try JSONEncoder.sorted.encode(record)))
                try txn.put(embeddings, key: Codec.key(id), value: Codec.encodeEmbedding(embedding))
                for (label, memory) in c.memories {
                    try txn.put(memories, key: Codec.memoryKey(id, label: label),
                                value: Codec.encodeMemory(memory, label: label, shape: metadata.memoryShape))
                }
                try txn.put(hashes, key: c.contentHash, value: Codec.key(id))
                seq += 1
                try txn.put(journal, key: Codec.key(seq), value: Codec.journalEntry(Codec.journalAdd, id))
                newIDs.append(Int64(id))
                newVectors += embedding
                outcomes.append(.added(id))
            }
            try txn.put(meta, key: Array("nextID".utf8), value: Codec.key(nextID))
            try txn.put(meta, key: Array("seq".utf8), value: Codec.key(seq))
            return outcomes
        }
        // Committed: mirror into the in-memory index. If FAISS fails here LMDB is still right and
        // the index is rebuilt from it on the next open.
        // A few vectors: waking OpenMP workers costs more than it saves (milliseconds on a busy machine).
        FaissIndex.threads = newIDs.count > 64 ? ProcessInfo.processInfo.activeProcessorCount : 1
        try index.add(newVectors, ids: newIDs)
        indexSeq += UInt64(newIDs.count)
        return outcomes
    }

    /// Checks a prepared case against the bank; returns its L2-normalized embedding.
    private func validate(_ c: PreparedCase) throws -> [Float] {
        let name = c.image
        guard c.embedding.count == metadata.embeddingDimension else {
            throw BankError.input(name, "embedding has \(c.embedding.count) values, the bank expects \(metadata.embeddingDimension)")
        }
        guard c.contentHash.count == 32 else { throw BankError.input(name, "content hash must be 32 bytes") }
        var norm: Float = 0
        for x in c.embedding { norm += x * x }
        norm = norm.squareRoot()
        guard norm.isFinite, norm > 0 else { throw BankError.input(name, "embedding is zero or not finite") }
        var previous = -1
        for (label, memory) in c.memories {
            guard label > previous, label <= metadata.labels.count else {
                throw BankError.input(name, "memory label \(label) is not one of 0...\(metadata.labels.count) in ascending order")
            }
            previous = label
            guard memory.shape == metadata.memoryShape else {
                throw BankError.input(name, "memory of label \(label) is \(memory.shape), the bank stores \(metadata.memoryShape)")
            }
        }
        // The empty-mask memory stands for the absent labels, so a case that has every label has no use for it.
        if c.memories.first?.label == 0 && c.memories.count - 1 == metadata.labels.count {
            throw BankError.input(name, "an empty-mask memory (label 0) was given, but the mask contains every label")
        }
        return c.embedding.map { $0 / norm }
    }

    /// Marks the bank as format 2 (inside a write transaction) before a format-2 record is written to a
    /// format-1 bank, so that an older build refuses the bank instead of misreading its memories.
    private func upgradeFormat(_ txn: LMDBTransaction) throws {
        let key = Array("bank".utf8)
        guard let bytes = try txn.get(meta, key: key) else { throw BankError.bank(path, "bank metadata missing") }
        var stored = try JSONDecoder().decode(BankMetadata.self, from: Data(bytes))
        guard stored.formatVersion < 2 else { return }
        stored.formatVersion = 2
        try txn.put(meta, key: key, value: Array(try JSONEncoder.sorted.encode(stored)))
    }

    /// Removes cases by id, all or nothing: throws (removing nothing) when an id is unknown.
    public func remove(_ ids: [UInt64]) throws {
        guard !readOnly else { throw BankError.bank(path, "opened read-only") }
        lock.lock()
        defer { lock.unlock() }
        try env.write { txn in
            try catchUp(in: txn)
            var seq = try currentSeq(txn)
            for id in Set(ids).sorted() {
                guard let bytes = try txn.get(cases, key: Codec.key(id)) else {
                    throw BankError.bank(path, "no case with id \(id); nothing was removed")
                }
                let record = try JSONDecoder().decode(CaseRecord.self, from: Data(bytes))
                try txn.delete(cases, key: Codec.key(id))
                try txn.delete(embeddings, key: Codec.key(id))
                for label in record.storedMemoryLabels { try txn.delete(memories, key: Codec.memoryKey(id, label: label)) }
                if let hash = hexBytes(record.contentHash) { try txn.delete(hashes, key: hash) }
                seq += 1
                try txn.put(journal, key: Codec.key(seq), value: Codec.journalEntry(Codec.journalRemove, id))
            }
            try txn.put(meta, key: Array("seq".utf8), value: Codec.key(seq))
        }
        // Committed: mirror (HNSW keeps them as tombstones, filtered from results).
        try env.read { try catchUp(in: $0) }
    }

    // MARK: - Reads

    /// The k nearest cases to an embedding (normalized here), best first, from one consistent
    /// snapshot. Ids removed from LMDB but still in the index (HNSW tombstones, or removals by
    /// another process not yet replayed) are filtered out.
    public func search(_ query: [Float], k: Int) throws -> [SearchHit] {
        guard query.count == metadata.embeddingDimension else {
            throw BankError.bank(path, "query has \(query.count) values, the bank's embeddings have \(metadata.embeddingDimension)")
        }
        var norm: Float = 0
        for x in query { norm += x * x }
        norm = norm.squareRoot()
        guard norm.isFinite, norm > 0 else { throw BankError.bank(path, "query embedding is zero or not finite") }
        let q = query.map { $0 / norm }
        guard k > 0 else { return [] }
        lock.lock()
        defer { lock.unlock() }
        return try env.read { txn in
            let live = try txn.count(embeddings)
            let total = index.count
            var fetch = min(total, k + max(0, total - live))
            while true {
                FaissIndex.threads = 1  // a single query: OpenMP fan-out costs more than it saves
                let (scores, ids) = try index.search(q, k: max(fetch, 1))
                var hits = [SearchHit]()
                for (score, id) in zip(scores, ids) where id >= 0 {
                    guard let bytes = try txn.get(cases, key: Codec.key(UInt64(id))) else { continue }
                    let record = try JSONDecoder().decode(CaseRecord.self, from: Data(bytes))
                    hits.append(SearchHit(id: UInt64(id), score: score, record: record))
                    if hits.count == k { break }
                }
                if hits.count >= k || fetch >= total { return hits }
                fetch = min(total, fetch * 2)
            }
        }
    }

    public func record(_ id: UInt64) throws -> CaseRecord? {
        try env.read { txn in
            try txn.get(cases, key: Codec.key(id)).map { try JSONDecoder().decode(CaseRecord.self, from: Data($0)) }
        }
    }

    public func embedding(_ id: UInt64) throws -> [Float]? {
        let dimension = metadata.embeddingDimension
        return try env.read { txn in
            try txn.withValue(embeddings, key: Codec.key(id)) { raw in
                guard let raw else { return nil }
                guard let v = Codec.decodeEmbedding(raw, dimension: dimension) else {
                    throw BankError.bank(path, "embedding of case \(id) is corrupt (checksum)")
                }
                return v
            }
        }
    }

    /// The memory that supports `label` for a retrieved case: its own memory of the label, or its
    /// empty-mask memory where the label is absent from its mask (nil where it stores neither).
    public func supportMemory(for record: CaseRecord, label: Int) throws -> SupportMemory? {
        guard let slot = record.memorySlot(for: label) else { return nil }
        return try memory(record.id, label: slot)
    }

    /// The memory stored under (id, label); label 0 is the case's empty-mask memory.
    public func memory(_ id: UInt64, label: Int) throws -> SupportMemory? {
        let shape = metadata.memoryShape
        return try env.read { txn in
            try txn.withValue(memories, key: Codec.memoryKey(id, label: label)) { raw in
                guard let raw else { return nil }
                switch Codec.decodeMemory(raw, label: label, shape: shape) {
                case .ok(let m): return m
                case .bad(let message): throw BankError.bank(path, "case \(id) label \(label): \(message)")
                }
            }
        }
    }

    /// All case records in id order.
    public func allRecords() throws -> [CaseRecord] {
        try env.read { txn in
            var out = [CaseRecord]()
            try txn.forEach(cases) { _, value in
                out.append(try JSONDecoder().decode(CaseRecord.self, from: Data(value)))
                return true
            }
            return out
        }
    }

    public func caseID(forContentHash hash: [UInt8]) throws -> UInt64? {
        try env.read { txn in try txn.get(hashes, key: hash).map { Codec.u64($0) } }
    }

    public struct Statistics: Sendable {
        public var cases: Int
        public var memories: Int
        public var indexKind: IndexKind
        public var indexVectors: Int
        public var tombstones: Int
        public var journalSeq: UInt64
        public var indexFileSeq: UInt64?
        public var lmdbBytes: Int
        public var indexFileBytes: Int
        public var diskBytes: Int
    }

    public func statistics() throws -> Statistics {
        lock.lock()
        defer { lock.unlock() }
        let (caseCount, memoryCount, liveCount, seq) = try env.read { txn in
            (try txn.count(cases), try txn.count(memories), try txn.count(embeddings), try currentSeq(txn))
        }
        let fm = FileManager.default
        func allocated(_ name: String) -> Int {
            var st = stat()
            let file = (path as NSString).appendingPathComponent(name)
            return stat(file, &st) == 0 ? Int(st.st_blocks) * 512 : 0
        }
        _ = fm
        let lmdb = allocated("data.mdb")
        let indexBytes = allocated(SupportBank.indexFileName)
        return Statistics(cases: caseCount, memories: memoryCount, indexKind: indexBuiltKind, indexVectors: index.count,
                          tombstones: index.supportsRemoval ? 0 : max(0, index.count - liveCount),
                          journalSeq: seq, indexFileSeq: savedSeq, lmdbBytes: lmdb, indexFileBytes: indexBytes,
                          diskBytes: lmdb + indexBytes + allocated("lock.mdb"))
    }

    /// Bytes of LMDB pages in use (payload plus B-tree overhead), independent of file sparseness.
    public var lmdbUsedBytes: Int { env.usedBytes }

    // Internal hooks for verify (same file, extension).

    /// Runs body under the index lock in one read transaction, with the in-memory index caught up to
    /// exactly that transaction's snapshot: index and LMDB are compared at the same journal position
    /// even while other processes write.
    func withIndexAtSnapshot<T>(_ body: (LMDBTransaction, FaissIndex) throws -> T) throws -> T {
        lock.lock()
        defer { lock.unlock() }
        return try env.read { txn in
            // Under the lock the index reflects only commits this transaction sees, so it is never ahead.
            try catchUp(in: txn)
            return try body(txn, index)
        }
    }

    func read<T>(_ body: (LMDBTransaction) throws -> T) throws -> T { try env.read(body) }
}

func hexBytes(_ hex: String) -> [UInt8]? {
    let chars = Array(hex.utf8)
    guard chars.count % 2 == 0 else { return nil }
    var out = [UInt8]()
    out.reserveCapacity(chars.count / 2)
    func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case 48...57: return c - 48
        case 97...102: return c - 87
        case 65...70: return c - 55
        default: return nil
        }
    }
    var i = 0
    while i < chars.count {
        guard let hi = nibble(chars[i]), let lo = nibble(chars[i + 1]) else { return nil }
        out.append(hi << 4 | lo)
        i += 2
    }
    return out
}

extension JSONEncoder {
    /// Deterministic JSON (sorted keys) for stored records.
    static var sorted: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return e
    }
}

extension SupportBank {
    /// Throws unless the given models are the ones that built this bank (vectors from other
    /// weights live in another space: mixing them would silently return wrong neighbours).
    public func requireModels(retrieval: ModelIdentity, support: ModelIdentity) throws {
        for (given, recorded, role) in [(retrieval, metadata.retrievalModel, "retrieval (DINOv2)"),
                                         (support, metadata.supportModel, "support (SAM 2)")] where given != recorded {
            throw BankError.bank(path, "was built with \(role) weights \(recorded), not \(given); use the same weights or create a new bank")
        }
    }
}

// MARK: - Benchmark only

extension SupportBank {
    /// BENCHMARK ONLY (`ragseg bench bank`): appends one synthetic case per row of `normalizedVectors`
    /// (n x embeddingDimension, L2-normalized) in ONE transaction, skipping validation, and mirrors them
    /// into the in-memory index like `add`. Every case gets a real record, checksummed embedding,
    /// content-hash entry and journal entry, so each B-tree has the shape it has in a real bank of that
    /// size; but its label-1 memory is an 8-byte placeholder instead of the bank's memory shape (the same
    /// leaf footprint as a real memory's overflow-page reference, none of its 512 KiB). A bank filled
    /// this way fails `verify` and is good for nothing but measuring the cost of the next real add.
    public func benchmarkBulkFill(normalizedVectors: [Float]) throws {
        guard !readOnly else { throw BankError.bank(path, "opened read-only") }
        let dimension = metadata.embeddingDimension
        precondition(normalizedVectors.count % dimension == 0, "vectors must be n x \(dimension)")
        let n = normalizedVectors.count / dimension
        guard n > 0 else { return }
        lock.lock()
        defer { lock.unlock() }
        let encoder = JSONEncoder.sorted
        let placeholder = [UInt8](repeating: 0, count: 8)
        var ids = [Int64]()
        ids.reserveCapacity(n)
        try env.write { txn in
            try catchUp(in: txn)
            var nextID = Codec.u64(try txn.get(meta, key: Array("nextID".utf8)))
            var seq = try currentSeq(txn)
            let now = Date().timeIntervalSince1970
            for row in 0..<n {
                let id = nextID
                nextID += 1
                let hash = SHA256.hash(Array("benchmark fill \(metadata.uuid) \(id)".utf8))
                let record = CaseRecord(id: id, image: "benchmark/\(id).png", mask: "benchmark/\(id)_mask.png",
                                        contentHash: hexString(hash), width: 512, height: 512, labels: [1], added: now)
                try txn.put(cases, key: Codec.key(id), value: Array(try encoder.encode(record)))
                try txn.put(embeddings, key: Codec.key(id),
                            value: Codec.encodeEmbedding(Array(normalizedVectors[(row * dimension)..<((row + 1) * dimension)])))
                try txn.put(memories, key: Codec.memoryKey(id, label: 1), value: placeholder)
                try txn.put(hashes, key: hash, value: Codec.key(id))
                seq += 1
                try txn.put(journal, key: Codec.key(seq), value: Codec.journalEntry(Codec.journalAdd, id))
                ids.append(Int64(id))
            }
            try txn.put(meta, key: Array("nextID".utf8), value: Codec.key(nextID))
            try txn.put(meta, key: Array("seq".utf8), value: Codec.key(seq))
        }
        FaissIndex.threads = n > 64 ? ProcessInfo.processInfo.activeProcessorCount : 1
        try index.add(normalizedVectors, ids: ids)
        indexSeq += UInt64(n)
    }

    /// BENCHMARK ONLY: turns LMDB's fsync at commit off (or back on) for this process, to separate the
    /// disk's sync latency from the work an add does. A crash while it is off can lose recent commits.
    public func benchmarkSetSync(_ enabled: Bool) throws {
        try lmdbCheck(mdb_env_set_flags(env.env, UInt32(MDB_NOSYNC), enabled ? 0 : 1), "set MDB_NOSYNC on \(path)")
    }
}

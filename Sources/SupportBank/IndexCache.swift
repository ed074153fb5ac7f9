// index.faiss is a cache of LMDB's embeddings: loaded at open (rebuilt when missing, corrupt or foreign),
// caught up from the journal, restructured and written at checkpoints. See README.md, "The FAISS index is a cache".
import Foundation

extension SupportBank {
    private struct IndexFileHeader: Codable {
        var bank: String
        var seq: UInt64
        var lmdbTransaction: Int
        var count: Int
        var kind: IndexKind
        var builtCount: Int
        var dimension: Int
    }

    func currentSeq(_ txn: LMDBTransaction) throws -> UInt64 {
        Codec.u64(try txn.get(meta, key: Array("seq".utf8)))
    }

    /// Loads index.faiss when it is valid and belongs to this bank, then replays the journal; a
    /// missing or corrupt file is rebuilt from LMDB and rewritten.
    func loadIndex() throws {
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
                } else if header.dimension != metadata.embeddingDimension
                    || loaded.dimension != metadata.embeddingDimension
                {
                    problem =
                        """
                        index file dimension \(loaded.dimension) differs from the bank's \(metadata.embeddingDimension)
                        """
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
            if indexSeq != savedSeq {
                indexRepair = "index file was \(indexSeq - (savedSeq ?? 0)) journal entries stale: replayed"
            }
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
                firstError = BankError.bank(
                    path, "embedding of case \(Codec.id(fromKey: key)) is corrupt (checksum); run `ragseg index verify`"
                )
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
    func catchUp(in txn: LMDBTransaction) throws {
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
                    throw BankError.bank(
                        path, "embedding of case \(id) is corrupt (checksum); run `ragseg index verify`")
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
        try writeIndex(to: indexFilePath)
        savedSeq = indexSeq
    }

    /// Writes the in-memory index and its header (position `indexSeq`) to `file`: this bank's index file, or
    /// the one of a snapshot being made (Snapshot.swift), which catches it up from its own journal on open.
    func writeIndex(to file: String) throws {
        let header = IndexFileHeader(
            bank: metadata.uuid, seq: indexSeq, lmdbTransaction: env.lastTransactionID,
            count: index.count, kind: indexBuiltKind, builtCount: indexBuiltCount,
            dimension: metadata.embeddingDimension)
        try index.write(to: file, userData: Array(try JSONEncoder.sorted.encode(header)))
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
        let rebuilt = try env.read { txn in
            try catchUp(in: txn)
            guard needsRebuild(liveCount: try txn.count(embeddings)) else { return false }
            try rebuildIndex(in: txn)
            return true
        }
        let lag = indexSeq - (savedSeq ?? 0)
        // A restructured index is written even at an unchanged journal position (the write costs less than the
        // rebuild did): otherwise the old structure (e.g. HNSW with its tombstones) is loaded and rebuilt again at
        // every open.
        if savedSeq == nil || rebuilt
            || (lag > 0
                && (force || lag >= UInt64(SupportBank.checkpointInterval)
                    || index.count * metadata.embeddingDimension * 4 <= SupportBank.cheapCheckpointBytes))
        {
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

    // Hooks for verify (Verify.swift).

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

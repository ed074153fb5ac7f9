// Reads: nearest-neighbour search filtered through one LMDB snapshot, records, embeddings, memories, statistics.
import Foundation
import SAM2

extension SupportBank {
    /// The k nearest cases to an embedding (normalized here), best first, from one consistent
    /// snapshot. Ids removed from LMDB but still in the index (HNSW tombstones, or removals by
    /// another process not yet replayed) are filtered out.
    public func search(_ query: [Float], k: Int) throws -> [SearchHit] {
        guard query.count == metadata.embeddingDimension else {
            throw BankError.bank(
                path, "query has \(query.count) values, the bank's embeddings have \(metadata.embeddingDimension)")
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
        let shape = metadata.memoryShape, codec = metadata.codec
        return try env.read { txn in
            try txn.withValue(memories, key: Codec.memoryKey(id, label: label)) { raw in
                guard let raw else { return nil }
                switch Codec.decodeMemory(raw, label: label, shape: shape, codec: codec) {
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
        return Statistics(
            cases: caseCount, memories: memoryCount, indexKind: indexBuiltKind, indexVectors: index.count,
            tombstones: index.supportsRemoval ? 0 : max(0, index.count - liveCount),
            journalSeq: seq, indexFileSeq: savedSeq, lmdbBytes: lmdb, indexFileBytes: indexBytes,
            diskBytes: lmdb + indexBytes + allocated("lock.mdb"))
    }

    /// Bytes of LMDB pages in use (payload plus B-tree overhead), independent of file sparseness.
    public var lmdbUsedBytes: Int { env.usedBytes }
}

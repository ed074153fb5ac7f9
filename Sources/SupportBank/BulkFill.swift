// Filling a bank to a million cases for `ragseg-bench bank`, in minutes rather than hours: behind
// `@_spi(Benchmark)`, so only a client that asks for it (`@_spi(Benchmark) import SupportBank`) sees it.
import CLMDB
import Foundation

extension SupportBank {
    /// For `ragseg-bench bank` only (hence the SPI): appends one synthetic case per row of `normalizedVectors`
    /// (n x embeddingDimension, L2-normalized) in ONE transaction, skipping validation, and mirrors them
    /// into the in-memory index like `add`. Every case gets a real record, checksummed embedding,
    /// content-hash entry and journal entry, so each B-tree has the shape it has in a real bank of that
    /// size; but its label-1 memory is an 8-byte placeholder instead of the bank's memory shape (the same
    /// leaf footprint as a real memory's overflow-page reference, none of its 512 KiB). A bank filled
    /// this way fails `verify` and is good for nothing but measuring the cost of the next real add.
    @_spi(Benchmark) public func benchmarkBulkFill(normalizedVectors: [Float]) throws {
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
                let record = CaseRecord(
                    id: id, image: "benchmark/\(id).png", mask: "benchmark/\(id)_mask.png",
                    contentHash: hexString(hash), width: 512, height: 512, labels: [1], added: now)
                try txn.put(cases, key: Codec.key(id), value: Array(try encoder.encode(record)))
                try txn.put(
                    embeddings, key: Codec.key(id),
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

    /// For benchmarks only: turns LMDB's fsync at commit off (or back on) for this process, to separate the
    /// disk's sync latency from the work an add does. A crash while it is off can lose recent commits.
    @_spi(Benchmark) public func benchmarkSetSync(_ enabled: Bool) throws {
        try lmdbCheck(mdb_env_set_flags(env.env, UInt32(MDB_NOSYNC), enabled ? 0 : 1), "set MDB_NOSYNC on \(path)")
    }
}

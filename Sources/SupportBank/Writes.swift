// Writes: a batch of prepared cases in one LMDB transaction (all or nothing), removal by id. Each write
// catches the in-memory index up inside its transaction and mirrors its own commit after it commits.
import Foundation
import SAM2

extension SupportBank {
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
                let record = CaseRecord(
                    id: id, image: c.image, mask: c.mask, contentHash: hexString(c.contentHash),
                    width: c.width, height: c.height, labels: c.memories.map(\.label).filter { $0 > 0 },
                    added: now, emptyMaskMemory: hasEmptyMaskMemory ? true : nil, origin: c.origin,
                    precision: c.precision)
                try txn.put(cases, key: Codec.key(id), value: Array(try JSONEncoder.sorted.encode(record)))
                try txn.put(embeddings, key: Codec.key(id), value: Codec.encodeEmbedding(embedding))
                for (label, memory) in c.memories {
                    try txn.put(
                        memories, key: Codec.memoryKey(id, label: label),
                        value: Codec.encodeMemory(
                            memory, label: label, shape: metadata.memoryShape, codec: metadata.codec))
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
            throw BankError.input(
                name, "embedding has \(c.embedding.count) values, the bank expects \(metadata.embeddingDimension)")
        }
        guard c.contentHash.count == 32 else { throw BankError.input(name, "content hash must be 32 bytes") }
        var norm: Float = 0
        for x in c.embedding { norm += x * x }
        norm = norm.squareRoot()
        guard norm.isFinite, norm > 0 else { throw BankError.input(name, "embedding is zero or not finite") }
        var previous = -1
        for (label, memory) in c.memories {
            guard label > previous, label <= metadata.labels.count else {
                throw BankError.input(
                    name, "memory label \(label) is not one of 0...\(metadata.labels.count) in ascending order")
            }
            previous = label
            guard memory.shape == metadata.memoryShape else {
                throw BankError.input(
                    name, "memory of label \(label) is \(memory.shape), the bank stores \(metadata.memoryShape)")
            }
            if let problem = metadata.codec.problem(with: memory) {
                throw BankError.input(name, "memory of label \(label) \(problem)")
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
            try deleteCases(ids, in: txn)
        }
        // Committed: mirror (HNSW keeps them as tombstones, filtered from results).
        try env.read { try catchUp(in: $0) }
    }

    /// Deletes the cases `ids` with their embeddings, memories and hashes and journals each removal,
    /// inside `txn`; an unknown id throws, so the caller's transaction removes nothing.
    func deleteCases(_ ids: [UInt64], in txn: LMDBTransaction) throws {
        var seq = try currentSeq(txn)
        for id in Set(ids).sorted() {
            guard let bytes = try txn.get(cases, key: Codec.key(id)) else {
                throw BankError.bank(path, "no case with id \(id); nothing was removed")
            }
            let record = try JSONDecoder().decode(CaseRecord.self, from: Data(bytes))
            try txn.delete(cases, key: Codec.key(id))
            try txn.delete(embeddings, key: Codec.key(id))
            for label in record.storedMemoryLabels {
                try txn.delete(memories, key: Codec.memoryKey(id, label: label))
            }
            if let hash = hexBytes(record.contentHash) { try txn.delete(hashes, key: hash) }
            seq += 1
            try txn.put(journal, key: Codec.key(seq), value: Codec.journalEntry(Codec.journalRemove, id))
        }
        try txn.put(meta, key: Array("seq".utf8), value: Codec.key(seq))
    }
}

// `verify`: LMDB internal consistency, record checksums and shapes, and LMDB <-> FAISS coherence.
import Foundation

public struct VerifyReport: Sendable {
    public var cases = 0
    public var memories = 0
    public var indexVectors = 0
    public var tombstones = 0
    /// Everything found wrong; empty means the bank is coherent.
    public var problems: [String] = []
    /// Notes that are not problems (e.g. the index file was repaired at open).
    public var notes: [String] = []
    public var ok: Bool { problems.isEmpty }
}

extension SupportBank {
    /// Checks the whole bank. Reads every record (memories included), so it takes time
    /// proportional to the bank's size. Never throws for a damaged bank: damage is reported.
    public func verify(maxProblems: Int = 100) -> VerifyReport {
        var report = VerifyReport()
        func problem(_ s: String) { if report.problems.count < maxProblems { report.problems.append(s) } }
        if let repair = indexRepair { report.notes.append(repair) }
        let dimension = metadata.embeddingDimension
        let shape = metadata.memoryShape
        var expectedMemories = 0
        if metadata.codec != .bf16 && metadata.formatVersion < 3 {
            problem("memories are stored \(metadata.codec) but the bank is format \(metadata.formatVersion), not 3")
        }
        do {
            try read { txn in
                let nextID = Codec.u64(try txn.get(meta, key: Array("nextID".utf8)))
                let seq = Codec.u64(try txn.get(meta, key: Array("seq".utf8)))
                // Cases and everything hanging off them.
                try txn.forEach(cases) { key, value in
                    let id = Codec.id(fromKey: key)
                    report.cases += 1
                    guard let record = try? JSONDecoder().decode(CaseRecord.self, from: Data(value)) else {
                        problem("case \(id): record unreadable")
                        return true
                    }
                    if record.id != id { problem("case \(id): record says id \(record.id)") }
                    if id >= nextID { problem("case \(id): id not below nextID \(nextID)") }
                    try txn.withValue(embeddings, key: Codec.key(id)) { raw in
                        guard let raw else { return problem("case \(id): embedding missing") }
                        guard let v = Codec.decodeEmbedding(raw, dimension: dimension) else {
                            return problem("case \(id): embedding has a wrong length or checksum")
                        }
                        var norm: Float = 0
                        for x in v { norm += x * x }
                        if !(abs(norm.squareRoot() - 1) < 1e-3) {
                            problem("case \(id): embedding is not L2-normalized (norm \(norm.squareRoot()))")
                        }
                    }
                    for label in record.labels where label < 1 || label > metadata.labels.count {
                        problem("case \(id): label \(label) outside 1...\(metadata.labels.count)")
                    }
                    if record.emptyMaskMemory == true && record.labels.count >= metadata.labels.count {
                        problem("case \(id): has an empty-mask memory but every label is present")
                    }
                    for label in record.storedMemoryLabels {
                        expectedMemories += 1
                        try txn.withValue(memories, key: Codec.memoryKey(id, label: label)) { raw in
                            guard let raw else {
                                return problem(
                                    label == 0
                                        ? "case \(id): empty-mask memory missing"
                                        : "case \(id): memory of label \(label) missing")
                            }
                            if case .bad(let message) = Codec.decodeMemory(
                                raw, label: label, shape: shape, codec: metadata.codec)
                            {
                                problem("case \(id) label \(label): \(message)")
                            }
                        }
                    }
                    if let hash = hexBytes(record.contentHash), hash.count == 32 {
                        let mapped = try txn.get(hashes, key: hash).map { Codec.u64($0) }
                        if mapped != id {
                            problem("case \(id): content-hash map points to \(mapped.map(String.init) ?? "nothing")")
                        }
                    } else {
                        problem("case \(id): content hash is not 64 hex digits")
                    }
                    return true
                }
                report.memories = try txn.count(memories)
                let embeddingCount = try txn.count(embeddings)
                if embeddingCount != report.cases {
                    problem("\(embeddingCount) embeddings for \(report.cases) cases (orphans)")
                }
                if report.memories != expectedMemories {
                    problem("\(report.memories) memories, the cases' labels call for \(expectedMemories) (orphans)")
                }
                let hashCount = try txn.count(hashes)
                if hashCount != report.cases {
                    problem("\(hashCount) content hashes for \(report.cases) cases (orphans)")
                }
                // Journal: contiguous up to seq.
                var lastJournal: UInt64 = 0
                try txn.forEach(journal) { key, _ in
                    lastJournal = Codec.id(fromKey: key)
                    return true
                }
                if lastJournal != seq {
                    problem("journal ends at \(lastJournal) but the bank's sequence number is \(seq)")
                }
            }
        } catch {
            problem("LMDB read failed: \(error)")
        }

        // The index file on disk: checksum, owner, position.
        do {
            let (fileIndex, user) = try FaissIndex.read(from: indexFilePath)
            struct Header: Decodable { var bank: String; var seq: UInt64; var dimension: Int }
            let header = try JSONDecoder().decode(Header.self, from: Data(user))
            if header.bank != metadata.uuid { problem("index file belongs to another bank") }
            if header.dimension != dimension || fileIndex.dimension != dimension {
                problem("index file has dimension \(fileIndex.dimension), bank \(dimension)")
            }
            let seq = try read { Codec.u64(try $0.get(meta, key: Array("seq".utf8))) }
            if header.seq > seq { problem("index file claims journal position \(header.seq), LMDB is at \(seq)") }
            if header.seq < seq {
                report.notes.append("index file is \(seq - header.seq) journal entries behind LMDB (replayed on open)")
            }
        } catch {
            problem("index file: \(error)")
        }

        // The live index against LMDB: same ids, same vectors. Compared in one snapshot that the
        // index is caught up to, so writes by other processes meanwhile are no false alarm (the checks
        // above may have read an older snapshot; what they check does not depend on the position).
        do {
            try withIndexAtSnapshot { txn, index in
                report.indexVectors = index.count
                var inIndex = Set<Int64>()
                for id in try index.allIDs() where !inIndex.insert(id).inserted {
                    problem("index holds id \(id) twice")
                }
                var live = Set<Int64>()
                try txn.forEach(embeddings) { key, value in
                    let id = Int64(Codec.id(fromKey: key))
                    live.insert(id)
                    // A corrupt embedding is reported above; a missing id below.
                    guard inIndex.contains(id), let v = Codec.decodeEmbedding(value, dimension: dimension) else {
                        return true
                    }
                    // Stored vectors must equal LMDB's exactly (IVF cannot reconstruct by id: self-search).
                    if let stored = index.reconstruct(id) {
                        if stored != v { problem("case \(id): index vector differs from LMDB's embedding") }
                    } else {
                        let (scores, _) = try index.search(v, k: 1)
                        if !(scores[0] > 1 - 1e-4) { problem("case \(id): not found by searching its own embedding") }
                    }
                    return true
                }
                let extra = inIndex.subtracting(live).count
                if extra > 0 {
                    if index.supportsRemoval {
                        problem("index holds \(extra) ids that are not cases")
                    } else {
                        report.tombstones = extra  // HNSW: removed cases awaiting rebuild
                    }
                }
                let missing = live.subtracting(inIndex)
                if !missing.isEmpty {
                    problem("\(missing.count) cases missing from the index (e.g. \(missing.sorted().prefix(5)))")
                }
            }
        } catch {
            problem("index check failed: \(error)")
        }
        return report
    }
}

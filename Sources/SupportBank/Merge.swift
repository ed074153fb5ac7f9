// `index merge`: banks built in parallel (shards, `index add --shard I/N`) become one bank. The inputs are read
// without a lock file and never written; the output is built in a staging folder like `create` (Creation.swift)
// and renamed into place once complete and verified. See README.md in this directory ("Merging banks").
import CLMDB
import Foundation

/// What `merge` did, per input and in all.
public struct MergeReport: Sendable {
    public struct Input: Sendable {
        public var path: String
        public var shard: ShardAssignment?
        public var cases: Int
        public var added: Int
        /// Cases whose content hash an earlier input already brought (skipped).
        public var duplicates: Int
    }

    public var path: String
    public var inputs: [Input]
    public var cases: Int { inputs.reduce(0) { $0 + $1.added } }
    public var duplicates: Int { inputs.reduce(0) { $0 + $1.duplicates } }
    public var memories: Int
    public var indexKind: IndexKind
    /// Wall-clock seconds: copying the records, building the index, verifying the result.
    public var copySeconds: Double
    public var indexSeconds: Double
    public var verifySeconds: Double
}

extension SupportBank {
    /// Cases copied per write transaction: large enough that commits are rare, small enough that the dirty pages
    /// of one transaction (about 0.5 MiB per case with SAM 2's memories) stay modest.
    static let mergeBatch = 256

    /// Merges the banks `inputs` into a new bank at `path` (missing or an empty directory). Every input must have
    /// the same models, labels, preprocessing, memory shape, embedding dimension, index type and (where set) volume
    /// settings; shards of one build (same template and shard count) must all be given, once each, unless
    /// `allowMissingShards`. Cases get new ids 1...n in the order of the inputs and of their ids in each; a case
    /// whose content hash an earlier input brought is skipped and counted. The index is built once at the end
    /// and the result verified before it is renamed into place: a crash or error leaves no bank at `path` (at
    /// most a staging folder, which `open` refuses and the next merge removes), never a partial one.
    /// `progress` receives (cases done, cases in all).
    public static func merge(
        into path: String, from inputs: [String], allowMissingShards: Bool = false, mapSize: Int = defaultMapSize,
        progress: ((Int, Int) -> Void)? = nil
    ) throws -> MergeReport {
        guard !inputs.isEmpty else { throw BankError.bank(path, "nothing to merge: give one or more banks") }
        try BankCreation.checkTarget(path)
        var seenPaths = [String: String]()
        var sources = [ReadOnlyBank]()
        for input in inputs {
            let real = (input as NSString).resolvingSymlinksInPath
            if let earlier = seenPaths[real] { throw BankError.bank(input, "is given twice (also as \(earlier))") }
            seenPaths[real] = input
            sources.append(try ReadOnlyBank(path: input, mapSize: mapSize))
        }
        try checkCompatible(sources)
        try checkShardCoverage(sources, allowMissing: allowMissingShards)

        let first = sources[0].metadata
        var metadata = first
        metadata.uuid = UUID().uuidString
        metadata.created = Date().timeIntervalSince1970
        metadata.formatVersion = sources.map(\.metadata.formatVersion).max()!
        metadata.volumeSettings = sources.lazy.compactMap(\.metadata.volumeSettings).first
        metadata.shard = nil
        metadata.template = Set(sources.map(\.metadata.template)).count == 1 ? first.template : nil

        let staging = try BankCreation.makeStaging(for: path)
        do {
            try initialize(staging, metadata: metadata, mapSize: mapSize)
            var report = try fill(staging, from: sources, metadata: metadata, mapSize: mapSize, progress: progress)
            report.path = path
            try buildIndexAndVerify(staging, report: &report)
            try BankCreation.publish(staging, as: path)
            return report
        } catch {
            try? FileManager.default.removeItem(atPath: staging)
            throw error
        }
    }

    /// Refuses inputs that cannot share one bank, naming the input and the field that differs.
    static func checkCompatible(_ sources: [ReadOnlyBank]) throws {
        let a = sources[0].metadata
        var uuids = [a.uuid: sources[0].path]
        for source in sources.dropFirst() {
            let b = source.metadata
            func refuse(_ field: String, _ mine: String, _ theirs: String) -> BankError {
                BankError.bank(
                    source.path,
                    """
                    cannot be merged with \(sources[0].path): its \(field) is \(mine), not \(theirs) (build every \
                    shard from one template: `index create SHARD --template BANK`)
                    """)
            }
            if let earlier = uuids[b.uuid] { throw BankError.bank(source.path, "is the same bank as \(earlier)") }
            uuids[b.uuid] = source.path
            for (field, mine, theirs) in [
                ("retrieval (DINOv2) model", b.retrievalModel, a.retrievalModel),
                ("support (SAM 2) model", b.supportModel, a.supportModel),
            ] where mine != theirs {
                var weightsOnly = mine
                weightsOnly.configuration = theirs.configuration
                if weightsOnly == theirs {
                    throw BankError.bank(
                        source.path,
                        """
                        cannot be merged with \(sources[0].path): its \(field) has another configuration: \
                        \(ModelIdentity.configurationDifference(mine.configuration, theirs.configuration ?? "{}"))
                        """)
                }
                throw refuse(
                    field, "\(mine.name) \(mine.variant) sha256 \(mine.sha256)",
                    "\(theirs.name) \(theirs.variant) sha256 \(theirs.sha256)")
            }
            if b.embeddingDimension != a.embeddingDimension {
                throw refuse("embedding dimension", "\(b.embeddingDimension)", "\(a.embeddingDimension)")
            }
            if b.memoryShape != a.memoryShape {
                throw refuse("memory shape", "\(b.memoryShape)", "\(a.memoryShape)")
            }
            if b.labels != a.labels { throw refuse("labels", "\(b.labels)", "\(a.labels)") }
            if b.preprocessing != a.preprocessing {
                let key = Set(a.preprocessing.keys).union(b.preprocessing.keys).sorted().first {
                    a.preprocessing[$0] != b.preprocessing[$0]
                }!
                throw refuse(
                    "preprocessing \(key)", b.preprocessing[key] ?? "absent", a.preprocessing[key] ?? "absent")
            }
            if b.indexKind != a.indexKind { throw refuse("index type", b.indexKind.rawValue, a.indexKind.rawValue) }
            if b.codec != a.codec { throw refuse("memory codec", b.codec.rawValue, a.codec.rawValue) }
        }
        // Volume settings are recorded with a bank's first volume: a shard that got no volume has none yet.
        let settings = sources.filter { $0.metadata.volumeSettings != nil }
        for s in settings.dropFirst() where s.metadata.volumeSettings != settings[0].metadata.volumeSettings {
            throw BankError.bank(
                s.path,
                """
                cannot be merged with \(settings[0].path): its volume settings are \
                \(s.metadata.volumeSettings!.summary), not \(settings[0].metadata.volumeSettings!.summary)
                """)
        }
    }

    /// Shards of one build (same template, same shard count) must be given all, once each: a missing one would
    /// silently leave its share of the inputs out of the merged bank.
    static func checkShardCoverage(_ sources: [ReadOnlyBank], allowMissing: Bool) throws {
        var groups = [String: [Int: String]]()
        var counts = [String: Int]()
        for source in sources {
            guard let shard = source.metadata.shard else { continue }
            let group = "\(source.metadata.template ?? "no template") \(shard.count)"
            counts[group] = shard.count
            if let earlier = groups[group, default: [:]][shard.index] {
                throw BankError.bank(source.path, "holds shard \(shard), like \(earlier): the same share twice")
            }
            groups[group, default: [:]][shard.index] = source.path
        }
        guard !allowMissing else { return }
        for (group, present) in groups.sorted(by: { $0.key < $1.key }) {
            let count = counts[group]!
            let missing = (0..<count).filter { present[$0] == nil }
            guard missing.isEmpty else {
                let example = present.sorted { $0.key < $1.key }.first!.value
                throw BankError.bank(
                    example,
                    """
                    is one of \(count) shards, but shard(s) \
                    \(missing.prefix(10).map { "\($0)/\(count)" }.joined(separator: ", "))\
                    \(missing.count > 10 ? ", ..." : "") of the same build are not given: their cases would be \
                    missing; give every shard, or --allow-missing-shards
                    """)
            }
        }
    }

    /// Copies every case of `sources` into the (staged, empty) bank at `staging`, new ids in order, appended.
    private static func fill(
        _ staging: String, from sources: [ReadOnlyBank], metadata: BankMetadata, mapSize: Int,
        progress: ((Int, Int) -> Void)?
    ) throws -> MergeReport {
        let start = Date()
        let env = try LMDBEnvironment(path: staging, mapSize: mapSize)
        let names = ["meta", "cases", "embeddings", "memories", "hashes", "journal"]
        let dbs = try names.map { try env.database($0, create: false) }
        let (meta, cases, embeddings, memories, hashes, journal) = (dbs[0], dbs[1], dbs[2], dbs[3], dbs[4], dbs[5])
        // No fsync per transaction: a crash discards the whole staging folder anyway; one sync at the end.
        try lmdbCheck(mdb_env_set_flags(env.env, UInt32(MDB_NOSYNC), 1), "set MDB_NOSYNC on \(staging)")
        let total = try sources.reduce(0) { $0 + (try $1.caseCount()) }
        var inputs = [MergeReport.Input]()
        var nextID: UInt64 = 1
        var done = 0
        var memoryCount = 0
        let decoder = JSONDecoder()
        let encoder = JSONEncoder.sorted
        for source in sources {
            var entry = MergeReport.Input(
                path: source.path, shard: source.metadata.shard, cases: 0, added: 0, duplicates: 0)
            try source.env.read { shardTxn in
                var resume: [UInt8]? = nil
                var finished = false
                while !finished {
                    try env.write { txn in
                        var inBatch = 0
                        finished = true
                        try shardTxn.forEach(source.cases, from: resume) { key, value in
                            let oldID = Codec.id(fromKey: key)
                            if let resume, oldID == Codec.u64(resume) { return true }  // done in the last batch
                            if inBatch == mergeBatch {
                                finished = false
                                return false
                            }
                            inBatch += 1
                            resume = Array(key)
                            func damaged(_ what: String) -> BankError {
                                BankError.bank(source.path, "case \(oldID): \(what); run `ragseg index verify` on it")
                            }
                            guard var record = try? decoder.decode(CaseRecord.self, from: Data(value)),
                                record.id == oldID
                            else { throw damaged("record unreadable") }
                            guard let hash = hexBytes(record.contentHash), hash.count == 32 else {
                                throw damaged("content hash is not 64 hex digits")
                            }
                            entry.cases += 1
                            done += 1
                            if try txn.contains(hashes, key: hash) {
                                entry.duplicates += 1
                                return true
                            }
                            let id = nextID
                            nextID += 1
                            try shardTxn.withValue(source.embeddings, key: Codec.key(oldID)) { raw in
                                guard let raw, Codec.decodeEmbedding(raw, dimension: metadata.embeddingDimension) != nil
                                else { throw damaged("embedding missing, or wrong length or checksum") }
                                try txn.put(embeddings, key: Codec.key(id), bytes: raw, append: true)
                            }
                            for label in Set(record.storedMemoryLabels).sorted() {
                                try shardTxn.withValue(source.memories, key: Codec.memoryKey(oldID, label: label)) {
                                    raw in
                                    guard let raw else { throw damaged("memory of label \(label) missing") }
                                    // Decoded to check it whole (header, shape, checksum, the codec's payload),
                                    // then copied as stored: every input uses the merged bank's codec.
                                    if case .bad(let problem) = Codec.decodeMemory(
                                        raw, label: label, shape: metadata.memoryShape, codec: metadata.codec)
                                    {
                                        throw damaged("memory of label \(label): \(problem)")
                                    }
                                    try txn.put(
                                        memories, key: Codec.memoryKey(id, label: label), bytes: raw, append: true)
                                }
                                memoryCount += 1
                            }
                            record.id = id
                            try txn.put(
                                cases, key: Codec.key(id), value: Array(try encoder.encode(record)), append: true)
                            try txn.put(hashes, key: hash, value: Codec.key(id))
                            try txn.put(
                                journal, key: Codec.key(id), value: Codec.journalEntry(Codec.journalAdd, id),
                                append: true)
                            entry.added += 1
                            return true
                        }
                        // One journal entry per case, so the journal position is the last id.
                        try txn.put(meta, key: Array("nextID".utf8), value: Codec.key(nextID))
                        try txn.put(meta, key: Array("seq".utf8), value: Codec.key(nextID - 1))
                    }
                    progress?(done, total)
                }
            }
            inputs.append(entry)
        }
        try lmdbCheck(mdb_env_sync(env.env, 1), "sync \(staging)")
        return MergeReport(
            path: staging, inputs: inputs, memories: memoryCount, indexKind: metadata.indexKind,
            copySeconds: Date().timeIntervalSince(start), indexSeconds: 0, verifySeconds: 0)
    }

    /// Builds the staged bank's index once, over all its vectors (IVF trained once, on the merged set), writes it,
    /// and verifies the whole bank; a problem leaves nothing published.
    private static func buildIndexAndVerify(_ staging: String, report: inout MergeReport) throws {
        var start = Date()
        let bank = try openStaged(at: staging)
        try bank.checkpoint(force: true)
        report.indexKind = bank.indexBuiltKind
        report.indexSeconds = Date().timeIntervalSince(start)
        start = Date()
        let check = bank.verify()
        report.verifySeconds = Date().timeIntervalSince(start)
        guard check.ok else {
            throw BankError.bank(
                report.path,
                """
                the merged bank fails verify, nothing was published: \
                \(check.problems.prefix(3).joined(separator: "; "))
                """
            )
        }
        guard check.cases == report.cases, check.memories == report.memories else {
            throw BankError.bank(
                report.path,
                """
                the merged bank holds \(check.cases) cases and \(check.memories) memories, \(report.cases) and \
                \(report.memories) were copied; nothing was published
                """)
        }
    }
}

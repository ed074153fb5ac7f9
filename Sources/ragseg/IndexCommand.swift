// `ragseg index ...`: create, fill, inspect and check support banks.
import ArgumentParser
import Foundation
import RAGSegCommandOptions
import RAGSegIO
import RAGSegPipeline
import SupportBank

struct IndexCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "index",
        abstract: "Create, fill, inspect and check support banks (LMDB + FAISS).",
        discussion: "PATH is a bank directory; a bare name (no '/') means Indexes/NAME.",
        subcommands: [
            IndexCreate.self, IndexAdd.self, IndexMerge.self, IndexRemove.self, IndexInfo.self, IndexVerify.self,
            IndexSearch.self, IndexSnapshot.self,
        ])
}

/// A bare name means Indexes/NAME; anything with a slash is used as given.
func resolveBankPath(_ path: String) -> String {
    path.contains("/") ? path : ("Indexes" as NSString).appendingPathComponent(path)
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

let standInWarning =
    "note: stand-in encoders are deterministic placeholders with no medical meaning; results are not meaningful."

/// Which encoders to use: the stand-ins, or weight files (recorded by SHA-256).
struct ModelOptions: ParsableArguments {
    @Option(
        help:
            """
            DINOv2 weights file (safetensors or torch hub .pth); its SHA-256 identifies the bank's retrieval model \
            (default: the file recorded at create).
            """
    )
    var dinov2: String?
    @Option(
        help:
            """
            SAM 2 weights file (safetensors or official .pt); its SHA-256 identifies the bank's support model \
            (default: the file recorded at create).
            """
    )
    var sam2: String?
    @Flag(help: "Use deterministic stand-in encoders instead of real models (for tests and demos; NOT meaningful).")
    var standIn = false

    func validate() throws {
        if standIn && (dinov2 != nil || sam2 != nil) {
            throw ValidationError("--stand-in replaces --dinov2/--sam2; give one or the other")
        }
    }

    /// The encoders for an existing bank, after checking they are the bank's models.
    func encoders(for bank: SupportBank) throws -> (RetrievalEncoder, SupportEncoder) {
        let m = bank.metadata
        if standIn {
            guard let dv = DINOv2Variant(rawValue: m.retrievalModel.variant),
                let sv = SAM2Variant(rawValue: m.supportModel.variant)
            else {
                throw BankError.bank(
                    bank.path, "records unknown model variants \(m.retrievalModel.variant)/\(m.supportModel.variant)")
            }
            let retrieval = StandInRetrievalEncoder(variant: dv)
            let support = StandInSupportEncoder(variant: sv, memoryShape: m.memoryShape)
            try bank.requireModels(retrieval: retrieval.model, support: support.model)
            printError(standInWarning)
            return (retrieval, support)
        }
        let (retrieval, support) = try BankModels.encoders(for: bank, dinov2: dinov2, sam2: sam2)
        try bank.requireModels(retrieval: retrieval.model, support: support.model)
        return (retrieval, support)
    }
}

struct IndexCreate: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Create an empty support bank.")

    @Argument(help: "Bank directory (new or empty); a bare name means Indexes/NAME.")
    var path: String
    @OptionGroup var models: ModelOptions
    @Option(
        help:
            """
            Stand-in banks only (real banks take it from the weights): DINOv2 variant, \
            \(DINOv2Variant.allCases.map(\.rawValue).joined(separator: ", ")).
            """
    )
    var dinov2Variant = "vitb14"
    @Option(
        help:
            """
            Stand-in banks only (real banks take it from the weights): SAM 2.1 variant, \
            \(SAM2Variant.allCases.map(\.rawValue).joined(separator: ", ")).
            """
    )
    var sam2Variant = "tiny"
    @Option(help: "Comma-separated names of labels 1...L (default: one label, binary masks).")
    var labels: String?
    @Option(
        help: """
            Take label names from this nnU-Net or MSD dataset folder's dataset.json (a volume dataset also gives the \
            volume settings' intensity default).
            """)
    var dataset: String?
    @Option(
        help:
            """
            Index type: auto (Flat while the vectors fit in 16 MiB, e.g. \
            \(IndexKind.autoApproximateThreshold(dimension: 768)) cases at 768-d, then IVF), flat, hnsw, ivf.
            """
    )
    var indexType = "auto"
    @Option(help: .hidden) var memoryShape: String?  // "C,H,W,P": stand-in banks with small memories (tests)
    @OptionGroup var memoryCodec: MemoryCodecOptions
    @OptionGroup(title: "Volume settings (recorded in the bank)")
    var volume: VolumeSettingOptions
    @Option(help: "Take every setting from this bank (models, labels, preprocessing, volumes): a shard of a build.")
    var template: String?

    func run() throws {
        if let template { return try createFromTemplate(template) }
        guard let dv = DINOv2Variant(rawValue: dinov2Variant) else {
            throw ValidationError("unknown --dinov2-variant \(dinov2Variant)")
        }
        guard let sv = SAM2Variant(rawValue: sam2Variant) else {
            throw ValidationError("unknown --sam2-variant \(sam2Variant)")
        }
        guard let kind = IndexKind(rawValue: indexType) else {
            throw ValidationError("unknown --index-type \(indexType)")
        }
        if labels != nil && dataset != nil { throw ValidationError("give --labels or --dataset, not both") }
        var labelNames = ["foreground"]
        if let labels {
            labelNames = labels.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            guard !labelNames.isEmpty, !labelNames.contains(""), labelNames.count < 65535 else {
                throw ValidationError("--labels needs non-empty names")
            }
        } else if let dataset {
            labelNames = try CaseSources.nnUNetLabels(dataset)
        }
        let volumeSettings = try volume.settingsForCreate(dataset: dataset)
        var shape = MemoryShape.sam2
        if let memoryShape {
            let v = memoryShape.split(separator: ",").compactMap { Int($0) }
            guard models.standIn, v.count == 4, v.allSatisfy({ $0 > 0 && $0 < 65536 }) else {
                throw ValidationError("--memory-shape C,H,W,P is only for stand-in banks")
            }
            shape = MemoryShape(channels: v[0], height: v[1], width: v[2], pointerDimension: v[3])
        }
        let retrieval: ModelIdentity
        let support: ModelIdentity
        var preprocessing = [String: String]()
        var embeddingDimension: Int
        var weightsPaths: [String: String]? = nil
        if models.standIn {
            retrieval = StandIn.retrievalModel(dv)
            support = StandIn.supportModel(sv)
            preprocessing = StandIn.preprocessing
            printError(standInWarning)
            embeddingDimension = dv.embeddingDimension
        } else {
            // The models themselves say what the bank will hold: embedding width, memory shape, variants.
            guard let dinov2 = models.dinov2, let sam2 = models.sam2 else {
                throw ValidationError("give both --dinov2 and --sam2 weight files (or --stand-in)")
            }
            let (r, s) = (try DINOv2RetrievalEncoder(path: dinov2), try SAM2Checkpoint.supportEncoder(path: sam2))
            weightsPaths = ["dinov2": BankModels.absolute(dinov2), "sam2": BankModels.absolute(sam2)]
            retrieval = r.model
            support = s.model
            embeddingDimension = r.dimension
            shape = s.memoryShape
            preprocessing = r.preprocessing.merging(s.preprocessing) { a, _ in a }
        }
        var metadata = BankMetadata(
            retrievalModel: retrieval, supportModel: support, embeddingDimension: embeddingDimension,
            memoryShape: shape, preprocessing: preprocessing, labels: labelNames, indexKind: kind)
        metadata.weightsPaths = weightsPaths
        metadata.volumeSettings = volumeSettings
        if try memoryCodec.codec() != .bf16 { metadata.memoryCodec = try memoryCodec.codec() }
        let bankPath = resolveBankPath(path)
        _ = try SupportBank.create(at: bankPath, metadata: metadata)
        print(
            """
            created \(bankPath): \(labelNames.count == 1 ? "binary" : "\(labelNames.count) labels") \
            (\(labelNames.joined(separator: ", "))), \(retrieval), \(support), index \(kind.rawValue)
            """
                + (volumeSettings.map { "; volumes: \($0.summary)" } ?? "")
        )
    }
}

struct IndexAdd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add",
        abstract: """
            Add image/mask pairs, or image/label volumes one slice per case, to a bank (re-running resumes; \
            duplicates are skipped).
            """,
        discussion: """
            Prints one line per case on stdout once its batch is committed: `added ID IMAGE` or \
            `duplicate ID IMAGE`. Progress goes to stderr. Volume options must agree with the settings the bank \
            recorded; a bank without any (made for 2-D images) records them with its first volumes.
            """)

    @OptionGroup var precision: PrecisionOptions
    @Argument(help: "Bank directory.") var path: String
    @Option(help: "Folder of images, PNG or NIfTI volumes (pairs with --masks by file stem).") var images: String?
    @Option(help: "Folder of masks (PNG) or label volumes (NIfTI).") var masks: String?
    @Option(help: "nnU-Net (2-D PNG or 3-D NIfTI) or MSD dataset folder (imagesTr/, labelsTr/, dataset.json).")
    var dataset: String?
    @Option(help: "CSV file of image,mask lines.") var list: String?
    @OptionGroup var models: ModelOptions
    @Option(help: "Cases per committed transaction.") var batch = 16
    @Flag(help: "No progress output.") var quiet = false
    @Option(help: .hidden) var mapSizeMib: Int?  // tests: a tiny map provokes MDB_MAP_FULL
    @OptionGroup var pixelLimit: PixelLimitOptions
    @OptionGroup(title: "Volumes") var volumeInput: VolumeInputOptions
    @OptionGroup(title: "Sharded builds") var sharding: ShardOptions

    func validate() throws {
        let given = [images != nil || masks != nil, dataset != nil, list != nil].filter { $0 }.count
        guard given == 1 else { throw ValidationError("give exactly one of --images/--masks, --dataset, --list") }
        if (images == nil) != (masks == nil) { throw ValidationError("--images and --masks go together") }
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
    }

    func run() throws {
        if let volumes = try volumeSources() {
            return try addVolumes(volumes)
        }
        try volumeInput.refuseFor2D()
        var sources: [CaseSource]
        if let images, let masks {
            sources = try CaseSources.pairs(images: images, masks: masks)
        } else if let dataset {
            sources = try CaseSources.nnUNet(dataset)
        } else {
            sources = try CaseSources.list(list!)
        }
        let bank = try SupportBank.open(
            at: resolveBankPath(path), mapSize: mapSizeMib.map { $0 << 20 } ?? SupportBank.defaultMapSize)
        if let dataset, !bank.metadata.isBinary {
            let names = try CaseSources.nnUNetLabels(dataset)
            guard names == bank.metadata.labels else {
                throw BankError.input(
                    dataset, "dataset.json labels \(names) differ from the bank's \(bank.metadata.labels)")
            }
        }
        sources = try sharding.select(sources, bank: bank, quiet: quiet, unit: "pairs") { $0.image }
        let (retrieval, support) = try models.encoders(for: bank)
        let labelCount = bank.metadata.labels.count
        let batcher = CaseBatcher(
            bank: bank, batch: batch, progress: ProgressReporter(total: sources.count, quiet: quiet))
        try batcher.run {
            for source in sources {
                let loaded = try CaseLoader.load(source, labelCount: labelCount)
                if let existing = try bank.caseID(forContentHash: loaded.contentHash) {
                    batcher.stored(existing, image: source.image)  // committed earlier: skip the encoders
                    continue
                }
                // (a duplicate within one batch is caught by the bank's add)
                try batcher.append(try CaseLoader.prepare(loaded, retrieval: retrieval, support: support))
            }
        }
        try bank.checkpoint(force: false)
        if !quiet {
            printError(
                """
                added \(batcher.added), already present \(batcher.duplicates); bank has \
                \(try bank.statistics().cases) cases
                """
            )
        }
    }
}

struct IndexRemove: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove",
        abstract: "Remove cases by id, or every slice of a volume (all or nothing: one transaction).",
        discussion:
            "Prints `removed ID` for each id on stdout once the transaction is committed; the summary goes to stderr.")
    @Argument(help: "Bank directory.") var path: String
    @Argument(help: "Case ids.") var ids: [UInt64] = []
    @Option(
        help: ArgumentHelp(
            "Remove every slice case of this volume: its path as added, or the SHA-256 (hex) of its file.",
            valueName: "path|sha256"))
    var volume: String?

    func validate() throws {
        guard ids.isEmpty != (volume == nil) else { throw ValidationError("give case ids or --volume, not both") }
    }

    func run() throws {
        let bank = try SupportBank.open(at: resolveBankPath(path))
        if let volume {
            var removed = try bank.removeVolume(volume)
            if removed.isEmpty && FileManager.default.fileExists(atPath: volume) {
                // The same file added under another path: its bytes name it.
                removed = try bank.removeVolume(try VolumeCaseLoader.fileSHA256(volume))
            }
            guard !removed.isEmpty else {
                throw BankError.bank(bank.path, "no slice of volume \(volume) is in the bank; nothing was removed")
            }
            for id in removed { print("removed\t\(id)") }
            fflush(nil)
            try bank.checkpoint(force: false)
            printError("removed \(removed.count) slice(s) of \(volume); bank has \(try bank.statistics().cases) cases")
            return
        }
        try bank.remove(ids)
        for id in Set(ids).sorted() { print("removed\t\(id)") }
        fflush(nil)  // a reader (or a crash test) sees exactly what is committed
        try bank.checkpoint(force: false)
        printError("removed \(Set(ids).count) case(s); bank has \(try bank.statistics().cases) cases")
    }
}

func formatBytes(_ n: Int) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var v = Double(n)
    var u = 0
    while v >= 1024 && u < units.count - 1 { v /= 1024; u += 1 }
    return u == 0 ? "\(n) B" : String(format: "%.1f %@", v, units[u])
}

struct IndexInfo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info", abstract: "Counts, labels, models and disk use of a bank.")
    @Argument(help: "Bank directory.") var path: String

    func run() throws {
        let bank = try SupportBank.open(at: resolveBankPath(path), readOnly: true)
        let m = bank.metadata
        let s = try bank.statistics()
        print("bank            \(bank.path)")
        print("format          \(m.formatVersion), created \(Date(timeIntervalSince1970: m.created))")
        print("cases           \(s.cases)")
        print("memories        \(s.memories) (\(m.memoryShape), stored \(m.codec))")
        print(
            "labels          \(m.labels.enumerated().map { "\($0.offset + 1)=\($0.element)" }.joined(separator: ", "))")
        print("retrieval model \(m.retrievalModel.name) \(m.retrievalModel.variant) sha256 \(m.retrievalModel.sha256)")
        print("support model   \(m.supportModel.name) \(m.supportModel.variant) sha256 \(m.supportModel.sha256)")
        if m.retrievalModel.name.hasPrefix("stand-in") { print("                (stand-in models: not meaningful)") }
        print("embedding       \(m.embeddingDimension)-d fp32, cosine")
        if let v = m.volumeSettings {
            let counts = try bank.volumeCounts()
            print("volumes         \(v.summary); \(counts.slices) slices of \(counts.volumes) volume(s)")
        }
        print(
            """
            index           \(s.indexKind.rawValue) (configured \(m.indexKind.rawValue)), \(s.indexVectors) vectors, \
            \(s.tombstones) tombstones
            """
        )
        print("journal         at \(s.journalSeq); index file at \(s.indexFileSeq.map(String.init) ?? "none")")
        if let repair = bank.indexRepair { print("note            \(repair)") }
        print(
            """
            disk            \(formatBytes(s.diskBytes)) (LMDB \(formatBytes(s.lmdbBytes)), index \
            \(formatBytes(s.indexFileBytes)))
            """
                + (s.cases > 0 ? ", \(formatBytes(s.diskBytes / s.cases)) per case" : ""))
    }
}

struct IndexVerify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check LMDB <-> FAISS coherence, checksums and shapes (exit 0 when coherent, 1 otherwise).")
    @Argument(help: "Bank directory.") var path: String

    func run() throws {
        let bank = try SupportBank.open(at: resolveBankPath(path))
        let report = bank.verify()
        for note in report.notes { print("note: \(note)") }
        for problem in report.problems { print("PROBLEM: \(problem)") }
        print(
            """
            \(report.cases) cases, \(report.memories) memories, \(report.indexVectors) index vectors \
            (\(report.tombstones) tombstones): 
            """
                + (report.ok ? "OK" : "\(report.problems.count) problem(s)"))
        if !report.ok { throw ExitCode(1) }
    }
}

struct IndexSearch: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "search", abstract: "The nearest support cases of an image.")
    @Argument(help: "Bank directory.") var path: String
    @Argument(help: "Query image (PNG).") var image: String
    @Option(name: .customLong("k"), help: "Number of neighbours.") var k = 5
    @OptionGroup var models: ModelOptions
    @OptionGroup var pixelLimit: PixelLimitOptions

    func validate() throws {
        guard k >= 1 else { throw ValidationError("--k must be at least 1") }
    }

    func run() throws {
        let bank = try SupportBank.open(at: resolveBankPath(path), readOnly: true)
        let (retrieval, _) = try models.encoders(for: bank)
        let query: PNGImage
        do { query = try PNG.read(image) } catch { throw BankError.input(image, "cannot read image: \(error)") }
        let hits = try bank.search(try retrieval.embed(query), k: k)
        print("rank\tid\tscore\timage\tmask")
        for (rank, hit) in hits.enumerated() {
            print(
                "\(rank + 1)\t\(hit.id)\t\(String(format: "%.4f", hit.score))\t\(hit.record.image)\t\(hit.record.mask)")
        }
    }
}

// Sharded builds: `index create --template` (shards with one build's settings), `index add --shard I/N|auto`
// (one share of the inputs) and `index merge` (the shards into one bank). The logic is in SupportBank (Merge.swift,
// Shards.swift) and RAGSegPipeline (Ingest/Sharding.swift).
import ArgumentParser
import Foundation
import RAGSegPipeline
import SupportBank

struct ShardOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            """
            Add only shard I of N of the inputs (0 <= I < N), chosen by the SHA-256 of each image file (volumes \
            whole); `auto` reads a Slurm job array (SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT) or a Kubernetes \
            Indexed Job (JOB_COMPLETION_INDEX, RAGSEG_SHARD_COUNT). Each shard needs its own bank (`index create \
            SHARD --template BANK`); `index merge` joins them.
            """,
            valueName: "I/N|auto"))
    var shard: String?

    /// The share, from --shard (and the scheduler's variables for `auto`); nil without --shard.
    func assignment() throws -> ShardAssignment? {
        guard let shard else { return nil }
        do { return try Sharding.parse(shard, environment: ProcessInfo.processInfo.environment) } catch {
            throw ValidationError("\(error)")
        }
    }

    func validate() throws { _ = try assignment() }

    /// The inputs this process adds: with --shard, the share's (recorded in the bank first, so a bank never holds
    /// two shares); without it, all of them, unless the bank is a shard.
    func select<Source>(
        _ sources: [Source], bank: SupportBank, quiet: Bool, unit: String, image: (Source) -> String
    ) throws -> [Source] {
        guard let share = try assignment() else {
            if let recorded = bank.metadata.shard {
                throw BankError.bank(
                    bank.path, "is shard \(recorded) of a build: add to it with --shard \(recorded) (or auto)")
            }
            return sources
        }
        try bank.recordShard(share)
        let mine = try Sharding.select(sources, shard: share, image: image)
        if !quiet {
            printError("shard \(share): \(mine.count) of \(sources.count) \(unit) (by the SHA-256 of each image file)")
        }
        return mine
    }
}

extension IndexCreate {
    /// `index create SHARD --template BANK`: an empty bank with the template's settings, so that shards built on
    /// different machines can be merged (the template is only read, without a lock file).
    func createFromTemplate(_ template: String) throws {
        if models.standIn || models.dinov2 != nil || models.sam2 != nil || labels != nil || dataset != nil
            || memoryShape != nil || volume.given
        {
            throw ValidationError("--template takes every setting from the template bank: give no other")
        }
        let source = try SupportBank.readMetadata(at: resolveBankPath(template))
        let metadata = SupportBank.metadata(fromTemplate: source)
        let bankPath = resolveBankPath(path)
        _ = try SupportBank.create(at: bankPath, metadata: metadata)
        let labels = metadata.labels.count == 1 ? "binary" : "\(metadata.labels.count) labels"
        let volumes = metadata.volumeSettings.map { "; volumes: \($0.summary)" } ?? ""
        print(
            """
            created \(bankPath) from template \(resolveBankPath(template)): \(labels) \
            (\(metadata.labels.joined(separator: ", "))), \(metadata.retrievalModel), \(metadata.supportModel), \
            index \(metadata.indexKind.rawValue)\(volumes)
            """)
    }
}

struct IndexMerge: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Merge banks built in parallel (shards) into one new bank.",
        discussion: """
            Every bank must have the same models, labels, preprocessing, memory shape and index type; shards of one \
            build must all be given. Cases get new ids in the order given; a case already brought by an earlier \
            bank (same content hash) is skipped and counted. The index is built once at the end and the result \
            verified before it appears at OUT: a killed merge leaves no bank there (run it again). The inputs are \
            read without a lock file and never written: no process may write them meanwhile. Prints one line per \
            input on stdout (`input PATH SHARD CASES ADDED DUPLICATES`) and a summary.
            """)

    @Argument(help: "The new bank (missing or an empty directory); a bare name means Indexes/NAME.") var out: String
    @Argument(help: "The banks to merge (shards).") var inputs: [String]
    @Flag(help: "Merge even when some shards of a build are not given (their cases are then missing).")
    var allowMissingShards = false
    @Flag(help: "No progress output.") var quiet = false

    func validate() throws {
        guard !inputs.isEmpty else { throw ValidationError("give the banks to merge after OUT") }
    }

    func run() throws {
        let outPath = resolveBankPath(out)
        var progress: ProgressReporter?
        let report = try SupportBank.merge(
            into: outPath, from: inputs.map(resolveBankPath), allowMissingShards: allowMissingShards
        ) { done, total in
            if progress == nil { progress = ProgressReporter(total: total, quiet: quiet) }
            progress?.update(done, force: done == total)
        }
        for input in report.inputs {
            print(
                "input\t\(input.path)\t\(input.shard.map(\.description) ?? "-")\t\(input.cases)\t\(input.added)\t"
                    + "\(input.duplicates)")
        }
        let seconds = report.copySeconds + report.indexSeconds + report.verifySeconds
        print(
            String(
                format: """
                    merged %d cases (%d memories) from %d banks into %@; %d duplicate(s) skipped (same content in an \
                    earlier bank); index %@; copy %.2f s, index %.2f s, verify %.2f s (%.0f cases/s)
                    """,
                report.cases, report.memories, report.inputs.count, outPath, report.duplicates,
                report.indexKind.rawValue, report.copySeconds, report.indexSeconds, report.verifySeconds,
                seconds > 0 ? Double(report.cases) / seconds : 0))
    }
}

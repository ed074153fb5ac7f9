// `ragseg index snapshot BANK OUT`: a consistent compacted copy of a bank, taken while writers run (for read-only
// replicas: `ragseg serve --read-only --index OUT`). The work is `SupportBank.snapshot`.
import ArgumentParser
import Foundation
import SupportBank

struct IndexSnapshot: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot",
        abstract: "Write a consistent, compacted copy of a bank (safe while other processes add or remove cases).",
        discussion: """
            The copy holds every case committed up to one moment and none after (one LMDB read transaction, \
            compacted), with an index file at exactly that position; it passes `ragseg index verify`. It is built \
            in a hidden staging folder beside OUT and renamed into place, so an interrupted snapshot leaves no \
            bank at OUT. The snapshot keeps the bank's identity: serve it with `ragseg serve --read-only`, and \
            add cases to the primary, not to a copy.
            """)
    @Argument(help: "Bank directory to copy (a bare name means Indexes/NAME).") var path: String
    @Argument(help: "Where the copy goes: a new or empty directory (a bare name means Indexes/NAME).") var output:
        String

    func run() throws {
        let bank = try SupportBank.open(at: resolveBankPath(path), readOnly: true)
        let report = try bank.snapshot(to: resolveBankPath(output))
        print(
            """
            snapshot \(report.path): \(report.cases) cases at journal position \(report.journalSeq), \
            LMDB \(formatBytes(report.lmdbBytes)) (compacted), \(report.indexVectors) index vectors; \
            \(String(format: "%.2f", report.seconds)) s (LMDB copy \(String(format: "%.2f", report.copySeconds)) s)
            """)
    }
}

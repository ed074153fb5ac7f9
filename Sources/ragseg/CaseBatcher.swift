// Batched commits for `index add`, 2-D and volumes alike: prepared cases are committed in transactions of
// `batch`, each case reported on stdout once its transaction is committed (so a killed run shows exactly
// what is stored, and re-running skips it by content hash).
import Foundation
import RAGSegPipeline
import SupportBank

final class CaseBatcher {
    let bank: SupportBank
    let batch: Int
    let progress: ProgressReporter
    private var pending = [PreparedCase]()
    private(set) var added = 0
    private(set) var duplicates = 0
    private(set) var done = 0

    init(bank: SupportBank, batch: Int, progress: ProgressReporter) {
        self.bank = bank
        self.batch = batch
        self.progress = progress
    }

    func report(_ kind: String, _ id: UInt64, _ image: String) {
        print("\(kind)\t\(id)\t\(image)")
        fflush(nil)  // a reader (or a crash test) sees exactly what is committed
    }

    /// A case already stored (found by its content hash before encoding): reported, not encoded.
    func stored(_ id: UInt64, image: String) {
        duplicates += 1
        done += 1
        report("duplicate", id, image)
        progress.update(done)
    }

    /// Progress for work that adds no case (volume slices that are not chosen). Counted, not printed: a
    /// line right after a burst of skipped slices would show a rate and ETA they say nothing about.
    func skip(_ count: Int) {
        done += count
    }

    func append(_ prepared: PreparedCase) throws {
        pending.append(prepared)
        if pending.count >= batch { try commit() }
    }

    func commit() throws {
        guard !pending.isEmpty else { return }
        let outcomes = try bank.add(pending)
        for (c, outcome) in zip(pending, outcomes) {
            switch outcome {
            case .added(let id): added += 1; report("added", id, c.image)
            case .duplicate(let id): duplicates += 1; report("duplicate", id, c.image)
            }
        }
        done += pending.count
        pending.removeAll()
        progress.update(done)
    }

    /// Runs `body`; on an error keeps what is valid (commits the pending cases unless LMDB itself failed),
    /// says so, and rethrows.
    func run(_ body: () throws -> Void) throws {
        do {
            try body()
            try commit()
        } catch {
            if !(error is LMDBError) { try? commit() }
            printError("\(added) case(s) added before the error; the bank is intact and re-running resumes.")
            throw error
        }
        progress.update(done, force: true)
    }
}

// `snapshot`: a consistent, compacted copy of a bank taken while writers run, for read-only replicas and
// backups. See README.md in this directory ("Snapshots").
import CLMDB
import Glibc
import Foundation

/// What `snapshot` wrote.
public struct SnapshotReport: Sendable {
    public var path: String
    public var cases: Int
    /// The journal position the copy holds: every write committed up to it and none after.
    public var journalSeq: UInt64
    /// Size of the compacted data.mdb.
    public var lmdbBytes: Int
    public var indexVectors: Int
    /// Wall-clock seconds of the LMDB copy (under this bank's index lock) and of the whole snapshot.
    public var copySeconds: Double
    public var seconds: Double
}

extension SupportBank {
    /// Writes a consistent copy of this bank to `target` (missing or an empty directory) while other threads and
    /// processes keep writing. LMDB is copied in ONE read transaction, compacted (`mdb_env_copy2` with
    /// `MDB_CP_COMPACT`: free pages dropped, pages renumbered), so the copy holds exactly the writes committed
    /// up to one journal position. The index file written beside it reflects exactly that position: this
    /// object's in-memory index (never ahead of the copy, see below) is caught up from the copy's own journal.
    /// Like `create`, the copy is built in a staging folder and renamed into place, so a killed snapshot
    /// leaves no bank (only a staging folder the next create or snapshot of the same target removes).
    ///
    /// In-process searches and writes wait while the LMDB copy runs (it holds the index lock); other processes
    /// are not blocked. The snapshot keeps the bank's UUID: it is the same bank at an earlier position.
    public func snapshot(to target: String) throws -> SnapshotReport {
        let start = DispatchTime.now().uptimeNanoseconds
        try BankCreation.checkTarget(target)
        let staging = try BankCreation.makeStaging(for: target)
        do {
            let copySeconds = try copyForSnapshot(into: staging)
            var report = try SupportBank.finishSnapshot(staging, target: target)
            try BankCreation.publish(staging, as: target)
            report.copySeconds = copySeconds
            report.seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            return report
        } catch {
            try? FileManager.default.removeItem(atPath: staging)
            throw error
        }
    }

    /// Copies LMDB into `staging` and writes the in-memory index beside it; returns the copy's seconds.
    private func copyForSnapshot(into staging: String) throws -> Double {
        lock.lock()
        defer { lock.unlock() }
        // Under the lock the in-memory index reflects only commits made before the copy's read transaction
        // begins (writes of this process mirror into it under the same lock), so its position is at or
        // before the copy's: the staged bank's open replays the rest from the copy's journal.
        let start = DispatchTime.now().uptimeNanoseconds
        let rc = mdb_env_copy2(env.env, staging, UInt32(MDB_CP_COMPACT))
        guard rc == 0 else {
            throw BankError.bank(
                path, "snapshot: copying LMDB to \(staging) failed: \(String(cString: mdb_strerror(rc)))")
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        try writeIndex(to: (staging as NSString).appendingPathComponent(SupportBank.indexFileName))
        return seconds
    }

    /// Opens the staged copy as a bank (its open catches the index up to the copy's journal position),
    /// writes its index file at that position and syncs data.mdb (LMDB's copy does not).
    private static func finishSnapshot(_ staging: String, target: String) throws -> SnapshotReport {
        var report: SnapshotReport
        do {
            let env = try LMDBEnvironment(path: staging, mapSize: defaultMapSize)
            let copy = try SupportBank(path: staging, env: env, readOnly: false)
            try copy.checkpoint(force: true)
            let stats = try copy.statistics()
            report = SnapshotReport(
                path: target, cases: stats.cases, journalSeq: stats.journalSeq, lmdbBytes: 0,
                indexVectors: stats.indexVectors, copySeconds: 0, seconds: 0)
        }  // the staged bank is closed here, before its files are synced and renamed
        let data = (staging as NSString).appendingPathComponent("data.mdb")
        let fd = Glibc.open(data, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw BankError.bank(target, "snapshot: cannot open \(data): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var info = stat()
        guard fsync(fd) == 0, fstat(fd, &info) == 0 else {
            throw BankError.bank(target, "snapshot: cannot sync \(data): \(String(cString: strerror(errno)))")
        }
        report.lmdbBytes = Int(info.st_size)
        return report
    }
}

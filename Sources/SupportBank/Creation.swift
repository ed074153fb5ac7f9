// Crash-atomic `create`: a bank is built in a staging folder beside its target and renamed into place,
// so a crash leaves either no bank (at most a hidden staging folder, cleaned by the next create) or a
// complete one. See README.md in this directory ("Creating a bank").
import Foundation

enum BankCreation {
    /// Present in a staging folder until just before the rename: `open` refuses a folder holding it.
    static let markerName = ".ragseg-creating"
    /// The only entries a staging folder of ours can hold (what `create` and `snapshot` write before the rename;
    /// `snapshot` and `index merge` also write the index file, through a temporary `index.faiss.tmp.PID`).
    static let stagingEntries: Set<String> = [markerName, "data.mdb", "lock.mdb", SupportBank.indexFileName]

    static func isStagingEntry(_ name: String) -> Bool {
        stagingEntries.contains(name) || name.hasPrefix(SupportBank.indexFileName + ".tmp.")
    }

    /// `.NAME.creating-<pid>-<random>`: hidden, tied to its target's name and to the creating process.
    static func stagingPrefix(for target: String) -> String {
        "." + (target as NSString).lastPathComponent + ".creating-"
    }

    /// Checks the target may receive a new bank: missing, or an empty directory (which the rename replaces).
    static func checkTarget(_ path: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return }
        guard isDirectory.boolValue else { throw BankError.bank(path, "exists and is not a directory") }
        let contents = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        guard contents.isEmpty else {
            throw BankError.bank(path, "directory is not empty (a bank already exists there?)")
        }
    }

    /// Makes a fresh staging folder (with its marker) beside `target`, after removing the staging folders of
    /// creates of the same target whose process is gone. Returns its path.
    static func makeStaging(for target: String) throws -> String {
        let parent = (target as NSString).deletingLastPathComponent
        let parentPath = parent.isEmpty ? "." : parent
        do { try FileManager.default.createDirectory(atPath: parentPath, withIntermediateDirectories: true) } catch {
            throw BankError.bank(target, "cannot create the parent directory: \(error.localizedDescription)")
        }
        removeStaleStaging(for: target, in: parentPath)
        let name = stagingPrefix(for: target) + "\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let staging = (parentPath as NSString).appendingPathComponent(name)
        do {
            try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: false)
            // open(2), not FileManager.createFile: that writes a temporary file and renames it, and a kill in
            // between would leave a file no cleanup recognizes.
            let marker = open(
                (staging as NSString).appendingPathComponent(markerName), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                0o644)
            guard marker >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
            close(marker)
        } catch {
            try? FileManager.default.removeItem(atPath: staging)
            throw BankError.bank(
                target, "cannot create a staging folder in \(parentPath): \(error.localizedDescription)")
        }
        return staging
    }

    /// Removes leftovers of killed creates: our name pattern, only the entries a create writes, and a
    /// creating process that no longer runs (a live one is another create in progress).
    static func removeStaleStaging(for target: String, in parent: String) {
        let prefix = stagingPrefix(for: target)
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? []
        for entry in entries where entry.hasPrefix(prefix) {
            let parts = entry.dropFirst(prefix.count).split(separator: "-")
            guard parts.count == 2, let pid = Int32(parts[0]), UInt32(parts[1]) != nil else { continue }
            if kill(pid, 0) == 0 || errno == EPERM { continue }  // that process still runs
            let path = (parent as NSString).appendingPathComponent(entry)
            guard let contents = try? FileManager.default.contentsOfDirectory(atPath: path),
                contents.allSatisfy(isStagingEntry)
            else { continue }
            try? FileManager.default.removeItem(atPath: path)
        }
    }

    /// Makes the finished staging folder the bank: marker removed, folder synced, renamed onto the target
    /// (a missing or empty directory), parent synced so the rename itself survives a power loss.
    static func publish(_ staging: String, as target: String) throws {
        let marker = (staging as NSString).appendingPathComponent(markerName)
        guard unlink(marker) == 0 else { throw BankError.bank(target, "cannot finish: \(posixMessage(errno))") }
        try syncDirectory(staging, target: target)
        guard rename(staging, target) == 0 else {
            let code = errno
            let reason =
                code == ENOTEMPTY || code == EEXIST
                ? "directory is not empty (another create finished first?)" : posixMessage(code)
            throw BankError.bank(target, "cannot move the new bank into place: \(reason)")
        }
        let parent = (target as NSString).deletingLastPathComponent
        try syncDirectory(parent.isEmpty ? "." : parent, target: target)
    }

    static func syncDirectory(_ path: String, target: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw BankError.bank(target, "cannot open \(path) to sync it: \(posixMessage(errno))") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw BankError.bank(target, "cannot sync \(path): \(posixMessage(errno))") }
    }

    static func posixMessage(_ code: Int32) -> String { String(cString: strerror(code)) }

    /// True for a name `stagingPrefix` makes (`.NAME.creating-<pid>-<random>`).
    static func isStagingName(_ name: String) -> Bool {
        guard name.hasPrefix("."), let range = name.range(of: ".creating-", options: .backwards) else { return false }
        let parts = name[range.upperBound...].split(separator: "-", omittingEmptySubsequences: false)
        return parts.count == 2 && Int32(parts[0]) != nil && UInt32(parts[1]) != nil
    }

    /// A staging folder of `target` beside it (a create or merge that has not finished or was killed), if any.
    static func unfinishedStaging(for target: String) -> String? {
        let parent = (target as NSString).deletingLastPathComponent
        let parentPath = parent.isEmpty ? "." : parent
        let prefix = stagingPrefix(for: target)
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: parentPath)) ?? []
        return entries.sorted().first { $0.hasPrefix(prefix) && isStagingName($0) }.map {
            (parentPath as NSString).appendingPathComponent($0)
        }
    }

    /// Refuses a staging folder with what to do about it: one holding the marker may hold an unfinished
    /// bank; one killed between removing the marker and the rename is recognized by its name.
    static func refuseStaging(_ path: String) throws {
        let marker = (path as NSString).appendingPathComponent(markerName)
        let name = ((path as NSString).standardizingPath as NSString).lastPathComponent
        guard FileManager.default.fileExists(atPath: marker) || isStagingName(name) else { return }
        throw BankError.bank(
            path,
            """
            is the staging folder of an unfinished `index create` or `index merge` (stopped before it finished), \
            not a bank; the next create or merge of the same bank removes it, or remove it yourself
            """
        )
    }
}

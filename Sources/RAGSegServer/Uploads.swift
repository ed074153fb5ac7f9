// Uploaded files the bank will name (POST /cases): written to a temporary name, synced, renamed into place,
// and the folder synced, so a crash leaves the whole file or none.
import Foundation
import SupportBank

extension SegmentationServer {
    /// The name both files of one upload share: the first 32 hex digits of the SHA-256 of the two uploads,
    /// each preceded by its length (so the same bytes split differently give another name).
    static func uploadStem(_ image: [UInt8], _ mask: [UInt8]) -> String {
        var hash = SHA256()
        for bytes in [image, mask] {
            withUnsafeBytes(of: UInt64(bytes.count).littleEndian) { hash.update($0) }
            hash.update(bytes)
        }
        return String(hexString(hash.finalize()).prefix(32))
    }

    static func writeDurably(_ bytes: [UInt8], to path: String) throws {
        let temporary = path + ".tmp"
        guard FileManager.default.createFile(atPath: temporary, contents: Data(bytes)) else {
            throw BankError.bank(path, "cannot write the uploaded file")
        }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: temporary))
        try handle.synchronize()
        try handle.close()
        try? FileManager.default.removeItem(atPath: path)
        try FileManager.default.moveItem(atPath: temporary, toPath: path)
        // The rename is durable only once the folder is synced: a power loss must not lose a file a case names.
        let folder = (path as NSString).deletingLastPathComponent
        let fd = open(folder.isEmpty ? "." : folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0, fsync(fd) == 0 else {
            if fd >= 0 { close(fd) }
            throw BankError.bank(path, "cannot sync the uploads folder \(folder)")
        }
        close(fd)
    }
}

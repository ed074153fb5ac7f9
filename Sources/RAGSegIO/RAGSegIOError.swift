// Errors and small file helpers shared by the readers and writers in this module.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A file could not be read or written. Every reader throws this (never traps) on bad input, so a
/// caller can print `description` and the user sees which file is wrong and why.
public struct RAGSegIOError: Error, CustomStringConvertible, Sendable {
    public let path: String
    public let message: String

    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }

    /// "<path>: <message>"
    public var description: String { "\(path): \(message)" }
}

/// The text of the last C library error (errno), for messages.
func lastErrnoMessage() -> String {
    String(cString: strerror(errno))
}

/// Whole contents of a file (NPY, PNG: both small enough to read at once).
func readFileBytes(_ path: String) throws -> [UInt8] {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { throw RAGSegIOError(path: path, message: "cannot open: \(lastErrnoMessage())") }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0 else { throw RAGSegIOError(path: path, message: "cannot stat: \(lastErrnoMessage())") }
    guard (info.st_mode & S_IFMT) == S_IFREG else { throw RAGSegIOError(path: path, message: "not a regular file") }
    let size = Int(info.st_size)
    var bytes = [UInt8](repeating: 0, count: size)
    var done = 0
    try bytes.withUnsafeMutableBytes { buffer in
        while done < size {
            let n = read(fd, buffer.baseAddress! + done, size - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw RAGSegIOError(path: path, message: "read failed: \(lastErrnoMessage())")
            }
            if n == 0 { break }  // the file shrank while we read it
            done += n
        }
    }
    if done < size { bytes.removeLast(size - done) }
    return bytes
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, then rename(2), so a
/// reader never sees a half-written file and a failed write leaves any old file intact.
func writeFileAtomically(_ bytes: [UInt8], to path: String) throws {
    let temporary = "\(path).tmp-\(getpid())"
    let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { throw RAGSegIOError(path: path, message: "cannot create \(temporary): \(lastErrnoMessage())") }
    var ok = false
    defer {
        if !ok { unlink(temporary) }
    }
    do {
        defer { close(fd) }
        var done = 0
        try bytes.withUnsafeBytes { buffer in
            while done < buffer.count {
                let n = write(fd, buffer.baseAddress! + done, buffer.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw RAGSegIOError(path: path, message: "write failed: \(lastErrnoMessage())")
                }
                done += n
            }
        }
    }
    guard rename(temporary, path) == 0 else {
        throw RAGSegIOError(path: path, message: "cannot rename \(temporary) into place: \(lastErrnoMessage())")
    }
    ok = true
}

/// Product of `shape`, or nil on a negative dimension or overflow (headers are untrusted).
func checkedElementCount(_ shape: [Int]) -> Int? {
    var count = 1
    for d in shape {
        guard d >= 0 else { return nil }
        let (product, overflow) = count.multipliedReportingOverflow(by: d)
        if overflow { return nil }
        count = product
    }
    return count
}

/// Multiplication that reports overflow as nil.
func checkedProduct(_ a: Int, _ b: Int) -> Int? {
    let (product, overflow) = a.multipliedReportingOverflow(by: b)
    return overflow ? nil : product
}

/// "1152x384" (a scalar prints as "scalar").
func describeShape(_ shape: [Int]) -> String {
    shape.isEmpty ? "scalar" : shape.map(String.init).joined(separator: "x")
}

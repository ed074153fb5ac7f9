// A whole file mapped read-only, shared by the weight readers (safetensors, PyTorch zip checkpoints): tensors
// are converted straight from the mapping, so a large checkpoint is never copied into memory as a whole.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only memory map that is unmapped when the last reader using it goes away.
final class MappedFile: @unchecked Sendable {
    // @unchecked: the mapping is PROT_READ and never changes after init, so sharing it is safe.
    let base: UnsafeRawPointer
    let size: Int

    /// Maps `path`; a file under `minimumSize` bytes is an error saying it is too short for `what`.
    init(path: String, minimumSize: Int, what: String) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw RAGSegIOError(path: path, message: "cannot open: \(lastErrnoMessage())") }
        defer { close(fd) }  // the mapping stays valid after close
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw RAGSegIOError(path: path, message: "cannot stat: \(lastErrnoMessage())")
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw RAGSegIOError(path: path, message: "not a regular file") }
        let size = Int(info.st_size)
        guard size >= max(minimumSize, 1) else {
            throw RAGSegIOError(path: path, message: "file is \(size) bytes, too short for \(what)")
        }
        guard let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), mapped != MAP_FAILED else {
            throw RAGSegIOError(path: path, message: "mmap failed: \(lastErrnoMessage())")
        }
        self.base = UnsafeRawPointer(mapped)
        self.size = size
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: base), size) }

    /// The bytes `offset..<offset+count`, or nil when that range is not inside the file (overflow-safe).
    func bytes(at offset: Int, count: Int) -> UnsafeRawBufferPointer? {
        guard offset >= 0, count >= 0, offset <= size, count <= size - offset else { return nil }
        return UnsafeRawBufferPointer(start: base + offset, count: count)
    }
}

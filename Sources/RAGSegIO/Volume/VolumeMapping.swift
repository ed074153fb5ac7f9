// Opening a NIfTI file for reading in place (NIfTI.open): an uncompressed .nii is memory-mapped as it is;
// a .nii.gz is inflated a megabyte at a time into an unlinked temporary file (in $TMPDIR, else /tmp)
// that is then mapped. Memory stays bounded either way; the cost of a .nii.gz is disk: its uncompressed
// size, for as long as the volume is open (the file has no name, so nothing is left behind on a crash).
// The checks and error messages are `NIfTI.read`'s.
import CZlib

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The temporary space volumes are read and written through is missing or full: a fault of the machine, not
/// of the input (a server answers it 507 Insufficient Storage, not 400). `path` is the volume concerned.
public struct ScratchSpaceError: Error, CustomStringConvertible, Sendable {
    public let path: String
    public let message: String
    public var description: String { "\(path): \(message)" }

    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }
}

/// The folder for temporary volume files: $TMPDIR, else /tmp.
func temporaryFolder() -> String {
    if let value = getenv("TMPDIR"), value.pointee != 0 { return String(cString: value) }
    return "/tmp"
}

/// A new temporary file, already unlinked (it lives as long as its descriptor or a mapping of it).
func unlinkedTemporaryFile(for path: String) throws -> Int32 {
    var template = Array("\(temporaryFolder())/ragseg-volume-XXXXXX".utf8CString)
    let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
    guard fd >= 0 else {
        throw ScratchSpaceError(
            path: path, message: "cannot create a temporary file in \(temporaryFolder()): \(lastErrnoMessage())")
    }
    template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
    return fd
}

/// Maps `length` bytes of `fd`: read-only and private, or shared and writable (writes reach the file).
func mapFile(_ fd: Int32, length: Int, writable: Bool, path: String) throws -> UnsafeMutableRawPointer {
    let base = mmap(
        nil, length, writable ? PROT_READ | PROT_WRITE : PROT_READ, writable ? MAP_SHARED : MAP_PRIVATE, fd, 0)
    guard let base, base != MAP_FAILED else {
        throw RAGSegIOError(path: path, message: "cannot map \(length) bytes: \(lastErrnoMessage())")
    }
    return base
}

/// Writes all of `count` bytes at `bytes` to `fd`.
func writeAll(_ fd: Int32, _ bytes: UnsafeRawPointer, count: Int, path: String) throws {
    var done = 0
    while done < count {
        let n = write(fd, bytes + done, count - done)
        if n < 0 {
            if errno == EINTR { continue }
            throw RAGSegIOError(path: path, message: "write failed: \(lastErrnoMessage())")
        }
        done += n
    }
}

/// A gzip stream read from an open file a piece at a time (concatenated members as one stream, as gunzip).
final class GzipFileReader {
    private var stream = z_stream()
    private let file: VolumeFile
    private var input = [UInt8](repeating: 0, count: 1 << 20)
    private var inputStart = 0, inputEnd = 0, consumed = 0
    private var endOfFile = false
    /// The stream has ended (or broke off): `read` produces nothing more.
    private(set) var finished = false

    init(_ file: VolumeFile) throws {
        self.file = file
        guard inflateInit2_(&stream, 15 + 32, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw RAGSegIOError(path: file.path, message: "cannot start zlib's inflater")
        }
    }

    deinit { inflateEnd(&stream) }

    /// Moves what is left of the input to the front and reads more; false at the end of the file.
    private func refill() throws -> Bool {
        guard !endOfFile else { return false }
        let left = inputEnd - inputStart
        if left > 0 && inputStart > 0 {
            input.withUnsafeMutableBytes {
                $0.baseAddress!.copyMemory(from: $0.baseAddress! + inputStart, byteCount: left)
            }
        }
        inputStart = 0
        inputEnd = left
        let more = try file.readBytes(count: input.count - left)
        if more.isEmpty {
            endOfFile = true
            return false
        }
        input.replaceSubrange(left..<(left + more.count), with: more)
        inputEnd = left + more.count
        return true
    }

    /// Inflates up to `count` bytes into `out`; fewer only where the stream ends. Corrupt data is an error.
    func read(into out: UnsafeMutableRawPointer, count: Int) throws -> Int {
        var produced = 0
        while produced < count && !finished {
            if inputStart == inputEnd, try !refill() {
                finished = true
                break
            }
            let available = inputEnd - inputStart
            let outChunk = min(count - produced, 1 << 30)
            let status = input.withUnsafeMutableBufferPointer { buffer -> Int32 in
                stream.next_in = buffer.baseAddress! + inputStart
                stream.avail_in = UInt32(available)
                stream.next_out = (out + produced).assumingMemoryBound(to: UInt8.self)
                stream.avail_out = UInt32(outChunk)
                return CZlib.inflate(&stream, Z_NO_FLUSH)
            }
            inputStart += available - Int(stream.avail_in)
            consumed += available - Int(stream.avail_in)
            produced += outChunk - Int(stream.avail_out)
            switch status {
            case Z_OK:
                continue
            case Z_STREAM_END:
                // Another gzip member may follow (concatenated .gz files are valid).
                if inputEnd - inputStart < 2 { _ = try refill() }
                if inputEnd - inputStart >= 2, input[inputStart] == 0x1F, input[inputStart + 1] == 0x8B {
                    guard inflateReset(&stream) == Z_OK else {
                        throw RAGSegIOError(path: file.path, message: "cannot restart zlib's inflater")
                    }
                    continue
                }
                finished = true
            case Z_BUF_ERROR:
                // No progress: more input is needed; at the end of the file the stream broke off.
                if inputStart == inputEnd { continue }
                throw RAGSegIOError(
                    path: file.path, message: "corrupt gzip data (no progress at compressed byte \(consumed))")
            default:
                let reason = stream.msg.map { String(cString: $0) } ?? "zlib error \(status)"
                throw RAGSegIOError(path: file.path, message: "corrupt gzip data: \(reason)")
            }
        }
        return produced
    }
}

extension NIfTI {
    /// Opens a .nii or .nii.gz for reading its voxels in place (see the top of this file), with `read`'s
    /// checks: limits before anything is allocated, the data inside the file, a complete gzip stream.
    public static func open(_ path: String, limits: NIfTILimits = NIfTILimits()) throws -> VolumeVoxels {
        let file = try VolumeFile(path: path)
        defer { file.finish() }
        let prefix = try file.readBytes(count: min(file.size, 4096))
        if Gzip.isGzip(prefix) { return try openGzip(file, limits: limits) }
        let header = try NIfTIHeader.parse(prefix, name: path)
        let needed = try checkedDataEnd(header, available: file.size, limits: limits, name: path)
        let base = try mapFile(file.fd, length: needed, writable: false, path: path)
        return mapped(base, length: needed, header: header)
    }

    private static func mapped(_ base: UnsafeMutableRawPointer, length: Int, header: NIfTIHeader) -> VolumeVoxels {
        let hostLittle = 1.littleEndian == 1
        let storage = VoxelStorage(.mapped(base, length: length))
        return VolumeVoxels(
            header: header,
            stored: StoredVoxels(
                storage: storage, start: header.voxOffset, datatype: header.datatype,
                swapped: header.littleEndian != hostLittle, count: header.voxelCount))
    }

    private static func openGzip(_ file: VolumeFile, limits: NIfTILimits) throws -> VolumeVoxels {
        let path = file.path
        // gzip never grows data by more than a few bytes per 16 KiB: a larger file cannot fit the limit.
        guard file.size <= limits.maxDataBytes + (1 << 20) else {
            throw RAGSegIOError(
                path: path,
                message: "compressed file of \(file.size) bytes exceeds the limit of \(limits.maxDataBytes) bytes")
        }
        guard lseek(file.fd, 0, SEEK_SET) == 0 else {
            throw RAGSegIOError(path: path, message: "cannot seek: \(lastErrnoMessage())")
        }
        let reader = try GzipFileReader(file)
        var start = [UInt8](repeating: 0, count: 540)
        let got = try start.withUnsafeMutableBytes { try reader.read(into: $0.baseAddress!, count: 540) }
        start.removeLast(540 - got)
        if reader.finished && start.count < 348 {
            throw RAGSegIOError(
                path: path,
                message: "truncated .nii.gz: it inflates to \(start.count) bytes, too few for a NIfTI header")
        }
        let header = try NIfTIHeader.parse(start, name: path)
        let needed = try checkedDataEnd(header, available: nil, limits: limits, name: path)
        let fd = try unlinkedTemporaryFile(for: path)
        defer { close(fd) }
        var written = min(got, needed)
        func save(_ bytes: UnsafeRawPointer, _ count: Int) throws {
            do { try writeAll(fd, bytes, count: count, path: path) } catch let error as RAGSegIOError {
                throw ScratchSpaceError(
                    path: path,
                    message: "cannot inflate into a temporary file in \(temporaryFolder()) (\(needed) bytes): "
                        + error.message)
            }
        }
        try start.withUnsafeBytes { try save($0.baseAddress!, written) }
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while written < needed && !reader.finished {
            let n = try chunk.withUnsafeMutableBytes {
                try reader.read(into: $0.baseAddress!, count: min($0.count, needed - written))
            }
            try chunk.withUnsafeBytes { try save($0.baseAddress!, n) }
            written += n
        }
        if written < needed {
            if written < header.voxOffset {
                throw RAGSegIOError(
                    path: path,
                    message:
                        "vox_offset \(header.voxOffset) is past the end of the decompressed data (\(written) bytes)")
            }
            throw RAGSegIOError(
                path: path,
                message: "truncated .nii.gz: the header declares \(needed - header.voxOffset) bytes of voxel data "
                    + """
                    (\(describeShape(header.shape)) \(header.datatype.name)), the compressed stream holds \
                    \(written - header.voxOffset)
                    """
            )
        }
        let base = try mapFile(fd, length: needed, writable: false, path: path)
        return mapped(base, length: needed, header: header)
    }
}

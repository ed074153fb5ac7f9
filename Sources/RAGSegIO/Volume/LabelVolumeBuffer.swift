// A label volume filled slice by slice and written without ever being an array: its voxels live in the
// stored order of the image it belongs to, in a shared mapping of an unlinked temporary file ($TMPDIR,
// else /tmp; 1 byte per voxel, 2 where a label number passes 255), and each slice's pages are handed
// back after it is written, so resident memory stays at one slice. The NIfTI file is then written from
// it a megabyte at a time (gzip streamed), byte for byte what `NIfTI.write(NIfTIImage.labelMap(...))` gives.
import CZlib

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public final class LabelVolumeBuffer: @unchecked Sendable {
    /// The image's header (the label map's geometry comes from it).
    public let reference: NIfTIHeader
    public let shape: [Int]
    public let count: Int
    /// 2 bytes per voxel (some label number passes 255), else 1.
    let wide: Bool
    private let storage: VoxelStorage
    private let base: UnsafeMutableRawPointer
    /// Some voxel holds a value above 255 (decides uint8 or uint16 output, as `NIfTIImage.labelMap`).
    public private(set) var hasWideValue = false

    /// An all-zero label volume on `reference`'s grid for label numbers up to `maxLabel`.
    public init(like reference: NIfTIHeader, maxLabel: Int, name: String) throws {
        self.reference = reference
        shape = reference.spatialShape
        count = shape.reduce(1, *)
        wide = maxLabel > 255
        let length = max(1, count * (wide ? 2 : 1))
        let fd = try unlinkedTemporaryFile(for: name)
        defer { close(fd) }
        guard ftruncate(fd, off_t(length)) == 0 else {
            throw ScratchSpaceError(
                path: name,
                message: "cannot size a temporary label volume of \(length) bytes in \(temporaryFolder()): "
                    + lastErrnoMessage())
        }
        base = try mapFile(fd, length: length, writable: true, path: name)
        storage = VoxelStorage(.mapped(base, length: length))
    }

    /// Puts label slice `index` (display orientation, `layout.width * layout.height` values) in place.
    public func put(_ slice: [UInt16], index: Int, layout: SliceLayout) {
        precondition(layout.reorientation.sourceShape == shape, "layout of \(layout.reorientation.sourceShape)")
        precondition(slice.count == layout.width * layout.height, "\(slice.count) labels for one slice")
        var low = Int.max, high = -1
        layout.forEachPixel(of: index) { pixel, offset in
            low = min(low, offset)
            high = max(high, offset)
            let v = slice[pixel]
            if wide {
                base.storeBytes(of: v, toByteOffset: offset * 2, as: UInt16.self)
                if v > 255 { hasWideValue = true }
            } else {
                precondition(v <= 255, "label \(v) in a 1-byte label volume")
                base.storeBytes(of: UInt8(v), toByteOffset: offset, as: UInt8.self)
            }
        }
        let size = wide ? 2 : 1
        if high >= 0 { storage.release(bytes: (low * size)..<((high + 1) * size)) }
    }

    /// The labels of voxels `range` in stored order (a plane, a chunk); their pages are handed back after.
    public func values(_ range: Range<Int>) -> [UInt16] {
        precondition(range.lowerBound >= 0 && range.upperBound <= count, "voxels \(range) of \(count)")
        let size = wide ? 2 : 1
        let values = [UInt16](unsafeUninitializedCapacity: range.count) { out, initialized in
            if wide {
                out.baseAddress!.update(
                    from: (base + range.lowerBound * 2).assumingMemoryBound(to: UInt16.self), count: range.count)
            } else {
                let bytes = (base + range.lowerBound).assumingMemoryBound(to: UInt8.self)
                for i in 0..<range.count { out[i] = UInt16(bytes[i]) }
            }
            initialized = range.count
        }
        storage.release(bytes: (range.lowerBound * size)..<(range.upperBound * size))
        return values
    }

    /// The labels in stored order, `chunk` at a time: `body(firstIndex, values)`.
    public func forEachChunk(_ chunk: Int = 1 << 20, _ body: (Int, [UInt16]) -> Void) {
        for first in stride(from: 0, to: count, by: chunk) { body(first, values(first..<min(count, first + chunk))) }
    }

    /// The whole label volume as an array (the server's replies, tests).
    public func grid() -> VoxelGrid<UInt16> {
        var values = [UInt16]()
        values.reserveCapacity(count)
        forEachChunk { _, chunk in values.append(contentsOf: chunk) }
        return VoxelGrid(shape: shape, values: values)
    }

    /// As a NIfTI image in memory: `NIfTIImage.labelMap(grid(), like: reference)`.
    public func labelMap() -> NIfTIImage { NIfTIImage.labelMap(grid(), like: reference) }

    /// Writes the label map atomically (a temporary name, then a rename), gzip-compressed when `path` ends
    /// in ".gz": the bytes of `NIfTI.write(labelMap(), to: path)`, produced a chunk at a time.
    public func write(to path: String) throws {
        var header = NIfTIImage.labelMapHeader(like: reference)
        header.datatype = hasWideValue ? .uint16 : .uint8
        let little = header.littleEndian, wideOutput = hasWideValue
        try NIfTI.write(header: header, to: path) { emit in
            var bytes = [UInt8]()
            for first in stride(from: 0, to: count, by: 1 << 20) {
                let n = min(count, first + (1 << 20)) - first
                if !wide {
                    // Already the file's bytes.
                    try emit(Array(UnsafeRawBufferPointer(start: base + first, count: n)))
                    storage.release(bytes: first..<(first + n))
                    continue
                }
                let values = self.values(first..<(first + n))
                bytes.removeAll(keepingCapacity: true)
                if wideOutput {
                    for v in values {
                        withUnsafeBytes(of: little ? v.littleEndian : v.bigEndian) { bytes.append(contentsOf: $0) }
                    }
                } else {
                    bytes.append(contentsOf: values.lazy.map { UInt8($0) })
                }
                try emit(bytes)
            }
        }
    }
}

extension NIfTI {
    /// Writes a NIfTI file from its header and its voxel bytes given a piece at a time: `voxels(emit)` calls
    /// `emit` with the bytes in order (the header's byte order). As `write(_:to:)`: vox_offset directly
    /// after the header, gzip when `path` ends in ".gz", atomic (a temporary name, then a rename); the same
    /// bytes as `write` of the whole image, with memory for one piece.
    public static func write(
        header: NIfTIHeader, to path: String, voxels: (_ emit: ([UInt8]) throws -> Void) throws -> Void
    ) throws {
        var header = header
        header.voxOffset = header.headerSize + 4
        let temporary = "\(path).tmp-\(getpid())"
        let fd = createTruncated(temporary)
        guard fd >= 0 else {
            throw RAGSegIOError(path: path, message: "cannot create \(temporary): \(lastErrnoMessage())")
        }
        var ok = false
        defer { if !ok { unlink(temporary) } }
        do {
            defer { close(fd) }
            let sink = try FileSink(fd: fd, path: path, gzip: path.hasSuffix(".gz"))
            try sink.append(header.encode())
            try voxels { try sink.append($0) }
            try sink.finish()
        }
        guard rename(temporary, path) == 0 else {
            throw RAGSegIOError(path: path, message: "cannot rename \(temporary) into place: \(lastErrnoMessage())")
        }
        ok = true
    }
}

/// open(2) for writing, created or truncated (outside `NIfTI`, whose `open` would shadow it).
private func createTruncated(_ path: String) -> Int32 { open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644) }

/// Bytes to a file, as they are or through gzip (deflate level 6, no name, zero time: `Gzip.deflate`'s).
private final class FileSink {
    let fd: Int32
    let path: String
    let gzip: Bool
    private var stream = z_stream()
    private var out = [UInt8](repeating: 0, count: 1 << 18)

    init(fd: Int32, path: String, gzip: Bool) throws {
        self.fd = fd
        self.path = path
        self.gzip = gzip
        if gzip {
            guard
                deflateInit2_(
                    &stream, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION,
                    Int32(MemoryLayout<z_stream>.size)) == Z_OK
            else { throw RAGSegIOError(path: path, message: "cannot start zlib's deflater") }
        }
    }

    deinit { if gzip { deflateEnd(&stream) } }

    func append(_ bytes: [UInt8]) throws {
        guard gzip else {
            try bytes.withUnsafeBytes { try writeAll(fd, $0.baseAddress!, count: $0.count, path: path) }
            return
        }
        try deflate(bytes, finish: false)
    }

    /// Ends the gzip stream (nothing for a plain file).
    func finish() throws {
        if gzip { try deflate([], finish: true) }
    }

    private func deflate(_ bytes: [UInt8], finish: Bool) throws {
        try bytes.withUnsafeBufferPointer { input in
            stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress)
            stream.avail_in = UInt32(input.count)
            while true {
                let (status, produced) = out.withUnsafeMutableBufferPointer { buffer -> (Int32, Int) in
                    stream.next_out = buffer.baseAddress!
                    stream.avail_out = UInt32(buffer.count)
                    let status = CZlib.deflate(&stream, finish ? Z_FINISH : Z_NO_FLUSH)
                    return (status, buffer.count - Int(stream.avail_out))
                }
                try out.withUnsafeBytes { try writeAll(fd, $0.baseAddress!, count: produced, path: path) }
                switch status {
                case Z_STREAM_END: return
                case Z_OK, Z_BUF_ERROR:
                    // Without Z_FINISH, deflate is done with this input once it is used up and the output had room.
                    if !finish && stream.avail_in == 0 && stream.avail_out > 0 { return }
                default: throw RAGSegIOError(path: path, message: "gzip compression failed (zlib error \(status))")
                }
            }
        }
    }
}

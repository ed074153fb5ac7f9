// NIfTI-1 and NIfTI-2 single files (.nii, .nii.gz) read from a path or from bytes in memory (uploads),
// written atomically. Every problem is a RAGSegIOError naming the file; sizes are checked against limits
// and against what the file holds before any voxel buffer is allocated.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Voxels exactly as stored (host byte order, no scaling), first axis fastest.
public enum VoxelData: Sendable, Equatable {
    case uint8([UInt8]), int8([Int8]), int16([Int16]), uint16([UInt16])
    case int32([Int32]), uint32([UInt32]), float32([Float]), float64([Double])

    public var datatype: NIfTIDatatype {
        switch self {
        case .uint8: .uint8
        case .int8: .int8
        case .int16: .int16
        case .uint16: .uint16
        case .int32: .int32
        case .uint32: .uint32
        case .float32: .float32
        case .float64: .float64
        }
    }

    public var count: Int {
        switch self {
        case .uint8(let v): v.count
        case .int8(let v): v.count
        case .int16(let v): v.count
        case .uint16(let v): v.count
        case .int32(let v): v.count
        case .uint32(let v): v.count
        case .float32(let v): v.count
        case .float64(let v): v.count
        }
    }

    /// Stored values in `range` as Double (exact for every supported type).
    public func doubles(_ range: Range<Int>) -> [Double] {
        switch self {
        case .uint8(let v): v[range].map { Double($0) }
        case .int8(let v): v[range].map { Double($0) }
        case .int16(let v): v[range].map { Double($0) }
        case .uint16(let v): v[range].map { Double($0) }
        case .int32(let v): v[range].map { Double($0) }
        case .uint32(let v): v[range].map { Double($0) }
        case .float32(let v): v[range].map { Double($0) }
        case .float64(let v): Array(v[range])
        }
    }

    /// Equality by bit pattern (NaN equals the same NaN), which is what a round trip must preserve.
    public static func == (a: VoxelData, b: VoxelData) -> Bool {
        switch (a, b) {
        case (.uint8(let x), .uint8(let y)): x == y
        case (.int8(let x), .int8(let y)): x == y
        case (.int16(let x), .int16(let y)): x == y
        case (.uint16(let x), .uint16(let y)): x == y
        case (.int32(let x), .int32(let y)): x == y
        case (.uint32(let x), .uint32(let y)): x == y
        case (.float32(let x), .float32(let y)): x.map(\.bitPattern) == y.map(\.bitPattern)
        case (.float64(let x), .float64(let y)): x.map(\.bitPattern) == y.map(\.bitPattern)
        default: false
        }
    }
}

/// A NIfTI file's header and all of its voxels.
public struct NIfTIImage: Sendable, Equatable {
    public var header: NIfTIHeader
    public var voxels: VoxelData

    /// The header's datatype is set from `voxels`; its dimensions must count `voxels.count` voxels.
    public init(header: NIfTIHeader, voxels: VoxelData) {
        self.header = header
        self.header.datatype = voxels.datatype
        self.voxels = voxels
    }
}

/// Size limits applied before allocating (both must hold). The defaults admit a 512x512x2000 CT in
/// float32 and refuse headers that would need more than 4 GiB.
public struct NIfTILimits: Sendable {
    public var maxVoxels: Int
    public var maxDataBytes: Int

    public init(maxVoxels: Int = 1 << 30, maxDataBytes: Int = 1 << 32) {
        self.maxVoxels = maxVoxels
        self.maxDataBytes = maxDataBytes
    }
}

public enum NIfTI {
    /// Reads a .nii or .nii.gz file (gzip is recognised by its magic bytes, not by the name).
    public static func read(_ path: String, limits: NIfTILimits = NIfTILimits()) throws -> NIfTIImage {
        let file = try VolumeFile(path: path)
        defer { file.finish() }
        let prefix = try file.readBytes(count: min(file.size, 4096))
        if Gzip.isGzip(prefix) {
            // gzip never grows data by more than a few bytes per 16 KiB: a larger file cannot fit the limit.
            guard file.size <= limits.maxDataBytes + (1 << 20) else {
                throw RAGSegIOError(
                    path: path,
                    message: "compressed file of \(file.size) bytes exceeds the limit of \(limits.maxDataBytes) bytes")
            }
            return try read(data: prefix + file.readBytes(count: file.size - prefix.count), name: path, limits: limits)
        }
        let header = try NIfTIHeader.parse(prefix, name: path)
        let needed = try checkedDataEnd(header, available: file.size, limits: limits, name: path)
        let bytes =
            try prefix.count >= needed
            ? Array(prefix.prefix(needed)) : prefix + file.readBytes(count: needed - prefix.count)
        guard bytes.count == needed else {
            throw RAGSegIOError(path: path, message: "truncated: the file shrank while it was read")
        }
        return NIfTIImage(header: header, voxels: decode(bytes, header: header))
    }

    /// Reads NIfTI bytes (.nii or .nii.gz content); `name` identifies the source in errors.
    public static func read(data: [UInt8], name: String, limits: NIfTILimits = NIfTILimits()) throws -> NIfTIImage {
        guard Gzip.isGzip(data) else {
            let header = try NIfTIHeader.parse(data, name: name)
            let needed = try checkedDataEnd(header, available: data.count, limits: limits, name: name)
            let bytes = data.count == needed ? data : Array(data.prefix(needed))
            return NIfTIImage(header: header, voxels: decode(bytes, header: header))
        }
        let start = try Gzip.inflate(data, limit: 540, name: name)
        if start.endedEarly && start.bytes.count < 348 {
            throw RAGSegIOError(
                path: name,
                message: "truncated .nii.gz: it inflates to \(start.bytes.count) bytes, too few for a NIfTI header")
        }
        let header = try NIfTIHeader.parse(start.bytes, name: name)
        let needed = try checkedDataEnd(header, available: nil, limits: limits, name: name)
        let inflated = try Gzip.inflate(data, limit: needed, name: name)
        if inflated.bytes.count < needed {
            if inflated.bytes.count < header.voxOffset {
                throw RAGSegIOError(
                    path: name,
                    message:
                        """
                        vox_offset \(header.voxOffset) is past the end of the decompressed data \
                        (\(inflated.bytes.count) bytes)
                        """
                )
            }
            throw RAGSegIOError(
                path: name,
                message: "truncated .nii.gz: the header declares \(needed - header.voxOffset) bytes of voxel data "
                    + """
                    (\(describeShape(header.shape)) \(header.datatype.name)), the compressed stream holds \
                    \(inflated.bytes.count - header.voxOffset)
                    """
            )
        }
        return NIfTIImage(header: header, voxels: decode(inflated.bytes, header: header))
    }

    /// The file's bytes: the header (vox_offset reset to directly after it, extensions dropped) and the
    /// voxels in the header's byte order, gzip-compressed when `gzip`.
    public static func encode(_ image: NIfTIImage, gzip: Bool, name: String) throws -> [UInt8] {
        var header = image.header
        guard header.voxelCount == image.voxels.count else {
            throw RAGSegIOError(
                path: name,
                message:
                    """
                    the header's dimensions \(describeShape(header.shape)) count \(header.voxelCount) voxels, the data \
                    has \(image.voxels.count)
                    """
            )
        }
        header.datatype = image.voxels.datatype
        header.voxOffset = header.headerSize + 4
        var bytes = header.encode()
        bytes.reserveCapacity(bytes.count + image.voxels.count * header.datatype.bytesPerVoxel)
        encodeVoxels(image.voxels, littleEndian: header.littleEndian, into: &bytes)
        return gzip ? try Gzip.deflate(bytes, name: name) : bytes
    }

    /// Writes `image` atomically; a path ending in ".gz" is gzip-compressed.
    public static func write(_ image: NIfTIImage, to path: String) throws {
        try writeFileAtomically(try encode(image, gzip: path.hasSuffix(".gz"), name: path), to: path)
    }

    /// Checks limits and room, returning vox_offset + data size (the bytes the reader needs).
    /// `available` is the file size, or nil for a gzip stream (checked after inflating).
    static func checkedDataEnd(_ header: NIfTIHeader, available: Int?, limits: NIfTILimits, name: String) throws -> Int
    {
        let count = header.voxelCount
        let what = "\(describeShape(header.shape)) \(header.datatype.name)"
        guard let dataBytes = checkedProduct(count, header.datatype.bytesPerVoxel), count <= limits.maxVoxels,
            dataBytes <= limits.maxDataBytes
        else {
            throw RAGSegIOError(
                path: name,
                message: "the header declares \(what) voxels, over the limit of "
                    + "\(limits.maxVoxels) voxels and \(limits.maxDataBytes) bytes; refused before reading")
        }
        let (end, overflow) = header.voxOffset.addingReportingOverflow(dataBytes)
        guard !overflow else {
            throw RAGSegIOError(path: name, message: "vox_offset \(header.voxOffset) is out of range")
        }
        if let available {
            guard header.voxOffset <= available else {
                throw RAGSegIOError(
                    path: name,
                    message: "vox_offset \(header.voxOffset) is past the end of the file (\(available) bytes)")
            }
            guard end <= available else {
                throw RAGSegIOError(
                    path: name,
                    message: "truncated: the header declares \(dataBytes) bytes of voxel data (\(what)) "
                        + "at offset \(header.voxOffset), the file holds \(available - header.voxOffset)")
            }
        }
        return end
    }

    static func decode(_ bytes: [UInt8], header: NIfTIHeader) -> VoxelData {
        let count = header.voxelCount, little = header.littleEndian
        return bytes.withUnsafeBytes { all in
            let raw = UnsafeRawBufferPointer(rebasing: all[header.voxOffset...])
            switch header.datatype {
            case .uint8: return .uint8(Array(raw.prefix(count)))
            case .int8: return .int8(raw.prefix(count).map { Int8(bitPattern: $0) })
            case .int16: return .int16(loadIntegers(raw, count: count, littleEndian: little))
            case .uint16: return .uint16(loadIntegers(raw, count: count, littleEndian: little))
            case .int32: return .int32(loadIntegers(raw, count: count, littleEndian: little))
            case .uint32: return .uint32(loadIntegers(raw, count: count, littleEndian: little))
            case .float32:
                let bits: [UInt32] = loadIntegers(raw, count: count, littleEndian: little)
                return .float32(bits.map { Float(bitPattern: $0) })
            case .float64:
                let bits: [UInt64] = loadIntegers(raw, count: count, littleEndian: little)
                return .float64(bits.map { Double(bitPattern: $0) })
            }
        }
    }

    static func loadIntegers<T: FixedWidthInteger>(_ raw: UnsafeRawBufferPointer, count: Int, littleEndian: Bool) -> [T]
    {
        let size = MemoryLayout<T>.size
        return [T](unsafeUninitializedCapacity: count) { out, initialized in
            for i in 0..<count {
                let value = raw.loadUnaligned(fromByteOffset: i * size, as: T.self)
                out[i] = littleEndian ? T(littleEndian: value) : T(bigEndian: value)
            }
            initialized = count
        }
    }

    static func encodeVoxels(_ voxels: VoxelData, littleEndian: Bool, into bytes: inout [UInt8]) {
        func append<T: FixedWidthInteger>(_ values: [T]) {
            for v in values {
                let ordered = littleEndian ? v.littleEndian : v.bigEndian
                withUnsafeBytes(of: ordered) { bytes.append(contentsOf: $0) }
            }
        }
        switch voxels {
        case .uint8(let v): bytes.append(contentsOf: v)
        case .int8(let v): bytes.append(contentsOf: v.map { UInt8(bitPattern: $0) })
        case .int16(let v): append(v)
        case .uint16(let v): append(v)
        case .int32(let v): append(v)
        case .uint32(let v): append(v)
        case .float32(let v): append(v.map(\.bitPattern))
        case .float64(let v): append(v.map(\.bitPattern))
        }
    }
}

/// An open file read from its start in pieces (so a header can be checked before the data is read).
struct VolumeFile {
    let path: String
    let fd: Int32
    let size: Int

    init(path: String) throws {
        self.path = path
        fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw RAGSegIOError(path: path, message: "cannot open: \(lastErrnoMessage())") }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let reason = lastErrnoMessage()
            close(fd)
            throw RAGSegIOError(path: path, message: "cannot stat: \(reason)")
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw RAGSegIOError(path: path, message: "not a regular file")
        }
        size = Int(info.st_size)
    }

    func finish() { close(fd) }

    /// The next `count` bytes (fewer only if the file ends first).
    func readBytes(count: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        try bytes.withUnsafeMutableBytes { buffer in
            while done < count {
                let n = read(fd, buffer.baseAddress! + done, count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw RAGSegIOError(path: path, message: "read failed: \(lastErrnoMessage())")
                }
                if n == 0 { break }
                done += n
            }
        }
        if done < count { bytes.removeLast(count - done) }
        return bytes
    }
}

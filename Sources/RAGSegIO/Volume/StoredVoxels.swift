// Stored voxels read in place: a volume's bytes in the file's own datatype and byte order, either the
// arrays of a parsed image (uploads, tests) or a read-only memory mapping of the file, so slices are cut
// from them on demand and no whole-volume copy (Double, Float, canonical order) ever exists. A mapping's
// pages are handed back to the kernel (madvise) as soon as a pass has read them: resident memory then
// stays at what one slice or one chunk touches, however many slices the volume has.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What holds the bytes: a parsed image's arrays or a mapping (unmapped when the last user goes).
final class VoxelStorage: @unchecked Sendable {
    enum Backing {
        case memory(VoxelData)
        case mapped(UnsafeMutableRawPointer, length: Int)
    }
    let backing: Backing

    init(_ backing: Backing) { self.backing = backing }

    deinit {
        if case .mapped(let base, let length) = backing { munmap(base, length) }
    }

    func withBase<R>(_ body: (UnsafeRawPointer) throws -> R) rethrows -> R {
        switch backing {
        case .mapped(let base, _): return try body(UnsafeRawPointer(base))
        case .memory(let voxels):
            func on<T>(_ values: [T]) throws -> R {
                try values.withUnsafeBytes { try body($0.baseAddress ?? UnsafeRawPointer(bitPattern: 16)!) }
            }
            switch voxels {
            case .uint8(let v): return try on(v)
            case .int8(let v): return try on(v)
            case .int16(let v): return try on(v)
            case .uint16(let v): return try on(v)
            case .int32(let v): return try on(v)
            case .uint32(let v): return try on(v)
            case .float32(let v): return try on(v)
            case .float64(let v): return try on(v)
            }
        }
    }

    /// Lets the kernel drop the mapped pages of bytes `range` from this process (they are read again from
    /// the page cache or the file if touched later); nothing for memory. The range is widened by a megabyte
    /// each way: a read fault also maps cached neighbours (Linux's fault-around, 64 KiB by default), and
    /// those left beside every slice would otherwise add up with the number of slices.
    func release(bytes range: Range<Int>) {
        guard case .mapped(let base, let length) = backing, !range.isEmpty else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE))), margin = 1 << 20
        let lower = max(0, range.lowerBound - margin) / page * page
        let upper = min(length, (range.upperBound + margin + page - 1) / page * page)
        guard upper > lower else { return }
        _ = madvise(base + lower, upper - lower, MADV_DONTNEED)
    }
}

/// `count` voxels of one datatype starting at byte `start` of their storage, first axis fastest.
public struct StoredVoxels: Sendable {
    let storage: VoxelStorage
    let start: Int
    public let datatype: NIfTIDatatype
    /// The bytes are in the byte order opposite to the host's.
    let swapped: Bool
    public let count: Int

    init(storage: VoxelStorage, start: Int, datatype: NIfTIDatatype, swapped: Bool, count: Int) {
        self.storage = storage
        self.start = start
        self.datatype = datatype
        self.swapped = swapped
        self.count = count
    }

    /// A parsed image's voxels (host byte order), in place.
    public init(_ voxels: VoxelData) {
        self.init(
            storage: VoxelStorage(.memory(voxels)), start: 0, datatype: voxels.datatype, swapped: false,
            count: voxels.count)
    }

    /// Voxels `range` of these (e.g. one frame).
    func part(_ range: Range<Int>) -> StoredVoxels {
        precondition(range.lowerBound >= 0 && range.upperBound <= count, "voxels \(range) of \(count)")
        return StoredVoxels(
            storage: storage, start: start + range.lowerBound * datatype.bytesPerVoxel, datatype: datatype,
            swapped: swapped, count: range.count)
    }

    /// Calls `body(n, value)` for the voxels at offsets `origin + row * rowStep + column * columnStep`,
    /// rows outer, n counting from 0; every value exact as Double. Afterwards, with `release`, the pages
    /// read are handed back (a mapping's resident size stays at what one call touches).
    @inline(__always)
    func walk(
        origin: Int, rowStep: Int, columnStep: Int, rows: Int, columns: Int, release: Bool = true,
        _ body: (Int, Double) -> Void
    ) {
        guard rows > 0 && columns > 0 else { return }
        let size = datatype.bytesPerVoxel, swapped = swapped
        storage.withBase { base in
            let first = base + start
            @inline(__always)
            func run<T: FixedWidthInteger>(_: T.Type, _ convert: (T) -> Double) {
                var n = 0
                for row in 0..<rows {
                    var offset = origin + row * rowStep
                    for _ in 0..<columns {
                        let raw = first.loadUnaligned(fromByteOffset: offset * size, as: T.self)
                        body(n, convert(swapped ? raw.byteSwapped : raw))
                        offset += columnStep
                        n += 1
                    }
                }
            }
            switch datatype {
            case .uint8: run(UInt8.self) { Double($0) }
            case .int8: run(Int8.self) { Double($0) }
            case .int16: run(Int16.self) { Double($0) }
            case .uint16: run(UInt16.self) { Double($0) }
            case .int32: run(Int32.self) { Double($0) }
            case .uint32: run(UInt32.self) { Double($0) }
            case .float32: run(UInt32.self) { Double(Float(bitPattern: $0)) }
            case .float64: run(UInt64.self) { Double(bitPattern: $0) }
            }
        }
        guard release else { return }
        let corners = [
            origin, origin + (rows - 1) * rowStep, origin + (columns - 1) * columnStep,
            origin + (rows - 1) * rowStep + (columns - 1) * columnStep,
        ]
        storage.release(bytes: (start + corners.min()! * size)..<(start + (corners.max()! + 1) * size))
    }

    /// Every voxel in stored order, `chunk` voxels per call of `body(firstIndex, values)`: a pass over the
    /// whole volume that holds one chunk at a time.
    func forEachChunk(_ chunk: Int = 1 << 20, _ body: (Int, UnsafeBufferPointer<Double>) -> Void) {
        RAGSegIO.forEachChunk(
            count: count, chunk: chunk, zero: 0,
            walk: { walk(origin: $0, rowStep: 0, columnStep: 1, rows: 1, columns: $1, $2) }, body)
    }
}

/// A NIfTI file's header and its stored voxels (all frames), read in place: what `NIfTIImage` is, without
/// holding the voxels as arrays. From a file (`NIfTI.open`) or from a parsed image.
public struct VolumeVoxels: Sendable {
    public let header: NIfTIHeader
    public let stored: StoredVoxels

    public init(header: NIfTIHeader, stored: StoredVoxels) {
        precondition(header.voxelCount == stored.count, "\(stored.count) voxels for \(header.shape)")
        self.header = header
        self.stored = stored
    }

    /// `image`'s voxels in place (no copy).
    public init(_ image: NIfTIImage) {
        self.init(header: image.header, stored: StoredVoxels(image.voxels))
    }
}

// The NIfTI-1 (348-byte) and NIfTI-2 (540-byte) headers: parsed from either byte order, written back
// field for field. NIfTI-1's float32 and int16 fields are held as Double and Int, which is exact both ways.

/// The voxel types RAGSeg reads and writes (NIfTI `datatype` codes).
public enum NIfTIDatatype: Int, Sendable, CaseIterable {
    case uint8 = 2, int16 = 4, int32 = 8, float32 = 16, float64 = 64, int8 = 256, uint16 = 512, uint32 = 768

    public var bytesPerVoxel: Int {
        switch self {
        case .uint8, .int8: 1
        case .int16, .uint16: 2
        case .int32, .uint32, .float32: 4
        case .float64: 8
        }
    }

    public var isFloatingPoint: Bool { self == .float32 || self == .float64 }

    public var name: String {
        switch self {
        case .uint8: "uint8"
        case .int8: "int8"
        case .int16: "int16"
        case .uint16: "uint16"
        case .int32: "int32"
        case .uint32: "uint32"
        case .float32: "float32"
        case .float64: "float64"
        }
    }
}

/// Every header field that carries meaning (the Analyze leftovers `data_type`, `db_name`, `extents`,
/// `session_error`, `regular`, `glmax`, `glmin` are dropped and written as NIfTI asks: zero, 'r' for regular).
/// Two headers are equal when they encode to the same bytes: NaN fields (nibabel writes scl_slope NaN)
/// compare by bit pattern, and a NIfTI-1 field compares as the float32 it is stored as.
public struct NIfTIHeader: Sendable, Equatable {
    public static func == (a: NIfTIHeader, b: NIfTIHeader) -> Bool {
        a.version == b.version && a.littleEndian == b.littleEndian && a.encode() == b.encode()
    }

    /// 1 or 2.
    public var version: Int
    public var littleEndian: Bool
    /// dim[0] is the number of dimensions (1...7); dim[1...] the sizes, dim[i] for i > dim[0] ignored.
    public var dim: [Int]
    public var intentP1: Double, intentP2: Double, intentP3: Double
    public var intentCode: Int
    public var intentName: [UInt8]
    public var datatype: NIfTIDatatype
    /// pixdim[0] is qfac (the sign of the qform's third column); pixdim[1...3] voxel sizes.
    public var pixdim: [Double]
    /// Byte offset of the voxel data in the (uncompressed) file.
    public var voxOffset: Int
    public var sclSlope: Double, sclInter: Double
    public var calMax: Double, calMin: Double
    public var sliceStart: Int, sliceEnd: Int, sliceCode: Int
    public var sliceDuration: Double
    public var toffset: Double
    /// Spatial units in bits 0-2, temporal in bits 3-5.
    public var xyztUnits: Int
    public var dimInfo: Int
    public var descrip: [UInt8]
    public var auxFile: [UInt8]
    public var qformCode: Int, sformCode: Int
    public var quaternB: Double, quaternC: Double, quaternD: Double
    public var qoffsetX: Double, qoffsetY: Double, qoffsetZ: Double
    public var srowX: [Double], srowY: [Double], srowZ: [Double]

    /// A header for `datatype` voxels of `shape` (1 to 7 sizes), 1 mm voxels, no transform codes.
    public init(shape: [Int], datatype: NIfTIDatatype, version: Int = 1, littleEndian: Bool = true) {
        self.version = version
        self.littleEndian = littleEndian
        dim = [shape.count] + shape + Array(repeating: 1, count: 7 - shape.count)
        intentP1 = 0; intentP2 = 0; intentP3 = 0
        intentCode = 0
        intentName = Array(repeating: 0, count: 16)
        self.datatype = datatype
        pixdim = [1, 1, 1, 1, 1, 1, 1, 1]
        voxOffset = version == 1 ? 352 : 544
        sclSlope = 1; sclInter = 0
        calMax = 0; calMin = 0
        sliceStart = 0; sliceEnd = 0; sliceCode = 0
        sliceDuration = 0; toffset = 0
        xyztUnits = 2  // millimetres
        dimInfo = 0
        descrip = Array(repeating: 0, count: 80)
        auxFile = Array(repeating: 0, count: 24)
        qformCode = 0; sformCode = 0
        quaternB = 0; quaternC = 0; quaternD = 0
        qoffsetX = 0; qoffsetY = 0; qoffsetZ = 0
        srowX = [1, 0, 0, 0]; srowY = [0, 1, 0, 0]; srowZ = [0, 0, 1, 0]
    }

    /// Number of dimensions (dim[0]).
    public var dimensionCount: Int { dim[0] }

    /// The sizes dim[1...dim[0]].
    public var shape: [Int] { Array(dim[1...dim[0]]) }

    /// The three spatial sizes (1 for a missing dimension).
    public var spatialShape: [Int] { (1...3).map { $0 <= dim[0] ? dim[$0] : 1 } }

    /// Volumes stored after the spatial ones: the product of dim[4...dim[0]] (time points, channels, ...).
    public var frameCount: Int { dim[0] <= 3 ? 1 : dim[4...dim[0]].reduce(1, *) }

    /// Total voxel count over all dimensions (validated against overflow when parsed).
    public var voxelCount: Int { shape.reduce(1, *) }

    public var headerSize: Int { version == 1 ? 348 : 540 }

    /// Voxel sizes along the three spatial axes (absolute pixdim[1...3], as nibabel reads them).
    public var spacing: [Double] { (1...3).map { abs(pixdim[$0]) } }

    /// `descrip` as text (up to its first NUL).
    public var description: String {
        String(decoding: descrip.prefix { $0 != 0 }, as: UTF8.self)
    }

    /// Sets `descrip` from text (truncated to 79 bytes, NUL-padded).
    public mutating func setDescription(_ text: String) {
        descrip = Array(Array(text.utf8).prefix(79)) + Array(repeating: 0, count: 80 - min(79, text.utf8.count))
    }
}

// MARK: - Parsing

extension NIfTIHeader {
    /// Header size and byte order from the first four bytes, or nil if they are no NIfTI sizeof_hdr.
    static func sniff(_ bytes: [UInt8]) -> (version: Int, littleEndian: Bool)? {
        guard bytes.count >= 4 else { return nil }
        let little = Int(bytes[0]) | Int(bytes[1]) << 8 | Int(bytes[2]) << 16 | Int(bytes[3]) << 24
        let big = Int(bytes[3]) | Int(bytes[2]) << 8 | Int(bytes[1]) << 16 | Int(bytes[0]) << 24
        if little == 348 { return (1, true) }
        if big == 348 { return (1, false) }
        if little == 540 { return (2, true) }
        if big == 540 { return (2, false) }
        return nil
    }

    /// Parses a header from the start of `bytes` (at least 348 or 540 of them). Checks the magic,
    /// the dimensions, the datatype and vox_offset, not the data (the reader does that).
    static func parse(_ bytes: [UInt8], name: String) throws -> NIfTIHeader {
        guard let (version, little) = sniff(bytes) else {
            throw RAGSegIOError(
                path: name, message: "not a NIfTI file (sizeof_hdr is neither 348 nor 540 in either byte order)")
        }
        let size = version == 1 ? 348 : 540
        guard bytes.count >= size else {
            throw RAGSegIOError(
                path: name,
                message: "truncated: the NIfTI-\(version) header needs \(size) bytes, the file holds \(bytes.count)")
        }
        let r = ByteReader(bytes: bytes, littleEndian: little)
        var h = NIfTIHeader(shape: [1], datatype: .uint8, version: version, littleEndian: little)
        let code: Int
        if version == 1 {
            let magic = Array(bytes[344..<348])
            if magic == Array("ni1\0".utf8) {
                throw RAGSegIOError(
                    path: name,
                    message: "is the header of a .hdr/.img pair; only single-file NIfTI (.nii, .nii.gz) is supported")
            }
            guard magic == Array("n+1\0".utf8) else {
                throw RAGSegIOError(path: name, message: "no NIfTI-1 magic \"n+1\" (an Analyze 7.5 file?)")
            }
            h.dimInfo = Int(bytes[39])
            h.dim = (0..<8).map { Int(r.int16(40 + 2 * $0)) }
            h.intentP1 = Double(r.float32(56)); h.intentP2 = Double(r.float32(60)); h.intentP3 = Double(r.float32(64))
            h.intentCode = Int(r.int16(68))
            code = Int(r.int16(70))
            h.sliceStart = Int(r.int16(74))
            h.pixdim = (0..<8).map { Double(r.float32(76 + 4 * $0)) }
            let offset = r.float32(108)
            guard offset.isFinite, offset >= 0, offset == offset.rounded(), offset < 1e15 else {
                throw RAGSegIOError(path: name, message: "vox_offset \(offset) is not a byte offset")
            }
            h.voxOffset = Int(offset)
            h.sclSlope = Double(r.float32(112)); h.sclInter = Double(r.float32(116))
            h.sliceEnd = Int(r.int16(120))
            h.sliceCode = Int(bytes[122])
            h.xyztUnits = Int(bytes[123])
            h.calMax = Double(r.float32(124)); h.calMin = Double(r.float32(128))
            h.sliceDuration = Double(r.float32(132)); h.toffset = Double(r.float32(136))
            h.descrip = Array(bytes[148..<228]); h.auxFile = Array(bytes[228..<252])
            h.qformCode = Int(r.int16(252)); h.sformCode = Int(r.int16(254))
            h.quaternB = Double(r.float32(256)); h.quaternC = Double(r.float32(260));
            h.quaternD = Double(r.float32(264))
            h.qoffsetX = Double(r.float32(268)); h.qoffsetY = Double(r.float32(272));
            h.qoffsetZ = Double(r.float32(276))
            h.srowX = (0..<4).map { Double(r.float32(280 + 4 * $0)) }
            h.srowY = (0..<4).map { Double(r.float32(296 + 4 * $0)) }
            h.srowZ = (0..<4).map { Double(r.float32(312 + 4 * $0)) }
            h.intentName = Array(bytes[328..<344])
        } else {
            guard Array(bytes[4..<12]) == [0x6E, 0x2B, 0x32, 0x00, 0x0D, 0x0A, 0x1A, 0x0A] else {
                throw RAGSegIOError(
                    path: name, message: "no NIfTI-2 magic \"n+2\" (or a damaged one: transferred as text?)")
            }
            code = Int(r.int16(12))
            h.dim = (0..<8).map { Int(r.int64(16 + 8 * $0)) }
            h.intentP1 = r.float64(80); h.intentP2 = r.float64(88); h.intentP3 = r.float64(96)
            h.pixdim = (0..<8).map { r.float64(104 + 8 * $0) }
            let offset = r.int64(168)
            guard offset >= 0 else { throw RAGSegIOError(path: name, message: "vox_offset \(offset) is negative") }
            h.voxOffset = Int(offset)
            h.sclSlope = r.float64(176); h.sclInter = r.float64(184)
            h.calMax = r.float64(192); h.calMin = r.float64(200)
            h.sliceDuration = r.float64(208); h.toffset = r.float64(216)
            h.sliceStart = Int(r.int64(224)); h.sliceEnd = Int(r.int64(232))
            h.descrip = Array(bytes[240..<320]); h.auxFile = Array(bytes[320..<344])
            h.qformCode = Int(r.int32(344)); h.sformCode = Int(r.int32(348))
            h.quaternB = r.float64(352); h.quaternC = r.float64(360); h.quaternD = r.float64(368)
            h.qoffsetX = r.float64(376); h.qoffsetY = r.float64(384); h.qoffsetZ = r.float64(392)
            h.srowX = (0..<4).map { r.float64(400 + 8 * $0) }
            h.srowY = (0..<4).map { r.float64(432 + 8 * $0) }
            h.srowZ = (0..<4).map { r.float64(464 + 8 * $0) }
            h.sliceCode = Int(r.int32(496))
            h.xyztUnits = Int(r.int32(500))
            h.intentCode = Int(r.int32(504))
            h.intentName = Array(bytes[508..<524])
            h.dimInfo = Int(bytes[524])
        }
        guard let datatype = NIfTIDatatype(rawValue: code) else {
            throw RAGSegIOError(
                path: name,
                message: "unsupported NIfTI datatype code \(code) (supported: "
                    + NIfTIDatatype.allCases.map { "\($0.rawValue) \($0.name)" }.joined(separator: ", ") + ")")
        }
        h.datatype = datatype
        guard (1...7).contains(h.dim[0]) else {
            throw RAGSegIOError(path: name, message: "dim[0] = \(h.dim[0]) is not a dimension count in 1...7")
        }
        for i in 1...h.dim[0] where h.dim[i] < 1 {
            throw RAGSegIOError(path: name, message: "dim[\(i)] = \(h.dim[i]): every size must be at least 1")
        }
        for i in (h.dim[0] + 1)..<8 { h.dim[i] = max(h.dim[i], 1) }
        guard checkedElementCount(h.shape) != nil else {
            throw RAGSegIOError(path: name, message: "the voxel count \(describeShape(h.shape)) overflows")
        }
        guard h.voxOffset >= size else {
            throw RAGSegIOError(path: name, message: "vox_offset \(h.voxOffset) lies inside the \(size)-byte header")
        }
        return h
    }
}

// MARK: - Writing

extension NIfTIHeader {
    /// The header's bytes followed by the 4-byte "no extensions" flag and zero padding up to vox_offset.
    func encode() -> [UInt8] {
        var w = ByteWriter(count: voxOffset, littleEndian: littleEndian)
        if version == 1 {
            w.int32(0, 348)
            w.byte(38, UInt8(ascii: "r"))
            w.byte(39, UInt8(truncatingIfNeeded: dimInfo))
            for i in 0..<8 { w.int16(40 + 2 * i, dim[i]) }
            w.float32(56, intentP1); w.float32(60, intentP2); w.float32(64, intentP3)
            w.int16(68, intentCode)
            w.int16(70, datatype.rawValue)
            w.int16(72, datatype.bytesPerVoxel * 8)
            w.int16(74, sliceStart)
            for i in 0..<8 { w.float32(76 + 4 * i, pixdim[i]) }
            w.float32(108, Double(voxOffset))
            w.float32(112, sclSlope); w.float32(116, sclInter)
            w.int16(120, sliceEnd)
            w.byte(122, UInt8(truncatingIfNeeded: sliceCode))
            w.byte(123, UInt8(truncatingIfNeeded: xyztUnits))
            w.float32(124, calMax); w.float32(128, calMin)
            w.float32(132, sliceDuration); w.float32(136, toffset)
            w.copy(148, descrip, 80); w.copy(228, auxFile, 24)
            w.int16(252, qformCode); w.int16(254, sformCode)
            w.float32(256, quaternB); w.float32(260, quaternC); w.float32(264, quaternD)
            w.float32(268, qoffsetX); w.float32(272, qoffsetY); w.float32(276, qoffsetZ)
            for i in 0..<4 {
                w.float32(280 + 4 * i, srowX[i]); w.float32(296 + 4 * i, srowY[i]); w.float32(312 + 4 * i, srowZ[i])
            }
            w.copy(328, intentName, 16)
            w.copy(344, Array("n+1\0".utf8), 4)
        } else {
            w.int32(0, 540)
            w.copy(4, [0x6E, 0x2B, 0x32, 0x00, 0x0D, 0x0A, 0x1A, 0x0A], 8)
            w.int16(12, datatype.rawValue)
            w.int16(14, datatype.bytesPerVoxel * 8)
            for i in 0..<8 { w.int64(16 + 8 * i, dim[i]) }
            w.float64(80, intentP1); w.float64(88, intentP2); w.float64(96, intentP3)
            for i in 0..<8 { w.float64(104 + 8 * i, pixdim[i]) }
            w.int64(168, voxOffset)
            w.float64(176, sclSlope); w.float64(184, sclInter)
            w.float64(192, calMax); w.float64(200, calMin)
            w.float64(208, sliceDuration); w.float64(216, toffset)
            w.int64(224, sliceStart); w.int64(232, sliceEnd)
            w.copy(240, descrip, 80); w.copy(320, auxFile, 24)
            w.int32(344, qformCode); w.int32(348, sformCode)
            w.float64(352, quaternB); w.float64(360, quaternC); w.float64(368, quaternD)
            w.float64(376, qoffsetX); w.float64(384, qoffsetY); w.float64(392, qoffsetZ)
            for i in 0..<4 {
                w.float64(400 + 8 * i, srowX[i]); w.float64(432 + 8 * i, srowY[i]); w.float64(464 + 8 * i, srowZ[i])
            }
            w.int32(496, sliceCode); w.int32(500, xyztUnits); w.int32(504, intentCode)
            w.copy(508, intentName, 16)
            w.byte(524, UInt8(truncatingIfNeeded: dimInfo))
        }
        // Bytes headerSize..<headerSize+4 stay zero: the extension flag "no extensions".
        return w.bytes
    }
}

/// Fixed-offset reads in a chosen byte order (offsets are checked by the caller's size check).
struct ByteReader {
    let bytes: [UInt8]
    let littleEndian: Bool

    func uint(_ offset: Int, _ width: Int) -> UInt64 {
        var value: UInt64 = 0
        for i in 0..<width {
            let b = UInt64(bytes[offset + (littleEndian ? i : width - 1 - i)])
            value |= b << (8 * UInt64(i))
        }
        return value
    }
    func int16(_ offset: Int) -> Int16 { Int16(truncatingIfNeeded: uint(offset, 2)) }
    func int32(_ offset: Int) -> Int32 { Int32(truncatingIfNeeded: uint(offset, 4)) }
    func int64(_ offset: Int) -> Int64 { Int64(bitPattern: uint(offset, 8)) }
    func float32(_ offset: Int) -> Float { Float(bitPattern: UInt32(truncatingIfNeeded: uint(offset, 4))) }
    func float64(_ offset: Int) -> Double { Double(bitPattern: uint(offset, 8)) }
}

/// Fixed-offset writes into a zeroed buffer in a chosen byte order.
struct ByteWriter {
    var bytes: [UInt8]
    let littleEndian: Bool

    init(count: Int, littleEndian: Bool) {
        bytes = [UInt8](repeating: 0, count: count)
        self.littleEndian = littleEndian
    }

    mutating func uint(_ offset: Int, _ value: UInt64, _ width: Int) {
        for i in 0..<width {
            bytes[offset + (littleEndian ? i : width - 1 - i)] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i)))
        }
    }
    mutating func byte(_ offset: Int, _ value: UInt8) { bytes[offset] = value }
    mutating func int16(_ offset: Int, _ value: Int) { uint(offset, UInt64(UInt16(truncatingIfNeeded: value)), 2) }
    mutating func int32(_ offset: Int, _ value: Int) { uint(offset, UInt64(UInt32(truncatingIfNeeded: value)), 4) }
    mutating func int64(_ offset: Int, _ value: Int) { uint(offset, UInt64(bitPattern: Int64(value)), 8) }
    mutating func float32(_ offset: Int, _ value: Double) { uint(offset, UInt64(Float(value).bitPattern), 4) }
    mutating func float64(_ offset: Int, _ value: Double) { uint(offset, value.bitPattern, 8) }
    mutating func copy(_ offset: Int, _ value: [UInt8], _ width: Int) {
        for i in 0..<min(width, value.count) { bytes[offset + i] = value[i] }
    }
}

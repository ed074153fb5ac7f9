import Foundation
import XCTest
@testable import RAGSegIO

/// Write -> read is exact for every datatype, both byte orders, NIfTI-1 and -2, .nii and .nii.gz.
final class RoundTripTests: XCTestCase {
    /// Values covering each type's extremes (and NaN, infinities, -0 for floats), on a 5x4x3 grid.
    static func voxels(_ type: NIfTIDatatype, count: Int) -> VoxelData {
        func ints<T: FixedWidthInteger>(_: T.Type) -> [T] {
            (0..<count).map { i in
                switch i {
                case 0: T.min
                case 1: T.max
                case 2: 0
                default: T(truncatingIfNeeded: i &* 2_654_435_761)
                }
            }
        }
        switch type {
        case .uint8: return .uint8(ints(UInt8.self))
        case .int8: return .int8(ints(Int8.self))
        case .int16: return .int16(ints(Int16.self))
        case .uint16: return .uint16(ints(UInt16.self))
        case .int32: return .int32(ints(Int32.self))
        case .uint32: return .uint32(ints(UInt32.self))
        case .float32:
            let special: [Float] = [
                .nan, .infinity, -.infinity, -0.0, .leastNonzeroMagnitude, .greatestFiniteMagnitude,
            ]
            return .float32((0..<count).map { $0 < special.count ? special[$0] : Float($0) * 0.37 - 5 })
        case .float64:
            let special: [Double] = [
                .nan, .infinity, -.infinity, -0.0, .leastNonzeroMagnitude, .greatestFiniteMagnitude,
            ]
            return .float64((0..<count).map { $0 < special.count ? special[$0] : Double($0) * 0.37 - 5 })
        }
    }

    /// A header with every field set to something other than its default.
    static func header(_ type: NIfTIDatatype, version: Int, littleEndian: Bool) -> NIfTIHeader {
        var h = NIfTIHeader(shape: [5, 4, 3], datatype: type, version: version, littleEndian: littleEndian)
        h.pixdim = [-1, 0.8, 0.9, 2.5, 1.5, 1, 1, 1]
        h.sclSlope = 2; h.sclInter = -7
        h.calMin = -100; h.calMax = 300
        h.intentCode = 1002; h.intentP1 = 1.5
        h.intentName = Array("labels".utf8) + Array(repeating: 0, count: 10)
        h.sliceStart = 1; h.sliceEnd = 2; h.sliceCode = 1; h.sliceDuration = 0.25; h.toffset = 3
        h.xyztUnits = 2 | 8; h.dimInfo = 57
        h.setDescription("round trip \(type.name)")
        h.auxFile = Array("aux".utf8) + Array(repeating: 0, count: 21)
        h.quaternB = 0.1; h.quaternC = -0.2; h.quaternD = 0.3; h.qformCode = 1
        h.qoffsetX = -10.5; h.qoffsetY = 20.25; h.qoffsetZ = 3
        h.setSform(Affine(rows: [[0, -0.9, 0, 40], [-0.8, 0, 0, 50], [0, 0, 2.5, -60]]), code: 2)
        return h
    }

    func testEveryDatatypeByteOrderVersionAndCompression() throws {
        let dir = try TemporaryDirectory()
        for type in NIfTIDatatype.allCases {
            for version in [1, 2] {
                for little in [true, false] {
                    for suffix in [".nii", ".nii.gz"] {
                        let image = NIfTIImage(
                            header: Self.header(type, version: version, littleEndian: little),
                            voxels: Self.voxels(type, count: 60))
                        let name = "\(type.name)-v\(version)-\(little ? "le" : "be")\(suffix)"
                        let path = dir.path(name)
                        try NIfTI.write(image, to: path)
                        let again = try NIfTI.read(path)
                        XCTAssertEqual(again.voxels, image.voxels, name)
                        XCTAssertEqual(again.header, image.header, name)
                        XCTAssertEqual(again.header.version, version, name)
                        XCTAssertEqual(again.header.littleEndian, little, name)
                        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
                        XCTAssertEqual(bytes.starts(with: [0x1F, 0x8B]), suffix == ".nii.gz", name)
                        XCTAssertEqual(try NIfTI.read(data: bytes, name: name), again, name)
                    }
                }
            }
        }
    }

    /// The byte layout itself, not only our own reading of it: fields at their documented offsets.
    func testHeaderBytesAtTheirOffsets() throws {
        let image = NIfTIImage(
            header: Self.header(.int16, version: 1, littleEndian: false), voxels: Self.voxels(.int16, count: 60))
        let bytes = try NIfTI.encode(image, gzip: false, name: "x")
        XCTAssertEqual(bytes.count, 352 + 120)
        XCTAssertEqual(Array(bytes[0..<4]), [0, 0, 1, 0x5C])  // 348, big-endian
        XCTAssertEqual(Array(bytes[40..<48]), [0, 3, 0, 5, 0, 4, 0, 3])  // dim[0...3]
        XCTAssertEqual(Array(bytes[70..<74]), [0, 4, 0, 16])  // datatype 4, bitpix 16
        XCTAssertEqual(Array(bytes[108..<112]), [0x43, 0xB0, 0, 0])  // vox_offset 352.0f
        XCTAssertEqual(Array(bytes[344..<348]), Array("n+1\0".utf8))
        XCTAssertEqual(Array(bytes[352..<356]), [0x80, 0x00, 0x7F, 0xFF])  // Int16.min, Int16.max big-endian
        let two = try NIfTI.encode(
            NIfTIImage(
                header: Self.header(.uint8, version: 2, littleEndian: true), voxels: Self.voxels(.uint8, count: 60)),
            gzip: false, name: "x")
        XCTAssertEqual(Array(two[0..<12]), [0x1C, 0x02, 0, 0, 0x6E, 0x2B, 0x32, 0, 0x0D, 0x0A, 0x1A, 0x0A])
        XCTAssertEqual(Array(two[168..<176]), [0x20, 0x02, 0, 0, 0, 0, 0, 0])  // vox_offset 544
        XCTAssertEqual(two.count, 544 + 60)
    }

    func testConcatenatedGzipMembersReadAsOneStream() throws {
        let image = NIfTIImage(
            header: Self.header(.float32, version: 1, littleEndian: true), voxels: Self.voxels(.float32, count: 60))
        let plain = try NIfTI.encode(image, gzip: false, name: "x")
        let split = try Gzip.deflate(Array(plain[0..<400]), name: "x") + Gzip.deflate(Array(plain[400...]), name: "x")
        XCTAssertEqual(
            try NIfTI.read(data: split, name: "split.nii.gz"), try NIfTI.read(data: plain, name: "plain.nii"))
    }
}

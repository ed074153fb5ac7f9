import Foundation
import XCTest
@testable import RAGSegIO

/// Bad input: each a RAGSegIOError whose text starts with the file's name and says what is wrong.
final class BadInputTests: XCTestCase {
    private func image(
        _ type: NIfTIDatatype = .int16, shape: [Int] = [6, 5, 4], version: Int = 1, values: VoxelData? = nil
    ) -> NIfTIImage {
        let count = shape.reduce(1, *)
        return NIfTIImage(
            header: NIfTIHeader(shape: shape, datatype: type, version: version),
            voxels: values ?? RoundTripTests.voxels(type, count: count))
    }

    private func bytes(_ image: NIfTIImage, gzip: Bool = false) throws -> [UInt8] {
        try NIfTI.encode(image, gzip: gzip, name: "x")
    }

    func testTruncatedGzip() throws {
        let dir = try TemporaryDirectory()
        let full = try bytes(
            image(.float32, shape: [40, 30, 20], values: .float32((0..<24000).map { Float($0 % 977) })), gzip: true)
        let path = try dir.write(Array(full.prefix(full.count / 2)), "cut.nii.gz")
        assertIOError(
            try NIfTI.read(path), names: path,
            contains: "truncated .nii.gz: the header declares 96000 bytes of voxel data")
        // Cut inside the header.
        let tiny = try dir.write(Array(full.prefix(20)), "tiny.nii.gz")
        assertIOError(try NIfTI.read(tiny), names: tiny, contains: "truncated")
        // Corrupt compressed data: the first deflate block header (after gzip's 10-byte header) made
        // the reserved block type 3.
        var corrupt = full
        corrupt[10] = 0x07
        assertIOError(
            try NIfTI.read(data: corrupt, name: "corrupt.nii.gz"), names: "corrupt.nii.gz",
            contains: "corrupt gzip data")
    }

    func testTruncatedUncompressed() throws {
        let dir = try TemporaryDirectory()
        let full = try bytes(image())
        let path = try dir.write(Array(full.dropLast(10)), "short.nii")
        assertIOError(
            try NIfTI.read(path), names: path,
            contains:
                "truncated: the header declares 240 bytes of voxel data (6x5x4 int16) at offset 352, the file holds 230"
        )
        assertIOError(
            try NIfTI.read(data: Array(full.prefix(200)), name: "header.nii"), names: "header.nii",
            contains: "header needs 348 bytes")
    }

    /// A header declaring more voxels than the limit is refused from the header alone: the file below is
    /// 352 bytes but declares 30000^3 int16 voxels (54 TB), which must not be allocated.
    func testTooManyVoxelsRefusedBeforeAllocating() throws {
        let dir = try TemporaryDirectory()
        var header = NIfTIHeader(shape: [30000, 30000, 30000], datatype: .int16)
        header.voxOffset = 352
        let path = try dir.write(header.encode(), "huge.nii")
        assertIOError(
            try NIfTI.read(path), names: path, contains: "declares 30000x30000x30000 int16 voxels, over the limit")
        let gz = try dir.write(try Gzip.deflate(header.encode(), name: "x"), "huge.nii.gz")
        assertIOError(try NIfTI.read(gz), names: gz, contains: "over the limit")
        // A caller's tighter limit applies too.
        let small = try dir.write(try bytes(image()), "small.nii")
        assertIOError(
            try NIfTI.read(small, limits: NIfTILimits(maxVoxels: 100)), names: small,
            contains: "over the limit of 100 voxels")
        XCTAssertNoThrow(try NIfTI.read(small, limits: NIfTILimits(maxVoxels: 120, maxDataBytes: 240)))
    }

    func testVoxOffsetPastTheEnd() throws {
        var header = NIfTIHeader(shape: [2, 2, 2], datatype: .uint8)
        header.voxOffset = 100_000
        var bytes = header.encode()
        bytes = Array(bytes.prefix(352)) + [UInt8](repeating: 1, count: 8)
        assertIOError(
            try NIfTI.read(data: bytes, name: "far.nii"), names: "far.nii",
            contains: "vox_offset 100000 is past the end of the file (360 bytes)")
        assertIOError(
            try NIfTI.read(data: try Gzip.deflate(bytes, name: "x"), name: "far.nii.gz"), names: "far.nii.gz",
            contains: "vox_offset 100000 is past the end of the decompressed data")
        // Inside the header is wrong too.
        var inside = try self.bytes(image(.uint8, shape: [2, 2, 2]))
        inside.replaceSubrange(108..<112, with: [0, 0, 0x48, 0x43])  // 200.0f little-endian
        assertIOError(
            try NIfTI.read(data: inside, name: "inside.nii"), names: "inside.nii",
            contains: "lies inside the 348-byte header")
    }

    func testUnknownDatatypeAndNonNIfTI() throws {
        for code in [32, 128, 1024, 1536, 7] {
            var bytes = try self.bytes(image(.int16))
            bytes[70] = UInt8(code & 0xFF); bytes[71] = UInt8(code >> 8)
            assertIOError(
                try NIfTI.read(data: bytes, name: "odd.nii"), names: "odd.nii",
                contains: "unsupported NIfTI datatype code \(code)")
        }
        assertIOError(
            try NIfTI.read(data: Array("hello, this is not an image".utf8), name: "text.nii"), names: "text.nii",
            contains: "not a NIfTI file")
        var pair = try bytes(image())
        pair.replaceSubrange(344..<348, with: Array("ni1\0".utf8))
        assertIOError(try NIfTI.read(data: pair, name: "pair.hdr"), names: "pair.hdr", contains: ".hdr/.img pair")
        var analyze = try bytes(image())
        analyze.replaceSubrange(344..<348, with: [0, 0, 0, 0])
        assertIOError(
            try NIfTI.read(data: analyze, name: "analyze.nii"), names: "analyze.nii", contains: "no NIfTI-1 magic")
        var zeroDim = try bytes(image())
        zeroDim[42] = 0; zeroDim[43] = 0
        assertIOError(try NIfTI.read(data: zeroDim, name: "empty.nii"), names: "empty.nii", contains: "dim[1] = 0")
        assertIOError(
            try NIfTI.read("/nonexistent/volume.nii"), names: "/nonexistent/volume.nii", contains: "cannot open")
    }

    func testNonFiniteIntensitiesRefused() throws {
        var values = [Float](repeating: 1, count: 120)
        values[7] = .nan; values[50] = .infinity
        let float = image(.float32, values: .float32(values))
        assertIOError(
            try float.intensities(frame: nil, name: "nan.nii"), names: "nan.nii",
            contains: "2 voxel(s) are NaN or infinite after scaling (first at voxel (1, 1, 0))")
        // Finite stored values can overflow float32 after scaling.
        var scaled = image(.float64, values: .float64([Double](repeating: 1, count: 120)))
        scaled.header.sclSlope = 1e300
        assertIOError(
            try scaled.intensities(frame: nil, name: "big.nii"), names: "big.nii",
            contains: "120 voxel(s) are NaN or infinite")
    }

    func testAmbiguousFourDimensionalImageNeedsAChannel() throws {
        let fourD = image(.int16, shape: [4, 3, 2, 2])
        assertIOError(
            try fourD.intensities(frame: nil, name: "t.nii.gz"), names: "t.nii.gz",
            contains: "is 4-D (4x3x2x2) with 2 frames")
        let second = try fourD.intensities(frame: 1, name: "t.nii.gz")
        guard case .int16(let stored) = fourD.voxels else { return XCTFail() }
        XCTAssertEqual(second.grid.values, stored[24..<48].map(Float.init))
        // One frame in four dimensions is not ambiguous.
        XCTAssertNoThrow(try image(.int16, shape: [4, 3, 2, 1]).intensities(frame: nil, name: "one.nii"))
    }

    func testBadLabelValues() throws {
        var negative = [Int16](repeating: 1, count: 120)
        negative[9] = -1
        assertIOError(
            try image(values: .int16(negative)).labels(name: "neg.nii"), names: "neg.nii",
            contains: "label value -1.0 at voxel (3, 1, 0) is negative")
        var fraction = [Float](repeating: 2, count: 120)
        fraction[119] = 2.5
        assertIOError(
            try image(.float32, values: .float32(fraction)).labels(name: "frac.nii"), names: "frac.nii",
            contains: "label value 2.5 at voxel (5, 4, 3) is not an integer")
        var nan = [Float](repeating: 0, count: 120)
        nan[0] = .nan
        assertIOError(
            try image(.float32, values: .float32(nan)).labels(name: "nan.nii"), names: "nan.nii", contains: "is NaN")
        assertIOError(
            try image(.int32, values: .int32([Int32](repeating: 70000, count: 120))).labels(name: "big.nii"),
            names: "big.nii",
            contains: "above 65535")
        assertIOError(
            try image(.uint8, shape: [2, 2, 2, 2]).labels(name: "4d.nii"), names: "4d.nii", contains: "must be 3-D")
        // Integral floats are labels; scaling is ignored for label maps.
        var scaled = image(.float32, values: .float32([Float](repeating: 3, count: 120)))
        scaled.header.sclSlope = 10
        XCTAssertEqual(try scaled.labels(name: "ok.nii").grid.values, [UInt16](repeating: 3, count: 120))
    }

    func testLabelMapOnAnotherGrid() throws {
        let base = image()
        var header = base.header
        header.setSform(Affine(rows: [[-1, 0, 0, 10], [0, 1, 0, -20], [0, 0, 2, 5]]), code: 1)
        let volume = try NIfTIImage(header: header, voxels: base.voxels).intensities(frame: nil, name: "img.nii")
        let labelVoxels = VoxelData.uint8([UInt8](repeating: 0, count: 120))

        var shifted = header
        shifted.srowX[3] += 0.01  // 0.01 mm on a 10 mm offset: 1e-3 relative, over 1e-4
        let offGrid = try NIfTIImage(header: shifted, voxels: labelVoxels).labels(name: "lab.nii")
        assertIOError(
            try volume.checkSameGrid(as: offGrid, labelName: "lab.nii"), names: "lab.nii",
            contains: "label map affine differs from the image's by up to")

        var close = header
        close.srowX[3] += 0.0005  // 5e-5 relative: float32 noise level, accepted
        XCTAssertNoThrow(
            try volume.checkSameGrid(
                as: try NIfTIImage(header: close, voxels: labelVoxels).labels(name: "lab.nii"), labelName: "lab.nii"))

        let otherShape = try NIfTIImage(
            header: NIfTIHeader(shape: [6, 5, 3], datatype: .uint8), voxels: .uint8([UInt8](repeating: 0, count: 90))
        )
        .labels(name: "small.nii")
        assertIOError(
            try volume.checkSameGrid(as: otherShape, labelName: "small.nii"), names: "small.nii",
            contains: "label map dimensions 6x5x3 differ from the image's 6x5x4")
    }

    func testWriteFailureNamesTheFileAndLeavesNothing() throws {
        let dir = try TemporaryDirectory()
        assertIOError(
            try NIfTI.write(image(), to: dir.path("missing/sub/x.nii")), names: dir.path("missing/sub/x.nii"),
            contains: "cannot create")
        var wrong = image()
        wrong.header.dim[1] = 7
        assertIOError(
            try NIfTI.write(wrong, to: dir.path("bad.nii")), names: dir.path("bad.nii"),
            contains: "count 140 voxels, the data has 120")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.url.path), [])
    }
}

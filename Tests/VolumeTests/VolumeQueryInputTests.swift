import Foundation
import XCTest
@testable import RAGSegIO

/// What volume queries take from a header and from raw upload bytes: voxel sizes and volumes in mm and mL
/// (worked out by hand), NIfTI recognised by its magic numbers, and slice images as 8-bit gray PNG images.
final class VolumeQueryInputTests: XCTestCase {
    func testVoxelSizeAndVolumeComeFromTheAffineInMillimetres() {
        var header = NIfTIHeader(shape: [4, 5, 6], datatype: .int16)
        // A rotation about z by 90 degrees with voxel sizes 0.5, 2, 3 mm: sizes are column lengths.
        header.setSform(Affine(rows: [[0, -2, 0, 10], [0.5, 0, 0, -4], [0, 0, 3, 7]]), code: 2)
        XCTAssertEqual(header.voxelSizeMillimetres, [0.5, 2, 3])
        XCTAssertEqual(header.voxelVolumeMillilitres, 0.003, accuracy: 1e-15)
        // A sheared grid: the parallelepiped's volume (|det| = 1 * 1 * 2 mm³), not the product of the sizes.
        header.setSform(Affine(rows: [[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 2, 0]]), code: 1)
        XCTAssertEqual(header.voxelVolumeMillilitres, 0.002, accuracy: 1e-15)
        // Spatial unit metres (xyzt_units & 7 = 1): 1 x 1 x 2 m³ voxels are 2e9 mm³ = 2e6 mL.
        header.xyztUnits = 1 | 8
        XCTAssertEqual(header.voxelVolumeMillilitres, 2e6, accuracy: 1e-6)
        XCTAssertEqual(header.voxelSizeMillimetres[2], 2000, accuracy: 1e-9)
        header.xyztUnits = 3  // micrometres
        XCTAssertEqual(header.voxelSizeMillimetres[1], 0.001 * 2.0.squareRoot(), accuracy: 1e-15)
    }

    func testNIfTIIsRecognisedByItsMagicNumbers() throws {
        let image = NIfTIImage(header: NIfTIHeader(shape: [2, 3, 4], datatype: .uint8), voxels: .uint8(Array(0..<24)))
        let plain = try NIfTI.encode(image, gzip: false, name: "x"), gz = try NIfTI.encode(image, gzip: true, name: "x")
        XCTAssertTrue(NIfTI.looksLikeNIfTI(plain))
        XCTAssertTrue(NIfTI.looksLikeNIfTI(gz))
        XCTAssertTrue(NIfTI.isGzip(gz))
        XCTAssertFalse(NIfTI.isGzip(plain))
        XCTAssertEqual(try NIfTI.header(data: gz, name: "x").shape, [2, 3, 4])
        // A PNG, a gzip of something else, a header without its magic: not NIfTI.
        XCTAssertFalse(
            NIfTI.looksLikeNIfTI([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + Array(repeating: 0, count: 400)))
        XCTAssertFalse(NIfTI.looksLikeNIfTI(try Gzip.deflate(Array(repeating: 7, count: 600), name: "x")))
        var noMagic = plain
        noMagic[344] = 0x41
        XCTAssertFalse(NIfTI.looksLikeNIfTI(noMagic))
        XCTAssertFalse(NIfTI.looksLikeNIfTI(Array(plain.prefix(100))))
    }

    func testSliceImagesAreEightBitGrayImagesOfTheWindowedSlice() throws {
        // 2 x 2 x 1 voxels stored RAS (identity affine): the axial display shows anterior up, right on the left.
        var header = NIfTIHeader(shape: [2, 2, 1], datatype: .float32)
        header.setSform(Affine.identity, code: 1)
        let volume = Volume(grid: VoxelGrid<Float>(shape: [2, 2, 1], values: [-160, 240, 40, 1000]), header: header)
        let slices = try VolumeSliceImages(
            volume, axis: .axial, mapping: .window(CTWindow(width: 400, level: 40)), name: "v")
        XCTAssertEqual(slices.count, 1)
        // Rows: y = 1 (anterior) then y = 0; columns: x = 1 (right) then x = 0. Window -160...240.
        XCTAssertEqual(slices.bytes(0), [255, 128, 255, 0])
        let image = slices.image(0)
        XCTAssertEqual([image.width, image.height, image.channels, image.bitDepth], [2, 2, 1, 8])
        XCTAssertEqual(image.pixels, [255, 128, 255, 0])
        XCTAssertEqual(slices.spacing, [1, 1, 1])
    }
}

import Foundation
import XCTest
@testable import RAGSegIO

/// Real NIfTI files written by other software (nibabel's test data, libnifti's reference image) against
/// what nibabel reads from them (tools/make_volume_fixtures.py, which also checks nifti_tool agrees).
/// Tolerances: header fields, voxel values and the sform exact; qform and canonical affines 1e-9 (the
/// quaternion arithmetic is the same formula, but Double rounding may differ in the last bits).
final class RealFileTests: XCTestCase {
    static let committed = [
        "anatomical.nii", "example_nifti2.nii.gz", "reoriented_anat_moved.nii",
        "ATestReferenceImageForReadingAndWriting.nii.gz",
    ]

    private func check(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let expected = try XCTUnwrap(try expectedFiles()[name], "no expected values for \(name)")
        let path = fixture(name)
        let image = try NIfTI.read(path)
        let h = image.header
        XCTAssertEqual(h.version, expected.version, "\(name) version", file: file, line: line)
        XCTAssertEqual(h.littleEndian, expected.little_endian, "\(name) byte order", file: file, line: line)
        XCTAssertEqual(h.dim, expected.dim, "\(name) dim", file: file, line: line)
        XCTAssertEqual(h.datatype.rawValue, expected.datatype, "\(name) datatype", file: file, line: line)
        XCTAssertEqual(h.pixdim, expected.pixdim, "\(name) pixdim", file: file, line: line)
        XCTAssertEqual(h.voxOffset, expected.vox_offset, "\(name) vox_offset", file: file, line: line)
        XCTAssertEqual(
            h.sclSlope.bitPattern == expected.scl_slope.bitPattern || (h.sclSlope.isNaN && expected.scl_slope.isNaN),
            true,
            "\(name) scl_slope \(h.sclSlope) vs \(expected.scl_slope)", file: file, line: line)
        XCTAssertEqual(
            [h.qformCode, h.sformCode], [expected.qform_code, expected.sform_code], "\(name) codes", file: file,
            line: line)
        XCTAssertEqual(
            [h.quaternB, h.quaternC, h.quaternD], expected.quatern, "\(name) quaternion", file: file, line: line)
        XCTAssertEqual(
            [h.qoffsetX, h.qoffsetY, h.qoffsetZ], expected.qoffset, "\(name) qoffset", file: file, line: line)
        XCTAssertEqual([h.srowX, h.srowY, h.srowZ], expected.srow, "\(name) srow", file: file, line: line)
        XCTAssertEqual(h.xyztUnits, expected.xyzt_units, "\(name) units", file: file, line: line)
        XCTAssertEqual(h.intentCode, expected.intent_code, "\(name) intent", file: file, line: line)
        // Raw bytes without trailing NULs, as numpy gives them (example_nifti2 has a NUL inside its text).
        var descrip = h.descrip
        while descrip.last == 0 { descrip.removeLast() }
        XCTAssertEqual(
            descrip, expected.descrip.unicodeScalars.map { UInt8($0.value) }, "\(name) descrip", file: file, line: line)
        XCTAssertEqual(h.frameCount, expected.frames, "\(name) frames", file: file, line: line)

        assertAffine(h.affine, expected.affine, tolerance: 1e-9, "\(name) affine", file: file, line: line)
        assertAffine(h.qformAffine, expected.qform_affine, tolerance: 1e-9, "\(name) qform", file: file, line: line)
        assertAffine(h.sformAffine, expected.sform_affine, tolerance: 0, "\(name) sform", file: file, line: line)

        let rawSum = image.voxels.doubles(0..<image.voxels.count).reduce(0, +)
        // numpy sums pairwise, we sum in order: equal to 1e-12 relative (exactly, for integer data).
        XCTAssertEqual(
            rawSum, expected.raw_sum, accuracy: 1e-12 * max(1, abs(expected.raw_sum)), "\(name) sum of stored values",
            file: file, line: line)
        let spatial = h.spatialShape.reduce(1, *)
        for values in expected.frame_values {
            let volume = try image.intensities(frame: values.frame, name: path)
            XCTAssertEqual(volume.grid.shape, Array(expected.dim[1...3]), file: file, line: line)
            XCTAssertEqual(
                fnv1a64(volume.grid.values), values.float32_fnv1a64,
                "\(name) frame \(values.frame): scaled voxels differ from nibabel's", file: file, line: line)
            XCTAssertEqual(
                expected.samples_at.map { volume.grid.values[$0] }, values.samples,
                "\(name) frame \(values.frame) samples", file: file, line: line)
            let stored = image.voxels.doubles(values.frame * spatial..<(values.frame + 1) * spatial)
            XCTAssertEqual(
                expected.samples_at.map { stored[$0] }, values.raw_samples,
                "\(name) frame \(values.frame) stored samples", file: file, line: line)
            XCTAssertEqual(volume.grid.values.min(), values.min, file: file, line: line)
            XCTAssertEqual(volume.grid.values.max(), values.max, file: file, line: line)
        }

        // Canonical order: the same permutation and flips as nibabel's io_orientation, the same voxels
        // as its as_closest_canonical, the same affine.
        let first = try image.intensities(frame: 0, name: path)
        let reorientation = try CanonicalReorientation(first, name: path)
        let ornt = expected.canonical.ornt
        XCTAssertEqual(
            reorientation.orientation.worldAxis, ornt.map { Int($0[0]) }, "\(name) orientation axes", file: file,
            line: line)
        XCTAssertEqual(
            reorientation.orientation.reversed, ornt.map { $0[1] < 0 }, "\(name) orientation flips", file: file,
            line: line)
        XCTAssertEqual(reorientation.orientation.codes, expected.axcodes, file: file, line: line)
        XCTAssertEqual(reorientation.canonicalShape, expected.canonical.shape, file: file, line: line)
        let canonical = reorientation.toCanonical(first.grid)
        XCTAssertEqual(
            fnv1a64(canonical.values), expected.canonical.frame0_float32_fnv1a64, "\(name) canonical voxels",
            file: file, line: line)
        assertAffine(
            reorientation.canonicalAffine(first.affine), expected.canonical.affine, tolerance: 1e-9,
            "\(name) canonical affine",
            file: file, line: line)
        XCTAssertEqual(
            reorientation.fromCanonical(canonical), first.grid, "\(name): canonical order not undone exactly",
            file: file, line: line)

        // From memory (an upload) exactly as from the file.
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        XCTAssertEqual(try NIfTI.read(data: bytes, name: "upload"), image, file: file, line: line)
    }

    func testAnatomicalBigEndianInt16() throws { try check("anatomical.nii") }
    func testExampleNIfTI2() throws { try check("example_nifti2.nii.gz") }
    func testReorientedAnatMovedBigEndianFloat32() throws { try check("reoriented_anat_moved.nii") }
    func testLibniftiReferenceFiveDimensionalScaledInt32() throws {
        try check("ATestReferenceImageForReadingAndWriting.nii.gz")
    }

    func testExample4D() throws {
        guard FileManager.default.fileExists(atPath: fixture("example4d.nii.gz")) else {
            throw XCTSkip(
                """
                example4d.nii.gz is not committed (346 KB); `python3 tools/make_volume_fixtures.py --with-example4d` \
                fetches it
                """
            )
        }
        try check("example4d.nii.gz")
    }

    /// The reference image's facts as libnifti documents them: big-endian int32, 5-D, slope 0.25,
    /// intercept 128, qfac -1, a qform that differs from the sform (which wins, by the geometry rule).
    func testLibniftiReferenceHeaderFacts() throws {
        let h = try NIfTI.read(fixture("ATestReferenceImageForReadingAndWriting.nii.gz")).header
        XCTAssertFalse(h.littleEndian)
        XCTAssertEqual(h.datatype, .int32)
        XCTAssertEqual(h.shape, [23, 17, 11, 7, 3])
        XCTAssertEqual([h.sclSlope, h.sclInter], [0.25, 128])
        XCTAssertEqual(h.pixdim[0], -1)
        XCTAssertEqual(h.affineSource, "sform")
        XCTAssertGreaterThan(h.qformAffine.maxDifference(h.sformAffine), 0.1)
        XCTAssertEqual(h.affine, h.sformAffine)
        // 4-D and more: a frame must be chosen; frame 7 * 3 - 1 is the last one.
        assertIOError(
            try NIfTI.read(fixture("ATestReferenceImageForReadingAndWriting.nii.gz")).intensities(
                frame: nil, name: "ATest.nii.gz"),
            names: "ATest.nii.gz", contains: "21 frames")
        XCTAssertNoThrow(
            try NIfTI.read(fixture("ATestReferenceImageForReadingAndWriting.nii.gz")).intensities(frame: 20, name: "x"))
        assertIOError(
            try NIfTI.read(fixture("ATestReferenceImageForReadingAndWriting.nii.gz")).intensities(
                frame: 21, name: "ATest.nii.gz"),
            names: "ATest.nii.gz", contains: "frame 21 does not exist")
    }

    /// Read -> write -> read keeps header and voxels exactly (.nii and .nii.gz; the file's own version and byte order).
    func testRealFilesRoundTripExactly() throws {
        let dir = try TemporaryDirectory()
        for name in Self.committed {
            let image = try NIfTI.read(fixture(name))
            for suffix in [".nii", ".nii.gz"] {
                let path = dir.path("copy-\(name)\(suffix)")
                try NIfTI.write(image, to: path)
                let again = try NIfTI.read(path)
                XCTAssertEqual(again.voxels, image.voxels, "\(name)\(suffix) voxels")
                var expectedHeader = image.header
                expectedHeader.voxOffset = expectedHeader.headerSize + 4
                XCTAssertEqual(again.header, expectedHeader, "\(name)\(suffix) header")
                XCTAssertEqual(again.header.affine, image.header.affine)
            }
        }
    }

    /// A label map written for a real image reopens on exactly the image's grid.
    func testLabelMapsForRealImagesKeepTheirGeometry() throws {
        let dir = try TemporaryDirectory()
        for name in ["ATestReferenceImageForReadingAndWriting.nii.gz", "anatomical.nii"] {
            let image = try NIfTI.read(fixture(name))
            let volume = try image.intensities(frame: 0, name: name)
            let threshold = volume.grid.values.sorted()[volume.grid.values.count / 2]
            let labels = volume.grid.values.map { UInt16($0 > threshold ? 1 : 0) }
            for (suffix, wide) in [(".nii.gz", false), (".nii", true)] {
                let values = wide ? labels.map { $0 * 300 } : labels
                let map = NIfTIImage.labelMap(VoxelGrid(shape: volume.grid.shape, values: values), like: image.header)
                let path = dir.path("labels-\(name)\(suffix)")
                try NIfTI.write(map, to: path)
                let reread = try NIfTI.read(path)
                let h = reread.header, source = image.header
                XCTAssertEqual(h.datatype, wide ? .uint16 : .uint8, name)
                XCTAssertEqual(h.shape, Array(source.shape.prefix(3)), name)
                XCTAssertEqual(h.pixdim, source.pixdim, name)
                XCTAssertEqual([h.qformCode, h.sformCode], [source.qformCode, source.sformCode], name)
                XCTAssertEqual(
                    [h.quaternB, h.quaternC, h.quaternD, h.qoffsetX, h.qoffsetY, h.qoffsetZ],
                    [
                        source.quaternB, source.quaternC, source.quaternD, source.qoffsetX, source.qoffsetY,
                        source.qoffsetZ,
                    ], name)
                XCTAssertEqual([h.srowX, h.srowY, h.srowZ], [source.srowX, source.srowY, source.srowZ], name)
                XCTAssertEqual(h.xyztUnits, source.xyztUnits, name)
                XCTAssertEqual(
                    [h.dimInfo, h.sliceCode, h.sliceStart, h.sliceEnd],
                    [source.dimInfo, source.sliceCode, source.sliceStart, source.sliceEnd], name)
                XCTAssertEqual(h.littleEndian, source.littleEndian, name)
                XCTAssertEqual([h.sclSlope, h.sclInter], [1, 0], name)
                XCTAssertEqual(h.affine, source.affine, name)
                XCTAssertEqual(h.qformAffine, source.qformAffine, name)
                let back = try reread.labels(name: path)
                XCTAssertEqual(back.grid.values, values, name)
                XCTAssertNoThrow(try volume.checkSameGrid(as: back, labelName: path))
            }
        }
    }
}

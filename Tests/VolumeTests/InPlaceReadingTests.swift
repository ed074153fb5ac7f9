import Foundation
import XCTest
@testable import RAGSegIO

/// Volumes read in place (NIfTI.open, slices cut from the stored voxels, percentiles by radix select,
/// label volumes written from a mapped buffer) give exactly what reading the whole file gives.
final class InPlaceReadingTests: XCTestCase {
    /// Every real fixture (little- and big-endian, int16, float32, scaled int32, NIfTI-2, gzip) opened in
    /// place gives the intensities `NIfTI.read` gives (which RealFileTests pins to nibabel), bit for bit.
    func testOpenGivesTheIntensitiesOfRead() throws {
        for name in [
            "anatomical.nii", "reoriented_anat_moved.nii", "ATestReferenceImageForReadingAndWriting.nii.gz",
            "example_nifti2.nii.gz",
        ] {
            let path = fixture(name)
            let read = try NIfTI.read(path)
            let opened = try NIfTI.open(path)
            XCTAssertEqual(opened.header, read.header, name)
            for frame in [0, read.header.frameCount - 1] {
                let expected = try read.intensities(frame: frame, name: name)
                let actual = try opened.intensities(frame: frame, name: name).volume()
                XCTAssertEqual(actual.grid.shape, expected.grid.shape, name)
                XCTAssertEqual(
                    actual.grid.values.map(\.bitPattern), expected.grid.values.map(\.bitPattern),
                    "\(name) frame \(frame)")
            }
        }
    }

    /// numpy.percentile of the nonzero voxels (float64, computed from the raw file bytes with numpy 2.4:
    /// stored * scl_slope + scl_inter, rounded to float32, zeros dropped) equals the radix-select bounds;
    /// the select equals today's sort-based `bounds([Float])` bit for bit.
    func testPercentileBoundsOfRealVolumesAreNumpys() throws {
        let expected: [(String, Double, Double)] = [
            ("anatomical.nii", 751.44, 13014.799999999974),
            ("reoriented_anat_moved.nii", 1553.3782275390627, 12696.526235351559),
        ]
        for (name, lower, upper) in expected {
            let voxels = try NIfTI.open(fixture(name)).intensities(frame: nil, name: name)
            let bounds = IntensityMapping.mrDefault.bounds(voxels)
            XCTAssertEqual(bounds.lower, lower, accuracy: abs(lower) * 1e-12, name)
            XCTAssertEqual(bounds.upper, upper, accuracy: abs(upper) * 1e-12, name)
            let sorted = IntensityMapping.mrDefault.bounds(voxels.volume().grid.values)
            XCTAssertEqual(bounds.lower.bitPattern, sorted.lower.bitPattern, name)
            XCTAssertEqual(bounds.upper.bitPattern, sorted.upper.bitPattern, name)
        }
    }

    /// The radix select against sorting, on volumes built to stress it: negatives, both zeros, duplicates,
    /// subnormals, values sharing their high 16 bits, one nonzero voxel, none.
    func testRadixSelectEqualsSortingBitForBit() {
        var rng = SystemRandomNumberGenerator()
        let special: [Float] = [0, -0.0, 1, -1, .leastNonzeroMagnitude, -.leastNonzeroMagnitude, 1e30, -1e30, 1.0001]
        var volumes: [[Float]] = [[], [0, -0.0], [5], [0, 0, -2, 0]]
        for n in [2, 3, 17, 1000, 70_000] {
            volumes.append((0..<n).map { _ in Float.random(in: -1000...1000, using: &rng) })
            volumes.append((0..<n).map { _ in special.randomElement(using: &rng)! })
            // Values that differ only in their low 16 bits (one high bin).
            volumes.append((0..<n).map { _ in Float(bitPattern: 0x4120_0000 | UInt32.random(in: 0..<8, using: &rng)) })
            volumes.append((0..<n).map { _ in Float(Int.random(in: -3...3, using: &rng)) })
        }
        let mappings: [IntensityMapping] = [
            .mrDefault, .percentile(lower: 0, upper: 100), .percentile(lower: 37.3, upper: 62.7),
            .percentile(lower: 50, upper: 50),
        ]
        for values in volumes {
            var header = NIfTIHeader(shape: [values.count, 1, 1], datatype: .float32)
            header.setSform(Affine.identity, code: 1)
            let voxels = IntensityVoxels(
                Volume(grid: VoxelGrid(shape: [values.count, 1, 1], values: values), header: header))
            for mapping in mappings {
                let expected = mapping.bounds(values), actual = mapping.bounds(voxels)
                XCTAssertEqual(
                    [actual.lower.bitPattern, actual.upper.bitPattern],
                    [expected.lower.bitPattern, expected.upper.bitPattern], "\(mapping) of \(values.prefix(8))")
            }
        }
    }

    /// A RAS-stored int16 volume with distinct values, 1.5 x 1.5 x 3 mm.
    private func rasVolume() -> (header: NIfTIHeader, values: [Int16]) {
        let shape = [7, 5, 4]
        var header = NIfTIHeader(shape: shape, datatype: .int16)
        header.setSform(Affine(rows: [[1.5, 0, 0, -20], [0, 1.5, 0, 30], [0, 0, 3, -12]]), code: 1)
        return (header, (0..<140).map { Int16(($0 * 37) % 140) * 3 - 200 })
    }

    /// The RAS volume's display slice, by the documented convention and nothing else: axial slice z shows
    /// rows y descending, columns x descending; coronal slice y rows z descending, columns x descending;
    /// sagittal slice x rows z descending, columns y descending.
    private func displaySlice(_ values: [Int16], shape: [Int], axis: SliceAxis, index s: Int) -> [Int16] {
        let at = { (x: Int, y: Int, z: Int) in values[x + shape[0] * (y + shape[1] * z)] }
        switch axis {
        case .axial:
            return (0..<shape[1]).reversed().flatMap { y in (0..<shape[0]).reversed().map { x in at(x, y, s) } }
        case .coronal:
            return (0..<shape[2]).reversed().flatMap { z in (0..<shape[0]).reversed().map { x in at(x, s, z) } }
        case .sagittal:
            return (0..<shape[2]).reversed().flatMap { z in (0..<shape[1]).reversed().map { y in at(s, y, z) } }
        }
    }

    /// Stored with axes permuted and flipped (new axis a is old axis `order[a]`, reversed when `flips[a]`),
    /// the affine keeping every voxel's world position; built here independently of the code under test.
    private func restored(
        _ values: [Int16], header: NIfTIHeader, order: [Int], flips: [Bool], littleEndian: Bool, version: Int
    ) -> NIfTIImage {
        let old = header.spatialShape
        let shape = order.map { old[$0] }
        var out: [Int16] = []
        for k in 0..<shape[2] {
            for j in 0..<shape[1] {
                for i in 0..<shape[0] {
                    var index = [0, 0, 0]
                    for (axis, n) in [i, j, k].enumerated() {
                        index[order[axis]] = flips[axis] ? old[order[axis]] - 1 - n : n
                    }
                    out.append(values[index[0] + old[0] * (index[1] + old[1] * index[2])])
                }
            }
        }
        let a = header.affine
        var start = [0.0, 0.0, 0.0]
        for axis in 0..<3 where flips[axis] { start[order[axis]] = Double(old[order[axis]] - 1) }
        let t = a.apply(start)
        let rows = (0..<3).map { r in (0..<3).map { c in a[r, order[c]] * (flips[c] ? -1 : 1) } + [t[r]] }
        var copy = NIfTIHeader(shape: shape, datatype: .int16, version: version, littleEndian: littleEndian)
        copy.setSform(Affine(rows: rows), code: 1)
        return NIfTIImage(header: copy, voxels: .int16(out))
    }

    /// Every storage order (6 permutations x 8 flip sets), written as .nii and .nii.gz in both byte orders
    /// and both NIfTI versions and opened in place, gives the RAS volume's slices; a label volume filled
    /// from those slices lands on the copy's own voxels, and its file is byte for byte `NIfTI.write`'s.
    func testEveryStorageOrderOpenedInPlaceGivesIdenticalSlicesAndLabelFiles() throws {
        let dir = try TemporaryDirectory()
        let (base, values) = rasVolume()
        let shape = base.spatialShape
        let window = IntensityMapping.window(CTWindow(width: 300, level: -20))
        let permutations = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]]
        var variant = 0
        for order in permutations {
            for m in 0..<8 {
                let flips = [m & 1 != 0, m & 2 != 0, m & 4 != 0]
                variant += 1
                let copy = restored(
                    values, header: base, order: order, flips: flips, littleEndian: variant % 2 == 0,
                    version: variant % 3 == 0 ? 2 : 1)
                let path = dir.path("copy\(variant)" + (variant % 4 < 2 ? ".nii.gz" : ".nii"))
                try NIfTI.write(copy, to: path)
                let opened = try NIfTI.open(path).intensities(frame: nil, name: path)
                for axis in SliceAxis.allCases {
                    let what = "\(axis) order \(order) flips \(flips)"
                    let images = try VolumeSliceImages(opened, axis: axis, mapping: window, name: path)
                    let count = shape[axis.normal]
                    XCTAssertEqual(images.count, count, what)
                    let output = try LabelVolumeBuffer(like: copy.header, maxLabel: 300, name: path)
                    for s in 0..<count {
                        let expected = displaySlice(values, shape: shape, axis: axis, index: s)
                        XCTAssertEqual(images.intensities(s), expected.map(Float.init), "\(what) slice \(s)")
                        XCTAssertEqual(
                            images.bytes(s), eightBit(expected.map(Float.init), lower: -170, upper: 130), what)
                        // A "segmentation" from what the models see: label 300 above 0 HU, 2 above -100.
                        output.put(
                            expected.map { $0 > 0 ? 300 : $0 > -100 ? 2 : 0 }, index: s, layout: images.layout)
                    }
                    guard case .int16(let stored) = copy.voxels else { return XCTFail() }
                    let labels = stored.map { UInt16($0 > 0 ? 300 : $0 > -100 ? 2 : 0) }
                    XCTAssertEqual(output.grid().values, labels, "\(what): labels not on their voxels")
                    if axis == .coronal {
                        for name in ["labels.nii.gz", "labels.nii"] {
                            try output.write(to: dir.path(name))
                            XCTAssertEqual(
                                try Data(contentsOf: dir.url.appendingPathComponent(name)),
                                Data(
                                    try NIfTI.encode(
                                        NIfTIImage.labelMap(
                                            VoxelGrid(shape: copy.header.spatialShape, values: labels),
                                            like: copy.header), gzip: name.hasSuffix(".gz"), name: name)),
                                "\(what): \(name) differs from NIfTI.write's")
                        }
                    }
                }
            }
        }
    }

    /// Label volumes that never pass 255 are written as uint8 even from a 16-bit buffer, as labelMap does.
    func testNarrowLabelsFromAWideBufferAreWrittenAsUInt8() throws {
        let dir = try TemporaryDirectory()
        let (base, _) = rasVolume()
        let layout = SliceLayout(
            reorientation: CanonicalReorientation(
                orientation: try AxisOrientation.closest(to: base.affine, name: "v"), sourceShape: base.spatialShape),
            axis: .axial)
        let output = try LabelVolumeBuffer(like: base, maxLabel: 700, name: "v")
        output.put([UInt16](repeating: 7, count: layout.width * layout.height), index: 1, layout: layout)
        let path = dir.path("narrow.nii.gz")
        try output.write(to: path)
        let back = try NIfTI.read(path)
        XCTAssertEqual(back.header.datatype, .uint8)
        XCTAssertEqual(try back.labels(name: path).grid, output.grid())
        XCTAssertEqual(output.grid().values.filter { $0 == 7 }.count, 35)
    }

    /// Bad files give the same errors opened in place as read whole.
    func testOpenRefusesBadFilesWithReadsMessages() throws {
        let dir = try TemporaryDirectory()
        let image = NIfTIImage(
            header: NIfTIHeader(shape: [40, 30, 20], datatype: .float32),
            voxels: .float32((0..<24000).map { Float($0 % 977) }))
        let gz = try NIfTI.encode(image, gzip: true, name: "x"), plain = try NIfTI.encode(image, gzip: false, name: "x")
        var corrupt = gz
        corrupt[10] = 0x07
        var farOffset = plain
        farOffset.replaceSubrange(108..<112, with: withUnsafeBytes(of: Float(1e6).bitPattern.littleEndian, Array.init))
        let files = [
            ("cut.nii.gz", Array(gz.prefix(gz.count / 2))), ("tiny.nii.gz", Array(gz.prefix(20))),
            ("corrupt.nii.gz", corrupt), ("short.nii", Array(plain.dropLast(10))),
            ("header.nii", Array(plain.prefix(200))),
            ("far.nii", farOffset), ("header-only.nii.gz", try Gzip.deflate(Array(plain.prefix(352)), name: "x")),
        ]
        for (name, bytes) in files {
            let path = try dir.write(bytes, name)
            var readError = "", openError = ""
            do { _ = try NIfTI.read(path) } catch { readError = "\(error)" }
            do { _ = try NIfTI.open(path) } catch { openError = "\(error)" }
            XCTAssertFalse(readError.isEmpty, name)
            XCTAssertEqual(openError, readError, name)
        }
        // A NaN voxel: the same count and first voxel.
        var nan = image
        nan.voxels = .float32((0..<24000).map { $0 == 4321 || $0 == 9000 ? .nan : 1 })
        let path = dir.path("nan.nii.gz")
        try NIfTI.write(nan, to: path)
        assertIOError(
            try NIfTI.open(path).intensities(frame: nil, name: path), names: path,
            contains: "2 voxel(s) are NaN or infinite after scaling (first at voxel (1, 18, 3))")
    }

    /// Without usable temporary space, a .nii.gz cannot be opened and no label volume made: an error naming
    /// the volume and the folder, of its own type (not the input's fault); a plain .nii needs none.
    func testMissingTemporarySpaceIsAScratchSpaceError() throws {
        let dir = try TemporaryDirectory()
        let image = NIfTIImage(header: NIfTIHeader(shape: [4, 3, 2], datatype: .int16), voxels: .int16(Array(0..<24)))
        let gz = dir.path("v.nii.gz"), plain = dir.path("v.nii")
        try NIfTI.write(image, to: gz)
        try NIfTI.write(image, to: plain)
        let saved = ProcessInfo.processInfo.environment["TMPDIR"]
        setenv("TMPDIR", dir.path("missing"), 1)
        defer {
            if let saved { setenv("TMPDIR", saved, 1) } else { unsetenv("TMPDIR") }
        }
        for attempt in [
            { _ = try NIfTI.open(gz) }, { _ = try LabelVolumeBuffer(like: image.header, maxLabel: 1, name: gz) },
        ] {
            XCTAssertThrowsError(try attempt()) { error in
                XCTAssertTrue(error is ScratchSpaceError, "\(error)")
                XCTAssertTrue("\(error)".hasPrefix(gz + ": cannot "), "\(error)")
                XCTAssertTrue("\(error)".contains(dir.path("missing")), "\(error)")
            }
        }
        XCTAssertEqual(
            try NIfTI.open(plain).intensities(frame: nil, name: plain).volume().grid.values, (0..<24).map(Float.init))
    }
}

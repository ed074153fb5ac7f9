import Foundation
import XCTest
import Evaluation
import RAGSegIO
import RAGSegTestSupport
import SAM2
import SupportBank
@testable import RAGSegPipeline

/// Volumes segmented slice by slice on the tiny fixture models, over a bank of slice cases from three
/// synthetic volumes (case 3 is held out): geometry kept, storage order irrelevant, slice ranges, settings,
/// and leave-one-out by volume.
final class VolumeSegmentationTests: XCTestCase {
    var directory: URL!
    var sources: [CaseSource] = []
    var retrieval: DINOv2RetrievalEncoder!
    var support: SAM2SupportEncoder!
    var bank: SupportBank!
    var segmenter: RetrievalSegmenter!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("ragseg-volq-\(UUID().uuidString)")
        sources = try (0..<4).map { try VolumeBanks.writeCase(index: $0, to: directory) }
        retrieval = try FixtureModels.retrievalEncoder()
        // Objects seen everywhere: the masks compared below are not all background.
        support = try FixtureModels.supportEncoderSeeingObjects()
        bank = try SupportBank.create(
            at: directory.appendingPathComponent("bank").path,
            metadata: VolumeBanks.metadata(retrieval: retrieval, support: support))
        for source in sources.prefix(3) {
            try bank.add(try VolumeBanks.slices(of: source, retrieval: retrieval, support: support))
        }
        segmenter = try RetrievalSegmenter(bank: bank, retrieval: retrieval, support: support)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    func query(
        _ selection: LabelSelection = .all, k: Int = 2, override: VolumeSettingsOverride = VolumeSettingsOverride(),
        range: Range<Int>? = nil
    ) throws -> VolumeSegmentation {
        try VolumeSegmentation(
            bank: bank.metadata, bankPath: bank.path, selection: selection, k: k, override: override,
            sliceRange: range)
    }

    func testLabelVolumeKeepsTheInputGeometry() throws {
        let image = try NIfTI.read(sources[3].image)
        let result = try query().run(image, name: sources[3].image, segmenter: segmenter)
        let path = directory.appendingPathComponent("out/case_003.nii.gz").path
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try NIfTI.write(result.labelMap, to: path)
        let reopened = try NIfTI.read(path)
        let (a, b) = (reopened.header, image.header)
        XCTAssertEqual(a.dim, b.dim)
        XCTAssertEqual(a.pixdim, b.pixdim)
        XCTAssertEqual(a.qformCode, b.qformCode)
        XCTAssertEqual(a.sformCode, b.sformCode)
        XCTAssertEqual([a.quaternB, a.quaternC, a.quaternD], [b.quaternB, b.quaternC, b.quaternD])
        XCTAssertEqual([a.qoffsetX, a.qoffsetY, a.qoffsetZ], [b.qoffsetX, b.qoffsetY, b.qoffsetZ])
        XCTAssertEqual([a.srowX, a.srowY, a.srowZ], [b.srowX, b.srowY, b.srowZ])
        XCTAssertEqual(a.xyztUnits, b.xyztUnits)
        XCTAssertEqual(a.affine, b.affine)
        XCTAssertEqual(a.datatype, .uint8)
        XCTAssertEqual([a.sclSlope, a.sclInter], [1, 0])
        XCTAssertEqual(try reopened.labels(name: path).grid, result.labels)

        let report = result.report
        XCTAssertEqual(report.shape, [32, 28, 6])
        XCTAssertEqual(report.sliceCount, 6)
        XCTAssertEqual(report.slices.map(\.slice), Array(0..<6))
        XCTAssertEqual(report.labels.map(\.label), ["organ", "lesion"])
        XCTAssertEqual(report.labels.map(\.value), [1, 2])
        // 1.5 x 1.5 x 3 mm voxels: 6.75 mm³ = 0.00675 mL each.
        XCTAssertEqual(report.voxelVolumeMl, 0.00675, accuracy: 1e-12)
        for l in report.labels {
            XCTAssertEqual(l.voxels, result.labels.values.filter { Int($0) == l.value }.count)
            XCTAssertEqual(l.volumeMl, Double(l.voxels) * 0.00675, accuracy: 1e-9)
        }
        // Every slice retrieved k cases per label, each named by the bank volume and slice it came from.
        let bankHashes = try Set(sources.prefix(3).map { hexString(try SHA256.hash(fileAt: $0.image)) })
        for slice in report.slices {
            XCTAssertEqual(slice.labels.count, 2)
            for label in slice.labels {
                XCTAssertEqual(label.retrieved.count, 2)
                for r in label.retrieved {
                    XCTAssertTrue(bankHashes.contains(try XCTUnwrap(r.volumeHash)))
                    XCTAssertTrue((0..<6).contains(try XCTUnwrap(r.slice)))
                }
            }
        }
        XCTAssertNotNil(report.stageSeconds[.encode])
        XCTAssertEqual(report.settings, VolumeBanks.settings)
        XCTAssertEqual(report.notes, [])
    }

    /// The same anatomy stored in another voxel order (axes permuted and flipped, the affine adjusted so
    /// every voxel keeps its place in the world): identical retrievals and, after undoing the reordering,
    /// an identical label volume.
    func testPermutedAndFlippedCopyGivesTheSameMasks() throws {
        let image = try NIfTI.read(sources[3].image)
        let permutation = [2, 0, 1], flips = [true, false, true]
        let copy = reorder(image, permutation: permutation, flips: flips)
        XCTAssertNotEqual(copy.header.shape, image.header.shape)
        let q = try query(k: 3)
        let original = try q.run(image, name: "original", segmenter: segmenter)
        let reordered = try q.run(copy, name: "copy", segmenter: segmenter)
        // The models saw the same slices: identical bytes, retrievals and SAM 2 scores, bit for bit.
        let settings = VolumeBanks.settings
        let before = try VolumeSliceImages(
            try image.intensities(frame: nil, name: "original"), axis: .axial, mapping: settings.mapping!, name: "o")
        let after = try VolumeSliceImages(
            try copy.intensities(frame: nil, name: "copy"), axis: .axial, mapping: settings.mapping!, name: "c")
        XCTAssertEqual((0..<6).map(after.bytes), (0..<6).map(before.bytes))
        XCTAssertEqual(after.spacing, before.spacing)
        XCTAssertEqual(
            reordered.report.slices.map { $0.labels.map { $0.retrieved.map(\.id) } },
            original.report.slices.map { $0.labels.map { $0.retrieved.map(\.id) } })
        XCTAssertEqual(
            reordered.report.slices.map { $0.labels.map { $0.objectScore.bitPattern } },
            original.report.slices.map { $0.labels.map { $0.objectScore.bitPattern } })
        XCTAssertEqual(reordered.labelMap.header.dim, copy.header.dim)
        XCTAssertEqual(reordered.labelMap.header.affine, copy.header.affine)
        // Undo: stored voxel v of the copy is original voxel reorder(v).
        let shape = image.header.spatialShape, copyShape = copy.header.spatialShape
        for k in 0..<copyShape[2] {
            for j in 0..<copyShape[1] {
                for i in 0..<copyShape[0] {
                    let o = originalIndex([i, j, k], permutation: permutation, flips: flips, shape: shape)
                    XCTAssertEqual(reordered.labels[i, j, k], original.labels[o[0], o[1], o[2]])
                }
            }
        }
        // Not a comparison of empty volumes: both labels and background occur.
        let counts = Dictionary(grouping: original.labels.values, by: { $0 }).mapValues(\.count)
        XCTAssertEqual(Set(counts.keys), [0, 1, 2], "label voxel counts \(counts)")
    }

    func testSliceRangeSegmentsOnlyThoseSlices() throws {
        let image = try NIfTI.read(sources[3].image)
        let full = try query().run(image, name: "full", segmenter: segmenter)
        let part = try query(range: 2..<4).run(image, name: "part", segmenter: segmenter)
        XCTAssertEqual(part.report.slices.map(\.slice), [2, 3])
        XCTAssertEqual([part.report.firstSlice, part.report.lastSlice], [2, 3])
        let fullSlices = try VolumeSlices(Volume(grid: full.labels, header: image.header), axis: .axial, name: "full")
        let partSlices = try VolumeSlices(Volume(grid: part.labels, header: image.header), axis: .axial, name: "part")
        for s in 0..<6 {
            if (2..<4).contains(s) {
                XCTAssertEqual(partSlices.slice(s), fullSlices.slice(s), "slice \(s)")
            } else {
                XCTAssertTrue(partSlices.slice(s).allSatisfy { $0 == 0 }, "slice \(s) is outside the range")
            }
        }
        XCTAssertThrowsError(try query(range: 4..<7).run(image, name: "scan.nii.gz", segmenter: segmenter)) {
            let error = $0 as? VolumeSegmentationError
            XCTAssertEqual(error?.path, "scan.nii.gz")
            XCTAssertTrue(error?.message.contains("outside the volume's 6 axial slices") == true, "\($0)")
        }
    }

    func testSettingsComeFromTheBankUnlessOverridden() throws {
        let plain = try query()
        XCTAssertEqual(plain.axis, .axial)
        XCTAssertEqual(plain.mapping, .ctDefault)
        XCTAssertEqual(plain.notes, [])
        let overridden = try query(
            override: VolumeSettingsOverride(axis: .coronal, mapping: .window(CTWindow(width: 1500, level: -600))))
        XCTAssertEqual(overridden.axis, .coronal)
        XCTAssertEqual(
            overridden.notes,
            [
                "slice axis coronal differs from the bank's axial",
                "intensities window 1500,-600 differ from the bank's window 400,40",
            ])
        var metadata = bank.metadata
        metadata.volumeSettings = nil
        let noSettings = try VolumeSegmentation(bank: metadata, bankPath: "b", selection: .named("lesion"), k: 1)
        XCTAssertEqual(noSettings.labels, [2])
        XCTAssertEqual(noSettings.mapping, .mrDefault)
        XCTAssertEqual(noSettings.notes.count, 1)
        XCTAssertTrue(noSettings.notes[0].contains("records no volume settings"))
        XCTAssertThrowsError(try VolumeSegmentation(bank: metadata, bankPath: "b", selection: .named("liver"), k: 1))

        // Two frames: the bank's channel picks one; without bank settings or --channel it is an error naming the file.
        let image = try NIfTI.read(sources[3].image)
        guard case .int16(let values) = image.voxels else { return XCTFail("int16 expected") }
        var header = image.header
        header.dim[0] = 4
        header.dim[4] = 2
        let twoFrames = NIfTIImage(header: header, voxels: .int16(values + values))
        XCTAssertThrowsError(try noSettings.run(twoFrames, name: "scan4d.nii.gz", segmenter: segmenter)) {
            let text = "\($0)"
            XCTAssertTrue(text.contains("scan4d.nii.gz") && text.contains("choose one (--channel N"), text)
        }
        let withChannel = try VolumeSegmentation(
            bank: metadata, bankPath: "b", selection: .all, k: 1, override: VolumeSettingsOverride(channel: 1),
            sliceRange: 0..<1)
        XCTAssertEqual(try withChannel.run(twoFrames, name: "scan4d", segmenter: segmenter).report.settings.channel, 1)
        XCTAssertEqual(
            try query(range: 0..<1).run(twoFrames, name: "scan4d", segmenter: segmenter).report.settings.channel, 0)
    }

    /// A volume whose slices are near-duplicates of each other (its middle slice repeated, each copy a few
    /// HU brighter), as neighbouring slices of a real scan are: excluding only a slice's own case retrieves
    /// another slice of the same volume at a similarity of about 1 (the answer leaks), so leave-one-out must
    /// exclude the whole volume.
    func testLeaveOneOutExcludesEveryCaseOfTheQueryVolume() throws {
        let source = try nearDuplicateVolume(from: sources[3])  // case 3 is not in the bank
        try bank.add(try VolumeBanks.slices(of: source, retrieval: retrieval, support: support))
        let hash = hexString(try SHA256.hash(fileAt: source.image))
        let records = try bank.allRecords()
        let own = VolumeEvaluationRun.casesFromVolume(imagePath: source.image, volumeHash: hash, records: records)
        XCTAssertEqual(own.count, 6)
        XCTAssertEqual(
            VolumeEvaluationRun.casesFromVolume(imagePath: source.image, volumeHash: "rewritten", records: records), own
        )
        XCTAssertEqual(
            VolumeEvaluationRun.casesFromVolume(imagePath: "/elsewhere.nii.gz", volumeHash: hash, records: records), own
        )

        // The leak: with only the slice itself excluded, the nearest case is another slice of its volume.
        let images = try VolumeSliceImages(
            try NIfTI.read(source.image).intensities(frame: nil, name: source.image), axis: .axial,
            mapping: .ctDefault, name: source.image)
        for s in 0..<images.count {
            let itself = try XCTUnwrap(records.first { $0.origin?.volumeHash == hash && $0.origin?.slice == s })
            let r = try segmenter.segment(images.image(s), name: "slice \(s)", k: 1, label: 1, excluding: [itself.id])
            XCTAssertEqual(r.supports[0].record.origin?.volumeHash, hash, "slice \(s): nearest is not a neighbour")
            XCTAssertGreaterThan(r.supports[0].score, 0.99, "slice \(s)")
        }

        // Leave-one-out by volume: no slice retrieves a case of its own volume.
        let rows = try VolumeEvaluationRun.run(segmenter, query: try query(), sources: [source], leaveOneOut: true)
        XCTAssertEqual(rows.map(\.labelName), ["organ", "lesion"])
        XCTAssertEqual(rows.map(\.excludedCases), [6, 6])
        let result = try query().run(try NIfTI.read(source.image), name: "q", segmenter: segmenter, excluding: own)
        for slice in result.report.slices {
            for label in slice.labels {
                XCTAssertEqual(label.retrieved.count, 2)
                XCTAssertFalse(label.retrieved.contains { $0.volumeHash == hash }, "slice \(slice.slice) leaked")
            }
        }
        // The rows score exactly that label volume against the truth.
        let truth = try NIfTI.read(source.mask).labels(name: source.mask)
        for row in rows {
            let expected = volumeScores(
                prediction: BinaryVolume(
                    shape: [32, 28, 6], voxels: result.labels.values.map { Int($0) == row.label }),
                truth: BinaryVolume(shape: [32, 28, 6], voxels: truth.grid.values.map { Int($0) == row.label }),
                spacing: [1.5, 1.5, 3])
            XCTAssertEqual(row.scores, expected)
            XCTAssertEqual(row.trueVoxels, truth.grid.values.filter { Int($0) == row.label }.count)
        }
        // Held out (not in the bank): nothing to exclude.
        XCTAssertEqual(
            try VolumeEvaluationRun.run(segmenter, query: try query(), sources: [sources[3]], leaveOneOut: true)
                .map(\.excludedCases), [0, 0])
    }

    /// `source`'s middle axial slice (stored axis 2 runs toward superior) repeated over every slice, copy k
    /// raised by 2k HU; the label volume likewise.
    func nearDuplicateVolume(from source: CaseSource) throws -> CaseSource {
        let image = try NIfTI.read(source.image), labels = try NIfTI.read(source.mask)
        guard case .int16(let values) = image.voxels, case .uint8(let labelValues) = labels.voxels else {
            throw XCTSkip("int16 image and uint8 labels expected")
        }
        let shape = image.header.spatialShape, plane = shape[0] * shape[1], middle = shape[2] / 2
        var stacked = values, stackedLabels = labelValues
        for k in 0..<shape[2] {
            for p in 0..<plane {
                stacked[k * plane + p] = values[middle * plane + p] + Int16(2 * k)
                stackedLabels[k * plane + p] = labelValues[middle * plane + p]
            }
        }
        let result = CaseSource(
            image: directory.appendingPathComponent("stacked.nii.gz").path,
            mask: directory.appendingPathComponent("stacked_labels.nii.gz").path)
        try NIfTI.write(NIfTIImage(header: image.header, voxels: .int16(stacked)), to: result.image)
        try NIfTI.write(NIfTIImage(header: labels.header, voxels: .uint8(stackedLabels)), to: result.mask)
        return result
    }

    // MARK: - Reordering a stored volume

    /// New stored axis d is old axis permutation[d], reversed when flips[d]; the affine follows, so every
    /// voxel keeps its world position.
    func reorder(_ image: NIfTIImage, permutation: [Int], flips: [Bool]) -> NIfTIImage {
        let shape = image.header.spatialShape
        let newShape = permutation.map { shape[$0] }
        guard case .int16(let values) = image.voxels else { preconditionFailure("int16 expected") }
        var out = values
        for k in 0..<newShape[2] {
            for j in 0..<newShape[1] {
                for i in 0..<newShape[0] {
                    let o = originalIndex([i, j, k], permutation: permutation, flips: flips, shape: shape)
                    out[i + newShape[0] * (j + newShape[1] * k)] = values[o[0] + shape[0] * (o[1] + shape[1] * o[2])]
                }
            }
        }
        let affine = image.header.affine
        var newAffine = Affine.identity
        var origin = [0.0, 0.0, 0.0]
        for d in 0..<3 {
            let sign: Double = flips[d] ? -1 : 1
            for row in 0..<3 { newAffine[row, d] = affine[row, permutation[d]] * sign }
            origin[permutation[d]] = flips[d] ? Double(shape[permutation[d]] - 1) : 0
        }
        let translation = affine.apply(origin)
        for row in 0..<3 { newAffine[row, 3] = translation[row] }
        var header = image.header
        for d in 0..<3 { header.dim[d + 1] = newShape[d] }
        header.setSform(newAffine, code: 1)
        header.setQform(newAffine, code: 1)
        return NIfTIImage(header: header, voxels: .int16(out))
    }

    func originalIndex(_ index: [Int], permutation: [Int], flips: [Bool], shape: [Int]) -> [Int] {
        var o = [0, 0, 0]
        for d in 0..<3 { o[permutation[d]] = flips[d] ? shape[permutation[d]] - 1 - index[d] : index[d] }
        return o
    }
}

import Foundation
import XCTest
import TensorCore
@testable import RAGSegIO

/// Windows, percentiles and the 8-bit rule; expected bytes worked out by hand from the documented formula
/// byte = floor((clip(v) - lower) * 255 / (upper - lower) + 0.5).
final class IntensityTests: XCTestCase {
    func testPresetsAndParsing() {
        let expected: [String: (Double, Double)] = [
            "abdomen": (400, 40), "liver": (150, 90), "lung": (1500, -600), "bone": (2500, 480), "brain": (80, 40),
        ]
        for (name, (w, l)) in expected {
            XCTAssertEqual(CTWindow.parse(name), CTWindow(width: w, level: l), name)
            XCTAssertEqual(CTWindow.parse(name.uppercased()), CTWindow(width: w, level: l), name)
        }
        XCTAssertEqual(CTWindow.parse("350,50"), CTWindow(width: 350, level: 50))
        XCTAssertEqual(CTWindow.parse(" 1500 , -600 "), CTWindow(width: 1500, level: -600))
        for bad in ["0,40", "-5,40", "abc", "1,2,3", "400", ",40", "nan,1", "inf,0"] {
            XCTAssertNil(CTWindow.parse(bad), bad)
        }
        XCTAssertEqual(CTWindow(width: 400, level: 40).lower, -160)
        XCTAssertEqual(CTWindow(width: 400, level: 40).upper, 240)
    }

    func testEightBitRule() {
        // Abdomen: lower -160, upper 240, 255/400 per HU.
        XCTAssertEqual(
            eightBit([-1000, -160, -159, 0, 40, 239, 240, 3000], lower: -160, upper: 240),
            [0, 0, 1, 102, 128, 254, 255, 255])
        // Lung: the level sits exactly half-way (127.5) and rounds up.
        XCTAssertEqual(eightBit([-600, -1350, 150], lower: -1350, upper: 150), [128, 0, 255])
        // Brain: 39 HU -> 124.3125 -> 124.
        XCTAssertEqual(eightBit([39], lower: 0, upper: 80), [124])
        // A degenerate range gives zeros.
        XCTAssertEqual(eightBit([5, 6], lower: 3, upper: 3), [0, 0])
    }

    /// numpy.percentile(np.arange(1, 201), [0.5, 99.5]) == [1.995, 199.005]; zeros are left out.
    func testPercentileOfNonzeroVoxels() {
        let values = [Float](repeating: 0, count: 50) + (1...200).map(Float.init)
        let (lower, upper) = IntensityMapping.mrDefault.bounds(values.shuffled())
        XCTAssertEqual(lower, 1.995, accuracy: 1e-12)
        XCTAssertEqual(upper, 199.005, accuracy: 1e-12)
        // Negative values are nonzero and count (MR rarely has them; CT would use a window).
        let (l2, u2) = IntensityMapping.percentile(lower: 0, upper: 100).bounds([0, -3, 7, 0, 2])
        XCTAssertEqual([l2, u2], [-3, 7])
        XCTAssertEqual(IntensityMapping.mrDefault.bounds([0, 0]).lower, 0)
        XCTAssertEqual(IntensityMapping.mrDefault.bounds([0, 0]).upper, 0)
        XCTAssertEqual(IntensityMapping.ctDefault.bounds([1, 2]).lower, -160)
    }

    func testChannelNamesPickTheDefault() throws {
        let ct = Array(SyntheticVolumes.datasetJSON(cases: 2).utf8)
        XCTAssertEqual(try NnUNetDataset.channelNames(datasetJSON: ct, name: "dataset.json"), [0: "CT"])
        XCTAssertEqual(try NnUNetDataset.defaultIntensityMapping(datasetJSON: ct, name: "dataset.json"), .ctDefault)
        let mr = Array(#"{"channel_names": {"0": "T2", "1": "ADC"}, "labels": {"background": 0}}"#.utf8)
        XCTAssertEqual(try NnUNetDataset.defaultIntensityMapping(datasetJSON: mr, name: "d.json"), .mrDefault)
        XCTAssertEqual(
            try NnUNetDataset.defaultIntensityMapping(datasetJSON: mr, channel: 1, name: "d.json"), .mrDefault)
        XCTAssertEqual(IntensityMapping.defaultFor(channelName: "ct"), .ctDefault)
        XCTAssertEqual(IntensityMapping.defaultFor(channelName: nil), .mrDefault)
        assertIOError(
            try NnUNetDataset.channelNames(datasetJSON: Array("{".utf8), name: "broken.json"), names: "broken.json",
            contains: "not valid JSON")
        assertIOError(
            try NnUNetDataset.channelNames(datasetJSON: Array("{}".utf8), name: "empty.json"), names: "empty.json",
            contains: "no \"channel_names\"")
        assertIOError(
            try NnUNetDataset.channelNames(
                datasetJSON: Array(#"{"channel_names": {"x": "CT"}}"#.utf8), name: "odd.json"),
            names: "odd.json", contains: "is not \"<channel number>\"")
        XCTAssertEqual(NnUNetDataset.imageFileName(caseID: "case_001"), "case_001_0000.nii.gz")
        XCTAssertEqual(
            NnUNetDataset.imageFileName(caseID: "la_003", channel: 12, fileEnding: ".nii"), "la_003_0012.nii")
    }

    /// A slice windowed from a NIfTI volume and the same slice exported as an 8-bit PNG (the project's
    /// PNG writer) and read back reach the models as the identical tensor.
    func testNIfTISliceEqualsItsEightBitPNG() throws {
        let dir = try TemporaryDirectory()
        let c = SyntheticVolumes.makeCase(index: 1, size: 48, slices: 10, seed: 9)
        let volume = try c.image.intensities(frame: nil, name: "case")
        for mapping in [IntensityMapping.ctDefault, .window(CTWindow.parse("liver")!), .mrDefault] {
            let (lower, upper) = mapping.bounds(volume.grid.values)
            let slices = try VolumeSlices(volume, axis: .axial, name: "case")
            let index = slices.count / 2
            let bytes = eightBit(slices.slice(index), lower: lower, upper: upper)
            XCTAssertGreaterThan(Set(bytes).count, 10, "\(mapping): the window flattens the slice")
            let path = dir.path("slice.png")
            try PNG.writeGray8(bytes, width: slices.width, height: slices.height, to: path)
            let png = try PNG.read(path)
            XCTAssertEqual(png.pixels, bytes.map(UInt16.init), "\(mapping)")
            let fromVolume = rgbTensor(gray: bytes, width: slices.width, height: slices.height)
            let fromPNG = png.rgbFloat()
            XCTAssertEqual(fromVolume.shape, fromPNG.shape)
            XCTAssertEqual(
                fromVolume.data.map(\.bitPattern), fromPNG.data.map(\.bitPattern), "\(mapping): tensors differ")
        }
    }
}

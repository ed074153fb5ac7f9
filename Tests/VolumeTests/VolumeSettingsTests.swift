import RAGSegIO
import XCTest

final class VolumeSettingsTests: XCTestCase {
    /// The stored text of each mapping reads back as the same mapping, and a bank's JSON stays plain.
    func testSettingTextRoundTrips() throws {
        let mappings: [IntensityMapping] = [
            .ctDefault, .mrDefault, .window(CTWindow(width: 1500, level: -600)),
            .window(CTWindow(width: 350.5, level: 50)), .percentile(lower: 1, upper: 99),
        ]
        let texts = mappings.map(\.settingText)
        XCTAssertEqual(
            texts,
            ["window 400,40", "percentile 0.5,99.5", "window 1500,-600", "window 350.5,50", "percentile 1,99"])
        for (mapping, text) in zip(mappings, texts) {
            XCTAssertEqual(IntensityMapping(settingText: text), mapping, text)
        }
        let settings = VolumeSettings(axis: .coronal, intensity: .ctDefault, channel: 1)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        XCTAssertEqual(
            String(decoding: try encoder.encode(settings), as: UTF8.self),
            #"{"channel":1,"intensity":"window 400,40","sliceAxis":"coronal"}"#)
        XCTAssertEqual(settings.axis, .coronal)
        XCTAssertEqual(settings.mapping, .ctDefault)
    }

    func testMalformedSettingTextIsRejected() {
        for text in [
            "", "window", "window 0,40", "window -1,40", "window 400", "percentile 99,1", "percentile 0,101",
            "gamma 1,2", "window nan,1", "window 400,40,1",
        ] {
            XCTAssertNil(IntensityMapping(settingText: text), text)
        }
    }
}

import Foundation
import XCTest
@testable import RAGSegIO

/// Path of a fixture (real files and expected values from tools/make_volume_fixtures.py).
func fixture(_ name: String) -> String {
    Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent(name).path
}

/// A fresh temporary directory per test, removed afterwards.
final class TemporaryDirectory {
    let url: URL
    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("ragseg-volume-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    func path(_ name: String) -> String { url.appendingPathComponent(name).path }
    func write(_ bytes: [UInt8], _ name: String) throws -> String {
        let p = path(name)
        try Data(bytes).write(to: URL(fileURLWithPath: p))
        return p
    }
    deinit { try? FileManager.default.removeItem(at: url) }
}

/// Asserts that `body` throws a RAGSegIOError whose description names `file` and contains `fragment`.
func assertIOError<T>(
    _ body: @autoclosure () throws -> T, names file: String, contains fragment: String,
    file sourceFile: StaticString = #filePath, line: UInt = #line
) {
    do {
        _ = try body()
        XCTFail("expected an error for \(file)", file: sourceFile, line: line)
    } catch let error as RAGSegIOError {
        let text = error.description
        XCTAssertTrue(
            text.hasPrefix(file + ": "), "error does not start with the file's name: \(text)", file: sourceFile,
            line: line)
        XCTAssertTrue(
            text.contains(fragment), "error '\(text)' does not contain '\(fragment)'", file: sourceFile, line: line)
    } catch {
        XCTFail("unexpected error type \(type(of: error)): \(error)", file: sourceFile, line: line)
    }
}

/// FNV-1a 64 over the values' float32 little-endian bytes, as hex (the fixture script's hash).
func fnv1a64(_ values: [Float]) -> String {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for v in values {
        var bits = v.bitPattern.littleEndian
        withUnsafeBytes(of: &bits) { bytes in
            for b in bytes {
                h ^= UInt64(b)
                h = h &* 0x100_0000_01B3
            }
        }
    }
    let hex = String(h, radix: 16)
    return String(repeating: "0", count: 16 - hex.count) + hex
}

/// What nibabel (checked against nifti_tool) read from one real file.
struct ExpectedFile: Decodable {
    struct FrameValues: Decodable {
        let frame: Int
        let raw_samples: [Double]
        let samples: [Float]
        let min: Float
        let max: Float
        let float32_fnv1a64: String
    }
    struct Canonical: Decodable {
        let shape: [Int]
        let affine: [[Double]]
        let ornt: [[Double]]
        let frame0_float32_fnv1a64: String
    }
    let version: Int
    let little_endian: Bool
    let dim: [Int]
    let datatype: Int
    let pixdim: [Double]
    let vox_offset: Int
    let scl_slope: Double
    let scl_inter: Double
    let qform_code: Int
    let sform_code: Int
    let quatern: [Double]
    let qoffset: [Double]
    let srow: [[Double]]
    let xyzt_units: Int
    let intent_code: Int
    let descrip: String
    let affine: [[Double]]
    let qform_affine: [[Double]]
    let sform_affine: [[Double]]
    let axcodes: String
    let frames: Int
    let slope_inter_applied: [Double]
    let raw_sum: Double
    let samples_at: [Int]
    let frame_values: [FrameValues]
    let canonical: Canonical
}

func expectedFiles() throws -> [String: ExpectedFile] {
    let data = try Data(contentsOf: URL(fileURLWithPath: fixture("expected_nibabel.json")))
    return try JSONDecoder().decode([String: ExpectedFile].self, from: data)
}

func assertAffine(
    _ actual: Affine, _ expected: [[Double]], tolerance: Double, _ what: String,
    file: StaticString = #filePath, line: UInt = #line
) {
    for r in 0..<4 {
        for c in 0..<4 where abs(actual[r, c] - expected[r][c]) > tolerance {
            XCTFail(
                "\(what)[\(r)][\(c)]: got \(actual[r, c]), expected \(expected[r][c])\n\(actual)", file: file,
                line: line)
            return
        }
    }
}

import Foundation
import XCTest
@testable import TensorCore

/// Minimal .npy reader for this test target's fixtures only: little-endian float32, C order, v1/v2 header.
/// (RAGSegIO has the real reader; the TensorCore tests must not depend on it.)
enum NPYFixture {
    struct Failure: Error, CustomStringConvertible { let description: String }

    static func load(_ name: String) throws -> Tensor {
        guard let url = Bundle.module.url(forResource: name, withExtension: "npy", subdirectory: "Fixtures") else {
            throw Failure(description: "fixture \(name).npy not found in the test bundle")
        }
        let bytes = [UInt8](try Data(contentsOf: url))
        guard bytes.count >= 10, bytes[0] == 0x93, Array(bytes[1...5]) == Array("NUMPY".utf8) else {
            throw Failure(description: "\(name).npy: not an .npy file")
        }
        let major = bytes[6]
        let headerLength =
            major == 1
            ? Int(bytes[8]) | Int(bytes[9]) << 8
            : Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
        let headerStart = major == 1 ? 10 : 12
        guard bytes.count >= headerStart + headerLength,
            let header = String(bytes: bytes[headerStart..<(headerStart + headerLength)], encoding: .ascii)
        else {
            throw Failure(description: "\(name).npy: truncated header")
        }
        guard header.contains("'descr': '<f4'"), header.contains("'fortran_order': False"),
            let open = header.range(of: "'shape': ("), let close = header[open.upperBound...].firstIndex(of: ")")
        else {
            throw Failure(description: "\(name).npy: only little-endian float32 C-order supported, header \(header)")
        }
        let shape = header[open.upperBound..<close].split(separator: ",")
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.compactMap { Int($0) }
        let count = shape.reduce(1, *)
        let dataStart = headerStart + headerLength
        guard bytes.count == dataStart + 4 * count else {
            throw Failure(description: "\(name).npy: expected \(count) floats for shape \(shape)")
        }
        var values = [Float](repeating: 0, count: count)
        values.withUnsafeMutableBytes { dst in
            bytes.withUnsafeBytes { src in dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[dataStart...])) }
        }
        return Tensor(shape: shape, data: values)
    }
}

/// Asserts same shape and max |a − ref| ≤ tolerance · max(1, max |ref|). `relative: 0` demands exact equality.
func assertClose(
    _ actual: Tensor, _ expected: Tensor, relative: Float = 1e-4, _ what: String,
    file: StaticString = #filePath, line: UInt = #line
) {
    XCTAssertEqual(actual.shape, expected.shape, "\(what): shape", file: file, line: line)
    guard actual.shape == expected.shape else { return }
    var maxError: Float = 0, scale: Float = 1
    for i in 0..<expected.count {
        let e = abs(actual.data[i] - expected.data[i])
        maxError = max(maxError, e.isNaN ? .infinity : e)
        scale = max(scale, abs(expected.data[i]))
    }
    XCTAssertLessThanOrEqual(
        maxError, relative * scale, "\(what): max abs error \(maxError), scale \(scale)",
        file: file, line: line)
}

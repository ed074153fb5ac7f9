import Foundation
import XCTest
@testable import RAGSegIO

/// Path of a committed fixture (made by tools/make_io_fixtures.py).
func fixture(_ name: String) -> String {
    Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent(name).path
}

func fixtureBytes(_ name: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: URL(fileURLWithPath: fixture(name))))
}

/// A fresh temporary directory per test case, removed afterwards.
final class TemporaryDirectory {
    let url: URL
    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("ragsegio-\(UUID().uuidString)")
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

/// Asserts that `body` throws a RAGSegIOError whose description names `file` (and contains `fragment`).
func assertIOError<T>(
    _ body: @autoclosure () throws -> T, names file: String, contains fragment: String? = nil,
    file sourceFile: StaticString = #filePath, line: UInt = #line
) {
    do {
        _ = try body()
        XCTFail("expected an error for \(file)", file: sourceFile, line: line)
    } catch let error as RAGSegIOError {
        let text = error.description
        XCTAssertTrue(
            text.contains((file as NSString).lastPathComponent), "error does not name the file: \(text)",
            file: sourceFile, line: line)
        XCTAssertTrue(
            text.hasPrefix(error.path + ": "), "description is not '<path>: <message>': \(text)", file: sourceFile,
            line: line)
        if let fragment {
            XCTAssertTrue(
                text.contains(fragment), "error '\(text)' does not contain '\(fragment)'", file: sourceFile, line: line)
        }
    } catch {
        XCTFail("unexpected error type \(type(of: error)): \(error)", file: sourceFile, line: line)
    }
}

/// Bitwise equality (so -0 and inf are checked exactly), reporting the first mismatch.
func assertBitwiseEqual(
    _ actual: [Float], _ expected: [Float], _ what: String,
    file: StaticString = #filePath, line: UInt = #line
) {
    XCTAssertEqual(actual.count, expected.count, "\(what): count", file: file, line: line)
    for (i, (a, e)) in zip(actual, expected).enumerated() where a.bitPattern != e.bitPattern {
        XCTFail("\(what)[\(i)]: got \(a), expected \(e)", file: file, line: line)
        return
    }
}

// The `ragseg` executable that `swift build --build-tests` builds next to the test bundles, run as a child
// process; also the runner for other child processes the tests start.
import Dispatch
import Foundation

public enum RagsegBinary {
    public struct Result: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
    }

    public struct NotFound: Error, CustomStringConvertible {
        public var description: String {
            "ragseg executable not found next to the test bundle: build it (tools/test.sh builds everything)"
        }
    }

    /// The executable's path: beside (or a few folders above) a loaded bundle or the test runner.
    public static func path() throws -> String {
        var candidates = [URL]()
        for bundle in Bundle.allBundles + [Bundle.main] {
            candidates.append(bundle.bundleURL.deletingLastPathComponent())
            candidates.append(bundle.bundleURL)
        }
        candidates.append(URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent())
        for directory in candidates {
            var d = directory
            for _ in 0..<4 {
                let path = d.appendingPathComponent("ragseg").path
                var isDirectory: ObjCBool = false
                if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
                    FileManager.default.isExecutableFile(atPath: path)
                {
                    return path
                }
                d = d.deletingLastPathComponent()
            }
        }
        throw NotFound()
    }

    /// Runs ragseg with `arguments` to completion, collecting its output.
    public static func run(_ arguments: [String]) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try path())
        process.arguments = arguments
        return try runToCompletion(process)
    }

    /// Runs a configured process (any executable) to completion, collecting its output.
    public static func runToCompletion(_ process: Process) throws -> Result {
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Both pipes drain at once so a chatty child never blocks on a full pipe.
        nonisolated(unsafe) var errData = Data()
        let group = DispatchGroup()
        DispatchQueue.global().async(group: group) { errData = err.fileHandleForReading.readDataToEndOfFile() }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        return Result(
            status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
            stderr: String(decoding: errData, as: UTF8.self))
    }
}

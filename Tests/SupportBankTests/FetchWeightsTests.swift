import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `tools/fetch_weights.sh` (the quick start's download) against a loopback HTTP server that serves the
/// repository's tiny fixture weights at Hugging Face-shaped URLs, plus a 404 and a cut-short transfer.
final class FetchWeightsTests: XCTestCase {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    static let dinov2Config = "/facebook/dinov2-small/resolve/main/config.json"
    static let dinov2Model = "/facebook/dinov2-small/resolve/main/model.safetensors"
    static let sam2Model = "/facebook/sam2.1-hiera-tiny/resolve/main/model.safetensors"

    static func fixture(_ relative: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: Self.repository + "/Tests/" + relative)))
    }

    /// The three fixture files, keyed by URL path, and where fetch_weights.sh puts each under DEST.
    static func fixtures() throws -> [(path: String, target: String, bytes: [UInt8])] {
        [
            (Self.dinov2Config, "dinov2/config.json", try fixture("DINOv2Tests/Fixtures/plain/config.json")),
            (Self.dinov2Model, "dinov2/model.safetensors", try fixture("DINOv2Tests/Fixtures/plain/model.safetensors")),
            (Self.sam2Model, "sam2.safetensors", try fixture("SAM2Tests/Fixtures/memory/weights.safetensors")),
        ]
    }

    private func requireCurl() throws {
        if !curlInstalled() { throw XCTSkip("curl is not installed: tools/fetch_weights.sh needs it") }
    }

    private func fetch(_ dest: String, endpoint: String?) throws -> RunResult {
        try runScript("tools/fetch_weights.sh", [dest], environment: ["HF_ENDPOINT": endpoint])
    }

    private func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

    /// Every file under `dir` whose name ends in `.part`.
    private func partFiles(_ dir: String) -> [String] {
        (FileManager.default.enumerator(atPath: dir)?.allObjects as? [String] ?? []).filter { $0.hasSuffix(".part") }
    }

    func testDownloadsByteIdenticalAndKeepsCompleteFiles() throws {
        try requireCurl()
        let files = try Self.fixtures()
        let server = try LoopbackFileServer(
            routes: Dictionary(uniqueKeysWithValues: files.map { ($0.path, .file($0.bytes)) }))
        defer { server.stop() }
        let dest = temporaryDirectory() + "/weights"
        var r = try fetch(dest, endpoint: "http://127.0.0.1:\(server.port)/")  // a trailing slash is fine
        XCTAssertEqual(r.status, 0, r.stderr)
        for f in files {
            XCTAssertEqual(
                [UInt8](try Data(contentsOf: URL(fileURLWithPath: dest + "/" + f.target))), f.bytes, f.target)
        }
        XCTAssertEqual(partFiles(dest), [])
        XCTAssertEqual(server.requests, files.map(\.path))

        // A second run keeps the complete files and asks the server for nothing.
        r = try fetch(dest, endpoint: "http://127.0.0.1:\(server.port)")
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(server.requests.count, 3, "\(server.requests)")
        XCTAssertTrue(r.stdout.contains("already there"), r.stdout)
    }

    /// Naming one model fetches only its files (the quick start asks only for what the folder lacks).
    func testOnlyTheNamedModelIsFetched() throws {
        try requireCurl()
        let files = try Self.fixtures()
        let server = try LoopbackFileServer(
            routes: Dictionary(uniqueKeysWithValues: files.map { ($0.path, .file($0.bytes)) }))
        defer { server.stop() }
        let dest = temporaryDirectory() + "/weights"
        var r = try runScript(
            "tools/fetch_weights.sh", [dest, "sam2"], environment: ["HF_ENDPOINT": "http://127.0.0.1:\(server.port)"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(server.requests, [Self.sam2Model])
        XCTAssertFalse(exists(dest + "/dinov2"))
        r = try runScript("tools/fetch_weights.sh", [dest, "sam3"], environment: ["HF_ENDPOINT": nil])
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.stderr.contains("unknown model 'sam3'"), r.stderr)
    }

    func testNotFoundStopsWithTheURLAndLeavesNoFinalFile() throws {
        try requireCurl()
        let files = try Self.fixtures()
        var routes = Dictionary(uniqueKeysWithValues: files.map { ($0.path, LoopbackFileServer.Reply.file($0.bytes)) })
        routes[Self.dinov2Model] = .status(404)
        let server = try LoopbackFileServer(routes: routes)
        defer { server.stop() }
        let dest = temporaryDirectory() + "/weights"
        let r = try fetch(dest, endpoint: "http://127.0.0.1:\(server.port)")
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("http://127.0.0.1:\(server.port)\(Self.dinov2Model)"), r.stderr)
        XCTAssertTrue(r.stderr.contains("HTTP status 404"), r.stderr)
        // The file before it is complete; the failed one and the one after it do not exist, nor any .part.
        XCTAssertEqual(
            [UInt8](try Data(contentsOf: URL(fileURLWithPath: dest + "/dinov2/config.json"))), files[0].bytes)
        XCTAssertFalse(exists(dest + "/dinov2/model.safetensors"))
        XCTAssertFalse(exists(dest + "/sam2.safetensors"))
        XCTAssertEqual(partFiles(dest), [])
        XCTAssertEqual(server.requests, [Self.dinov2Config, Self.dinov2Model], "stopped at the first failure")
    }

    func testTruncatedTransferLeavesNoFinalFile() throws {
        try requireCurl()
        let files = try Self.fixtures()
        var routes = Dictionary(uniqueKeysWithValues: files.map { ($0.path, LoopbackFileServer.Reply.file($0.bytes)) })
        routes[Self.sam2Model] = .truncated(files[2].bytes, sent: files[2].bytes.count / 2)
        let server = try LoopbackFileServer(routes: routes)
        defer { server.stop() }
        let dest = temporaryDirectory() + "/weights"
        let r = try fetch(dest, endpoint: "http://127.0.0.1:\(server.port)")
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("http://127.0.0.1:\(server.port)\(Self.sam2Model)"), r.stderr)
        XCTAssertTrue(r.stderr.contains("curl error 18"), r.stderr)  // CURLE_PARTIAL_FILE
        XCTAssertFalse(exists(dest + "/sam2.safetensors"))
        XCTAssertEqual(partFiles(dest), [])
        for f in files.prefix(2) {
            XCTAssertEqual(
                [UInt8](try Data(contentsOf: URL(fileURLWithPath: dest + "/" + f.target))), f.bytes, f.target)
        }
    }

    func testUnreachableServerAndUsage() throws {
        try requireCurl()
        // A port nothing listens on: take one from the kernel, then close it.
        let server = try LoopbackFileServer(routes: [:])
        let port = server.port
        server.stop()
        let dest = temporaryDirectory() + "/weights"
        var r = try fetch(dest, endpoint: "http://127.0.0.1:\(port)")
        XCTAssertNotEqual(r.status, 0)
        // curl error 7: could not connect
        XCTAssertTrue(r.stderr.contains("http://127.0.0.1:\(port)\(Self.dinov2Config): curl error 7"), r.stderr)
        XCTAssertFalse(exists(dest + "/dinov2/config.json"))
        XCTAssertEqual(partFiles(dest), [])

        r = try fetch("", endpoint: nil)
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.stderr.contains("usage: bash tools/fetch_weights.sh DEST"), r.stderr)
    }
}

/// Runs `bash SCRIPT ARGS...` (SCRIPT relative to the repository) to completion with the test's environment
/// plus `environment` (nil removes a variable); proxies are unset so loopback requests stay local.
func runScript(_ script: String, _ arguments: [String], environment overrides: [String: String?]) throws -> RunResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["bash", FetchWeightsTests.repository + "/" + script] + arguments
    var environment = ProcessInfo.processInfo.environment
    for proxy in ["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"] { environment[proxy] = nil }
    for (key, value) in overrides { environment[key] = value }
    process.environment = environment
    return try runToCompletion(process)
}

/// True when `curl` is on PATH.
func curlInstalled() -> Bool {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    return path.split(separator: ":").contains { FileManager.default.isExecutableFile(atPath: "\($0)/curl") }
}

/// A minimal HTTP/1.1 server on 127.0.0.1 (POSIX sockets, one connection at a time, `Connection: close`),
/// so a test controls every byte: whole files, error statuses, and responses cut short of their Content-Length.
final class LoopbackFileServer: @unchecked Sendable {
    enum Reply: Sendable {
        case file([UInt8])
        case status(Int)
        /// Announces the whole file in Content-Length, sends the first `sent` bytes, then closes.
        case truncated([UInt8], sent: Int)
    }

    let port: Int
    private let listener: Int32
    private let routes: [String: Reply]
    private let lock = NSLock()
    private var seen: [String] = []
    private let done = DispatchSemaphore(value: 0)

    /// Paths requested so far, in order.
    var requests: [String] { lock.withLock { seen } }

    init(routes: [String: Reply]) throws {
        self.routes = routes
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw NSError(domain: "LoopbackFileServer", code: Int(errno)) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = in_addr_t(0x7F00_0001).bigEndian
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(fd, 8) == 0 else {
            close(fd)
            throw NSError(domain: "LoopbackFileServer", code: Int(errno))
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        listener = fd
        Thread.detachNewThread { [self] in serve() }
    }

    /// Closes the listening socket and waits for the accept loop to end.
    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        done.wait()
        close(listener)
    }

    private func serve() {
        defer { done.signal() }
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                return  // shut down
            }
            handle(client)
            close(client)
        }
    }

    private func handle(_ client: Int32) {
        // Read the request head (the client sends no body).
        var head = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !head.ends(with: Array("\r\n\r\n".utf8)) && head.count < 65536 {
            let n = recv(client, &buffer, buffer.count, 0)
            if n <= 0 { return }
            head += buffer[0..<n]
        }
        let requestLine = String(decoding: head, as: UTF8.self).split(separator: "\r\n").first ?? ""
        let parts = requestLine.split(separator: " ")
        let path = parts.count >= 2 ? String(parts[1]) : ""
        lock.withLock { seen.append(path) }
        switch routes[path] ?? .status(404) {
        case .file(let bytes):
            sendAll(client, header(200, "OK", length: bytes.count) + bytes)
        case .status(let code):
            let body = Array("status \(code)\n".utf8)
            sendAll(client, header(code, "Error", length: body.count) + body)
        case .truncated(let bytes, let sent):
            sendAll(client, header(200, "OK", length: bytes.count) + bytes.prefix(sent))
        }
    }

    private func header(_ code: Int, _ reason: String, length: Int) -> [UInt8] {
        Array(
            """
            HTTP/1.1 \(code) \(reason)\r\nContent-Type: application/octet-stream\r\nContent-Length: \
            \(length)\r\nConnection: close\r\n\r\n
            """
            .utf8)
    }

    private func sendAll(_ client: Int32, _ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            #if canImport(Glibc)
            let flags = Int32(MSG_NOSIGNAL)
            #else
            let flags: Int32 = 0
            #endif
            let n = bytes[offset...].withUnsafeBytes { send(client, $0.baseAddress, $0.count, flags) }
            if n <= 0 { return }
            offset += n
        }
    }
}

private extension Array where Element == UInt8 {
    func ends(with suffix: [UInt8]) -> Bool {
        count >= suffix.count && Array(self[(count - suffix.count)...]) == suffix
    }
}

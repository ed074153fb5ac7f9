import Foundation
import RAGSegTestSupport
import SupportBank
import Synchronization
import XCTest

/// `ragseg serve` stopped by SIGTERM while 8 clients have fully sent `POST /cases`: every client gets an
/// HTTP answer (201 processed, or 503 with a JSON error, unprocessed), the process exits 0, and the bank
/// verifies holding exactly the answered-201 cases. Three rounds, the signal at different moments.
final class ShutdownTests: XCTestCase {
    /// A running `ragseg serve` child and the port it listens on.
    struct Serving {
        var process: Process
        var port: Int
    }

    func startServer(bank: String) throws -> Serving {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try RagsegBinary.path())
        process.arguments = ["serve", "--index", bank, "--port", "0", "--threads", "1"]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        let text = Mutex("")
        errors.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            text.withLock { $0 += String(decoding: data, as: UTF8.self) }
        }
        try process.run()
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline && process.isRunning {
            let seen = text.withLock { $0 }
            if let range = seen.range(of: "listening on http://127.0.0.1:") {
                let digits = seen[range.upperBound...].prefix { $0.isNumber }
                if let port = Int(digits), seen[range.upperBound...].dropFirst(digits.count).first == " " {
                    return Serving(process: process, port: port)
                }
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
        process.terminate()
        throw XCTSkip("serve did not start: \(text.withLock { $0 })")
    }

    /// Connects to 127.0.0.1:port and writes all of `request`; returns the socket.
    func sendFully(_ request: Data, port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        XCTAssertGreaterThanOrEqual(fd, 0)
        var timeout = timeval(tv_sec: 120, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        XCTAssertEqual(connected, 0, "connect: \(String(cString: strerror(errno)))")
        try request.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
            var offset = 0
            while offset < bytes.count {
                let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                guard n > 0 else { throw POSIXError(.EIO) }
                offset += n
            }
        }
        return fd
    }

    /// Everything the server sends back until it closes (or the 120 s receive timeout).
    func readAll(_ fd: Int32) -> String {
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n <= 0 { break }
            data.append(contentsOf: buffer[0..<n])
            // One response per connection: stop at a complete body (Content-Length) without waiting for close.
            if let text = String(data: data, encoding: .utf8), let end = text.range(of: "\r\n\r\n"),
                let lengthLine = text[..<end.lowerBound].split(separator: "\r\n").first(where: {
                    $0.lowercased().hasPrefix("content-length:")
                }),
                let length = Int(lengthLine.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)),
                text.utf8.count - text[..<end.upperBound].utf8.count >= length
            {
                break
            }
        }
        close(fd)
        return String(decoding: data, as: UTF8.self)
    }

    func multipartRequest(image: Data, mask: Data) -> Data {
        let boundary = "ragseg-shutdown-test"
        var body = Data()
        for (name, bytes) in [("image", image), ("mask", mask)] {
            body += Data(
                """
                --\(boundary)\r\nContent-Disposition: form-data; name="\(name)"; filename="\(name).png"\r\n\
                Content-Type: image/png\r\n\r\n
                """.utf8)
            body += bytes + Data("\r\n".utf8)
        }
        body += Data("--\(boundary)--\r\n".utf8)
        let head = """
            POST /cases HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=\(boundary)\r\n\
            Content-Length: \(body.count)\r\nConnection: close\r\n\r\n
            """
        return Data(head.utf8) + body
    }

    func testSigtermAnswersEveryFullySentRequest() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
            "ragseg-shutdown-\(getpid())-\(UUID().uuidString.prefix(8))"
        ).path
        let rounds = [0.0, 0.05, 0.3]  // seconds between the last request sent and SIGTERM
        let (images, masks) = try writeDataset(dir + "/data", count: 8 * rounds.count)
        let bank = dir + "/bank"
        let created = try RagsegBinary.run([
            "index", "create", bank, "--dinov2", FixtureModels.dinov2, "--sam2", FixtureModels.sam2,
        ])
        XCTAssertEqual(created.status, 0, created.stderr)
        var stored = 0
        var answers: [Int: Int] = [:]
        for (round, delay) in rounds.enumerated() {
            let serving = try startServer(bank: bank)
            let requests = try (0..<8).map { i -> Data in
                let name = String(format: "/case%03d.png", round * 8 + i)
                return multipartRequest(
                    image: try Data(contentsOf: URL(fileURLWithPath: images + name)),
                    mask: try Data(contentsOf: URL(fileURLWithPath: masks + name)))
            }
            let sockets = try requests.map { try sendFully($0, port: serving.port) }
            Thread.sleep(forTimeInterval: delay)
            kill(serving.process.processIdentifier, SIGTERM)
            var added = 0
            for fd in sockets {
                let reply = readAll(fd)
                let status = Int(reply.split(separator: " ").dropFirst().first ?? "") ?? 0
                answers[status, default: 0] += 1
                XCTAssertTrue(status == 201 || status == 503, "round \(round): \(reply.prefix(300))")
                if status == 201 { added += 1 }
                if status == 503 { XCTAssertTrue(reply.contains("{\"error\":\"the server is shutting down"), reply) }
            }
            print("round \(round) (SIGTERM \(delay) s after the last request): \(added) of 8 processed, the rest 503")
            serving.process.waitUntilExit()
            XCTAssertEqual(serving.process.terminationReason, .exit, "round \(round): ended by a signal")
            XCTAssertEqual(serving.process.terminationStatus, 0, "round \(round)")
            let verify = try RagsegBinary.run(["index", "verify", bank])
            XCTAssertEqual(verify.status, 0, "round \(round): \(verify.stdout)\(verify.stderr)")
            stored += added
            XCTAssertEqual(
                try SupportBank.open(at: bank, readOnly: true).allRecords().count, stored,
                "round \(round): exactly the cases answered 201 are stored")
        }
        print("shutdown answers over \(rounds.count) rounds of 8: \(answers.sorted { $0.key < $1.key })")
    }
}

import Foundation
import XCTest
import RAGSegIO
import RAGSegTestSupport
import RAGSegPipeline
import SupportBank
@testable import RAGSegServer

/// `ragseg segment --index --json` and `POST /segment?format=json` print the same `QueryReport` for the
/// same query: the binary's report of the target and the server's answer agree key for key and value for
/// value, once each front end's own fields are set aside and the stage timings (different on every run)
/// are masked.
extension ServerTests {
    func testSegmentJSONAndServeJSONAreTheSameDocument() async throws {
        await server.shutdown()
        _ = try await serverTask?.value
        // The bank is built through the binary with the weight files it records, so both sides load the
        // models the same way (BankModels).
        let cases = directory.appendingPathComponent("cli-cases")
        for i in 0..<6 {
            _ = try SyntheticCases.write(
                SyntheticCases.make(seed: UInt64(i + 1), width: width, height: height),
                index: i, width: width, height: height, to: cases)
        }
        let bankPath = directory.appendingPathComponent("cli-bank").path
        var r = try RagsegBinary.run([
            "index", "create", bankPath, "--dinov2", FixtureModels.dinov2, "--sam2", FixtureModels.sam2,
        ])
        XCTAssertEqual(r.status, 0, r.stderr)
        r = try RagsegBinary.run([
            "index", "add", bankPath, "--images", cases.appendingPathComponent("images").path,
            "--masks", cases.appendingPathComponent("masks").path, "--quiet",
        ])
        XCTAssertEqual(r.status, 0, r.stderr)

        let target = sources[6].image
        for (options, parameters) in [
            ([String](), ""),
            (
                ["--point", "40,52.5", "--point", "5,100,0", "--box", "20,25,80,90"],
                "&point=40,52.5&point=5,100,0&box=20,25,80,90"
            ),
        ] {
            let out = directory.appendingPathComponent("cli-out").path
            r = try RagsegBinary.run(
                ["segment", "--index", bankPath, "--k", "2", "--json", "--out", out, target] + options)
            XCTAssertEqual(r.status, 0, r.stderr)
            let run = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
            var fromCLI = try XCTUnwrap((run["targets"] as? [[String: Any]])?.first)
            XCTAssertEqual(fromCLI["file"] as? String, target)
            XCTAssertEqual(fromCLI["mask"] as? String, out + "/case_6.png")

            let bank = try SupportBank.open(at: bankPath)
            segmenter = try BankModels.segmenter(for: bank, dinov2: nil, sam2: nil)
            try await start(maxUploadBytes: 1 << 20)
            let reply = try await send("POST", "/segment?format=json&k=2" + parameters, body: try file(target))
            await server.shutdown()
            _ = try await serverTask?.value
            XCTAssertEqual(reply.status, 200, reply.text)
            var fromServer = reply.json
            XCTAssertEqual(fromServer["k"] as? Int, 2)
            let mask = try PNG.read(out + "/case_6.png")
            XCTAssertEqual(fromServer["foregroundPixels"] as? Int, mask.pixels.filter { $0 != 0 }.count)
            XCTAssertNotNil(fromServer["queueSeconds"] as? Double)

            for key in ["file", "mask"] { fromCLI[key] = nil }
            for key in ["k", "queueSeconds", "foregroundPixels"] { fromServer[key] = nil }
            let cli = try Self.maskingTimings(fromCLI), served = try Self.maskingTimings(fromServer)
            XCTAssertEqual(cli, served, "options \(options)")
            XCTAssertTrue(cli.contains("\"retrieved\""), cli)
            XCTAssertEqual(cli.contains("\"prompt\""), !options.isEmpty, cli)
        }
    }

    /// The document as sorted JSON text with every stage's seconds set to 0 (the stage names are kept).
    static func maskingTimings(_ document: [String: Any]) throws -> String {
        var document = document
        document["labels"] = (document["labels"] as? [[String: Any]] ?? []).map { label -> [String: Any] in
            var label = label
            label["seconds"] = (label["seconds"] as? [String: Any] ?? [:]).mapValues { _ in 0 }
            return label
        }
        return String(
            decoding: try JSONSerialization.data(withJSONObject: document, options: [.prettyPrinted, .sortedKeys]),
            as: UTF8.self)
    }
}

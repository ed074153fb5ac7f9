// `ragseg serve --index BANK [--dinov2 W --sam2 W]`: the bank and both models loaded once, served over HTTP
// (RAGSegServer). This file only parses options, opens the bank and the models, and runs the server.
import ArgumentParser
import Foundation
import RAGSegCommandOptions
import RAGSegPipeline
import RAGSegServer
import SupportBank
import TensorCore

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve retrieval-augmented segmentation and case uploads over HTTP.",
        discussion: """
            GET /health -> {"status":"ok"}. GET /info -> bank counts, labels, models, limits (JSON).
            POST /segment?k=N&label=NAME|all&format=png|json with a PNG body -> the mask as PNG (0/255; with \
            label=all on a multi-label bank a label map 0...L; header X-RAGSeg-Retrieved lists the case ids) \
            or JSON (retrieved ids and similarities, IoU predictions, object score, stage timings).
            POST /cases with multipart/form-data parts 'image' and 'mask' (PNG; e.g. curl -F image=@a.png \
            -F mask=@a_mask.png) -> 201 {"id":...,"added":true} (200 and "added":false if the content is \
            already in the bank). The files are stored under --uploads (default BANK/uploads) and the case \
            is searchable by the next request.
            Errors are JSON {"error": "..."}: 400 bad PNG, unknown label, k out of range, bad multipart; \
            405 POST/PUT/PATCH/DELETE /cases with --read-only (header Allow empty); \
            413 body over --max-upload-mib; 415 /cases without multipart; 422 no case has the label.
            Model work runs one request at a time in arrival order. SIGTERM/SIGINT stop the server: requests \
            that reached it before are answered normally (an add commits); later ones get 503 {"error": ...} \
            unprocessed until no request has arrived for 0.5 s; then the listener closes, the index is \
            checkpointed and the process exits 0. A second signal skips the wait.
            """)

    @OptionGroup var precision: PrecisionOptions
    @Option(help: "Support bank (a bare name means Indexes/NAME).")
    var index: String

    @Option(help: "DINOv2 weights the bank was built with (default: the file recorded in the bank).")
    var dinov2: String?

    @Option(help: "SAM 2 checkpoint the bank was built with (default: the file recorded in the bank).")
    var sam2: String?

    @Option(help: "Address to listen on.")
    var host: String = "127.0.0.1"

    @Option(help: "Port to listen on (0: any free port, printed at start).")
    var port: Int = 8080

    @Option(name: .customLong("k"), help: "Supports retrieved per query when the request gives no k.")
    var k: Int = 4

    @Option(help: "Largest request body in MiB (larger: 413).")
    var maxUploadMib: Int = 64

    @Option(help: "Largest NIfTI volume POST /segment accepts, in voxels (larger: 413).")
    var maxVolumeVoxels: Int = 512 * 512 * 512

    @Option(help: "Directory for the images and masks of cases added over HTTP (default: BANK/uploads).")
    var uploads: String?

    @Option(help: "Threads for BLAS and the parallel loops (default: all cores).")
    var threads: Int?

    @Flag(
        help: """
            Serve the bank read-only (a replica, e.g. of `ragseg index snapshot`): segmenting works, POST /cases \
            and every other write answer 405; nothing in the bank's folder is written.
            """)
    var readOnly = false

    func validate() throws {
        guard (1...ServerConfiguration.maxK).contains(k) else {
            throw ValidationError("--k must be in 1...\(ServerConfiguration.maxK)")
        }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0...65535") }
        guard maxUploadMib >= 1 && maxUploadMib <= 4096 else {
            throw ValidationError("--max-upload-mib must be in 1...4096")
        }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        guard maxVolumeVoxels >= 1 else { throw ValidationError("--max-volume-voxels must be positive") }
    }

    func run() async throws {
        if let threads { Threads.set(threads) }
        let bankPath = resolveBankPath(index)
        let bank = try SupportBank.open(at: bankPath, readOnly: readOnly)
        let segmenter = try BankModels.segmenter(for: bank, dinov2: dinov2, sam2: sam2)
        let server = try SegmentationServer(
            segmenter: segmenter,
            configuration: ServerConfiguration(
                host: host, port: port, k: k, maxUploadBytes: maxUploadMib << 20,
                uploadsDirectory: uploads ?? (bankPath as NSString).appendingPathComponent("uploads"),
                maxVolumeVoxels: maxVolumeVoxels, readOnly: readOnly))
        let cases = try bank.statistics().cases
        let host = self.host, readOnly = self.readOnly
        try await server.run { port in
            FileHandle.standardError.write(
                Data(
                    """
                    ragseg serve: listening on http://\(host):\(port) (bank \(bankPath), \(cases) cases\
                    \(readOnly ? ", read-only" : ""))\n
                    """.utf8))
        }
        FileHandle.standardError.write(
            Data("ragseg serve: stopped\(readOnly ? "" : "; index checkpointed")\n".utf8))
    }
}

// `ragseg weights convert`: any weights file we read (a PyTorch `.pt`/`.pth` checkpoint, or safetensors) to
// an fp32 safetensors file with the same tensor names, for users who want the format that opens without
// running a pickle and maps straight into memory. Tensors are converted and written one at a time, so a
// large checkpoint is never held twice: the input stays memory-mapped, one tensor is in RAM.
import Foundation
import TensorCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public enum WeightConversion {
    public struct Summary: Sendable {
        public let tensors: Int
        public let values: Int
        /// The `<output>.json` sidecar copied from `<input>.json` (SAM 2 models of no published size), if any.
        public let sidecar: String?
    }

    /// Writes every tensor of `input` to `output` as F32 safetensors, names unchanged, metadata
    /// `{"source": <input file name>}`. An existing `output` is an error unless `overwrite`; the file appears
    /// atomically (temporary file + rename), so a failure leaves nothing behind.
    public static func toSafeTensors(input: String, output: String, overwrite: Bool = false) throws -> Summary {
        let source = try TensorFiles.open(input)
        let sidecarIn = input + ".json", sidecarOut = output + ".json"
        let fileManager = FileManager.default
        let copiesSidecar = fileManager.fileExists(atPath: sidecarIn)
        if !overwrite {
            for path in copiesSidecar ? [output, sidecarOut] : [output] where fileManager.fileExists(atPath: path) {
                throw RAGSegIOError(path: path, message: "already exists (give --force to replace it)")
            }
        }
        let entries = try source.names.map { name -> (name: String, shape: [Int]) in
            guard let shape = source.shape(name) else {
                throw RAGSegIOError(path: input, message: "tensor '\(name)' vanished while converting")
            }
            return (name, shape)
        }
        let (header, _) = SafeTensors.header(
            entries, metadata: ["source": (input as NSString).lastPathComponent, "format": "pt"])
        var values = 0
        try writeAtomically(to: output) { write in
            try header.withUnsafeBytes { try write($0) }
            for (name, shape) in entries {
                let tensor = try source.tensor(name, shape: shape)
                values += tensor.count
                try tensor.withUnsafeBufferPointer { try write(UnsafeRawBufferPointer($0)) }  // little-endian fp32
            }
        }
        var sidecar: String?
        if copiesSidecar {
            if overwrite { try? fileManager.removeItem(atPath: sidecarOut) }
            do {
                try fileManager.copyItem(atPath: sidecarIn, toPath: sidecarOut)
            } catch {
                throw RAGSegIOError(
                    path: sidecarOut, message: "cannot copy the model description \(sidecarIn): \(error)")
            }
            sidecar = sidecarOut
        }
        return Summary(tensors: entries.count, values: values, sidecar: sidecar)
    }

    /// Streams bytes into a temporary file beside `path`, renamed over `path` once `body` returns.
    static func writeAtomically(
        to path: String, _ body: ((UnsafeRawBufferPointer) throws -> Void) throws -> Void
    ) throws {
        let temporary = "\(path).tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else {
            throw RAGSegIOError(path: path, message: "cannot create \(temporary): \(lastErrnoMessage())")
        }
        var done = false
        defer {
            if !done { unlink(temporary) }
        }
        do {
            defer { close(fd) }
            try body { buffer in
                var written = 0
                while written < buffer.count {
                    let n = write(fd, buffer.baseAddress! + written, buffer.count - written)
                    if n < 0 {
                        if errno == EINTR { continue }
                        throw RAGSegIOError(path: path, message: "write failed: \(lastErrnoMessage())")
                    }
                    written += n
                }
            }
        }
        guard rename(temporary, path) == 0 else {
            throw RAGSegIOError(path: path, message: "cannot rename \(temporary) into place: \(lastErrnoMessage())")
        }
        done = true
    }
}

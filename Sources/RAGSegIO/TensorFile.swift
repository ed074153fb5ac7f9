// A weights file whose tensors are looked up by name, whatever its format: safetensors or a PyTorch
// checkpoint (`.pt` / `.pth`, torch.save's zip format). The model loaders open weights through
// `TensorFiles.open` and never care which one they got.
import TensorCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public protocol TensorFile: TensorSource, Sendable {
    var path: String { get }
    /// Tensor names in sorted order.
    var names: [String] { get }
    func contains(_ name: String) -> Bool
    /// dtype name as safetensors spells it ("F32", "BF16", ...) and shape, or nil if absent.
    func entry(_ name: String) -> (dtype: String, shape: [Int])?
    /// The tensor as fp32.
    func tensor(_ name: String) throws -> Tensor
}

extension SafeTensors: TensorFile {}
extension TorchCheckpoint: TensorFile {}

public enum TensorFiles {
    /// Opens `path` by its content: a zip archive is a PyTorch checkpoint, anything else must be safetensors
    /// (whose first 8 bytes are a length, so no magic number identifies it).
    public static func open(_ path: String) throws -> any TensorFile {
        let head = try readFirstBytes(path, count: TorchCheckpoint.legacyMagic.count)
        if head.starts(with: [0x50, 0x4B, 0x03, 0x04]) || head.starts(with: [0x50, 0x4B, 0x05, 0x06]) {
            return try TorchCheckpoint(path: path)
        }
        if head == TorchCheckpoint.legacyMagic {
            throw RAGSegIOError(path: path, message: TorchCheckpoint.legacyMessage)
        }
        let lower = path.lowercased()
        if [".pt", ".pth", ".ckpt", ".bin"].contains(where: { lower.hasSuffix($0) }) && !lower.hasSuffix(".safetensors")
        {
            // Named like a PyTorch file but not one: say that, rather than a confusing safetensors header error.
            throw RAGSegIOError(
                path: path,
                message: "not a PyTorch zip checkpoint (no zip signature at the start) and not safetensors either")
        }
        return try SafeTensors(path: path)
    }
}

/// Up to `count` bytes from the start of the file (fewer when it is shorter).
private func readFirstBytes(_ path: String, count: Int) throws -> [UInt8] {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { throw RAGSegIOError(path: path, message: "cannot open: \(lastErrnoMessage())") }
    defer { close(fd) }
    var bytes = [UInt8](repeating: 0, count: count)
    let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress, count) }
    guard n >= 0 else { throw RAGSegIOError(path: path, message: "read failed: \(lastErrnoMessage())") }
    return Array(bytes.prefix(n))
}

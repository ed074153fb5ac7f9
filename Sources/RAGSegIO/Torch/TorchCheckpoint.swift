// A PyTorch checkpoint (`torch.save` zip format) read without Python: the archive's `data.pkl` is run by
// the restricted unpickler (Unpickler.swift), which finds the state dict's tensors as strided views of the
// `data/<key>` storages; the storages stay in the memory-mapped file and a tensor is converted to fp32 only
// when asked for. Accepted layouts: a bare state dict (torch hub DINOv2 `.pth`) or `{"model": state_dict}`
// (the official SAM 2 `.pt`); entries that are not tensors are ignored.
import CZlib
import TensorCore

public struct TorchCheckpoint: Sendable {
    struct Entry: Sendable {
        let dtype: SafeTensors.DType
        let shape: [Int]
        let strides: [Int]
        let count: Int
        /// File offset of the tensor's first element (storage start + storage offset).
        let begin: Int

        /// Row-major without gaps (strides of axes of size 1 do not matter).
        var isContiguous: Bool {
            var expected = 1
            for (size, stride) in zip(shape, strides).reversed() where size != 1 {
                if stride != expected { return false }
                expected *= size
            }
            return true
        }
    }

    public let path: String
    /// Tensor names in sorted order.
    public let names: [String]
    /// Where the state dict was found: "" for a bare state dict, else the key holding it ("model").
    public let stateDictKey: String
    private let entries: [String: Entry]
    private let file: MappedFile

    /// Largest `data.pkl` accepted (SAM 2 large's is ~100 kB; the safetensors header limit is the same).
    static let maxPickleBytes = 100_000_000

    /// The legacy (before PyTorch 1.6) format starts with a pickled magic number instead of a zip header.
    static let legacyMagic: [UInt8] = [
        0x80, 0x02, 0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19,
    ]

    public init(path: String) throws {
        let file = try MappedFile(path: path, minimumSize: 22, what: "a PyTorch zip checkpoint (22-byte end record)")
        func fail(_ message: String) -> RAGSegIOError { RAGSegIOError(path: path, message: message) }
        if let head = file.bytes(at: 0, count: TorchCheckpoint.legacyMagic.count),
            Array(head) == TorchCheckpoint.legacyMagic
        {
            throw fail(TorchCheckpoint.legacyMessage)
        }
        let archive = try ZipArchive(file: file, path: path)

        // `<archive name>/data.pkl`: the archive name is the saved file's stem, so it is found, not assumed.
        let pickles = archive.names.filter {
            $0.hasSuffix("/data.pkl") && $0.split(separator: "/", omittingEmptySubsequences: false).count == 2
        }
        guard pickles.count == 1, let pickleEntry = archive.entries[pickles[0]] else {
            throw fail(
                pickles.isEmpty
                    ? "zip archive without '<name>/data.pkl': not a PyTorch checkpoint"
                    : "zip archive with \(pickles.count) data.pkl entries: not a single PyTorch checkpoint")
        }
        let prefix = String(pickles[0].dropLast("data.pkl".count))
        if let order = archive.entries[prefix + "byteorder"] {
            let text = String(decoding: try archive.data(order), as: UTF8.self)
            guard text == "little" else {
                throw fail("byte order '\(text.prefix(20))' is not supported (only little-endian checkpoints)")
            }
        }
        guard pickleEntry.size <= TorchCheckpoint.maxPickleBytes else {
            throw fail(
                "\(pickles[0]) is \(pickleEntry.size) bytes, over the \(TorchCheckpoint.maxPickleBytes)-byte limit")
        }
        let pickle = try archive.data(pickleEntry)
        let crc = UInt32(crc32(0, pickle.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt32(pickle.count)))
        guard crc == pickleEntry.crc32 else {
            throw fail("\(pickles[0]) fails its CRC-32 check (damaged file)")
        }

        var unpickler = Unpickler(pickle) { key in archive.entries[prefix + "data/" + key]?.size }
        let root: Int
        do {
            root = try unpickler.run()
        } catch let error as UnpicklingError {
            throw fail("\(pickles[0]) at byte \(error.offset): \(error.message)")
        }
        let arena = unpickler.arena

        // The state dict: the root, or the root's "model" entry (official SAM 2 training checkpoints).
        guard case .dict(let rootPairs, _) = arena[root] else {
            throw fail("\(pickles[0]) holds no dict (expected a state dict or {\"model\": state_dict})")
        }
        var stateDict = rootPairs
        var stateDictKey = ""
        if let model = rootPairs.last(where: {
            if case .string("model") = arena[$0.key] { true } else { false }
        }), case .dict(let pairs, _) = arena[model.value] {
            stateDict = pairs
            stateDictKey = "model"
        }

        var storageStarts: [Int] = []
        for storage in unpickler.storages {
            let entry = archive.entries[prefix + "data/" + storage.key]!  // checked while unpickling
            storageStarts.append(try archive.data(entry).baseAddress! - file.base)
        }
        var entries: [String: Entry] = [:]
        for (key, value) in stateDict {
            guard case .string(let name) = arena[key], case .tensor(let view) = arena[value] else { continue }
            let dtype = unpickler.storages[view.storage].dtype
            entries[name] = Entry(
                dtype: dtype, shape: view.shape, strides: view.strides, count: view.count,
                begin: storageStarts[view.storage] + view.offset * dtype.byteSize)
        }
        guard !entries.isEmpty else {
            throw fail(
                stateDictKey.isEmpty
                    ? "\(pickles[0]) holds no tensors (expected a state dict or {\"model\": state_dict})"
                    : "\(pickles[0]): the state dict under 'model' holds no tensors")
        }
        self.path = path
        self.file = file
        self.entries = entries
        self.names = entries.keys.sorted()
        self.stateDictKey = stateDictKey
    }

    static let legacyMessage = """
        legacy PyTorch checkpoint (the format torch.save wrote before PyTorch 1.6) is not supported: re-save it \
        with a current PyTorch (torch.save(torch.load(f, weights_only=True), f2)) or convert it to safetensors
        """

    public func contains(_ name: String) -> Bool { entries[name] != nil }

    /// dtype name as safetensors spells it ("F32", "BF16", ...) and shape, or nil if absent.
    public func entry(_ name: String) -> (dtype: String, shape: [Int])? {
        guard let e = entries[name] else { return nil }
        return (e.dtype.rawValue, e.shape)
    }

    /// The tensor as fp32, contiguous (a strided view is gathered row by row); conversions as in SafeTensors.
    public func tensor(_ name: String) throws -> Tensor {
        guard let e = entries[name] else {
            throw RAGSegIOError(path: path, message: "no tensor named '\(name)' (file has \(entries.count) tensors)")
        }
        let source = file.base + e.begin
        return Tensor(shape: e.shape) { out in
            guard e.count > 0, let dst = out.baseAddress else { return }
            if e.isContiguous {  // the usual case: one conversion of the whole range
                widenToFloat(source, dtype: e.dtype, count: e.count, elementStride: 1, into: dst)
                return
            }
            let shape = e.shape.isEmpty ? [1] : e.shape
            let strides = e.strides.isEmpty ? [1] : e.strides
            let inner = shape[shape.count - 1]
            var index = [Int](repeating: 0, count: shape.count - 1)
            var written = 0
            while written < e.count {
                var element = 0
                for d in index.indices { element += index[d] * strides[d] }
                widenToFloat(
                    source + element * e.dtype.byteSize, dtype: e.dtype, count: inner,
                    elementStride: strides[strides.count - 1], into: dst + written)
                written += inner
                var d = index.count - 1
                while d >= 0 {
                    index[d] += 1
                    if index[d] < shape[d] { break }
                    index[d] = 0
                    d -= 1
                }
            }
        }
    }
}

/// A PyTorch checkpoint as a source of model weights, keys as stored.
extension TorchCheckpoint: TensorSource {
    public func tensor(_ key: String, shape expected: [Int]) throws -> Tensor {
        guard let entry = entry(key) else { throw RAGSegIOError(path: path, message: "missing tensor '\(key)'") }
        guard entry.shape == expected else {
            throw RAGSegIOError(path: path, message: "tensor '\(key)' has shape \(entry.shape), expected \(expected)")
        }
        return try tensor(key)
    }

    public func shape(_ key: String) -> [Int]? { entry(key)?.shape }
}

// safetensors reader (memory-mapped) and a small fp32 writer.
//
// Format (https://github.com/huggingface/safetensors): an 8-byte little-endian header length N, N bytes
// of JSON `{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}`,
// then the data area; offsets are relative to the start of the data area. The header is untrusted:
// every claim in it is checked against the file before any tensor byte is read.
import Foundation
import TensorCore

/// A safetensors file: the header is parsed and validated at init; tensors are converted on demand.
public struct SafeTensors: Sendable {
    /// Element types of the format that we can read. Anything else in a header is an error at init.
    public enum DType: String, Sendable, CaseIterable {
        case f64 = "F64", f32 = "F32", f16 = "F16", bf16 = "BF16"
        case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8"
        case u64 = "U64", u32 = "U32", u16 = "U16", u8 = "U8"
        case bool = "BOOL"

        public var byteSize: Int {
            switch self {
            case .f64, .i64, .u64: 8
            case .f32, .i32, .u32: 4
            case .f16, .bf16, .i16, .u16: 2
            case .i8, .u8, .bool: 1
            }
        }
    }

    struct Entry: Sendable {
        let dtype: DType
        let shape: [Int]
        let count: Int
        /// Byte range in the whole file (already shifted past the header).
        let begin: Int
        let end: Int
    }

    public let path: String
    /// Tensor names in sorted order (the format stores an unordered JSON object).
    public let names: [String]
    /// The optional `__metadata__` string map.
    public let metadata: [String: String]
    private let entries: [String: Entry]
    private let file: MappedFile

    /// Largest header we accept; the reference implementation uses the same 100 MB cap.
    static let maxHeaderBytes = 100_000_000

    public init(path: String) throws {
        let file = try MappedFile(path: path, minimumSize: 8, what: "a safetensors header (8-byte length prefix)")
        func fail(_ message: String) -> RAGSegIOError { RAGSegIOError(path: path, message: message) }

        let headerLength = UInt64(littleEndian: file.base.loadUnaligned(as: UInt64.self))
        let available = file.size - 8
        guard headerLength <= UInt64(available) else {
            throw fail(
                """
                header claims \(headerLength) bytes but only \(available) bytes follow the length prefix (truncated or \
                not a safetensors file)
                """
            )
        }
        let headerBytes = Int(headerLength)
        guard headerBytes <= SafeTensors.maxHeaderBytes else {
            throw fail("header of \(headerBytes) bytes exceeds the \(SafeTensors.maxHeaderBytes)-byte limit")
        }
        guard headerBytes >= 2 else { throw fail("header of \(headerBytes) bytes cannot hold a JSON object") }
        let dataStart = 8 + headerBytes
        let dataSize = file.size - dataStart

        let json = Data(bytes: file.base + 8, count: headerBytes)
        let parsed: Any
        do {
            parsed = try JSONSerialization.jsonObject(with: json, options: [])
        } catch {
            throw fail("header is not valid JSON (\(headerBytes) bytes after the length prefix)")
        }
        guard let object = parsed as? [String: Any] else { throw fail("header JSON is not an object") }

        var metadata: [String: String] = [:]
        var entries: [String: Entry] = [:]
        for (name, value) in object {
            if name == "__metadata__" {
                guard let map = value as? [String: Any] else { throw fail("__metadata__ is not a JSON object") }
                for (key, item) in map {
                    guard let text = item as? String else {
                        throw fail("__metadata__ value for '\(key)' is not a string")
                    }
                    metadata[key] = text
                }
                continue
            }
            guard let fields = value as? [String: Any] else {
                throw fail("tensor '\(name)': header entry is not a JSON object")
            }
            guard let dtypeName = fields["dtype"] as? String else {
                throw fail("tensor '\(name)': missing or non-string \"dtype\"")
            }
            guard let dtype = DType(rawValue: dtypeName) else {
                throw fail(
                    """
                    tensor '\(name)': unknown dtype '\(dtypeName)' (known: \
                    \(DType.allCases.map(\.rawValue).joined(separator: ", ")))
                    """
                )
            }
            guard let shapeValues = fields["shape"] as? [Any],
                let shape = SafeTensors.integers(shapeValues), shape.allSatisfy({ $0 >= 0 })
            else {
                throw fail("tensor '\(name)': \"shape\" is not a list of non-negative integers")
            }
            guard let offsetValues = fields["data_offsets"] as? [Any],
                let offsets = SafeTensors.integers(offsetValues), offsets.count == 2
            else {
                throw fail("tensor '\(name)': \"data_offsets\" is not a pair of integers")
            }
            let (begin, end) = (offsets[0], offsets[1])
            guard begin >= 0, begin <= end else {
                throw fail("tensor '\(name)': data_offsets [\(begin), \(end)] are not an increasing non-negative range")
            }
            guard end <= dataSize else {
                throw fail(
                    """
                    tensor '\(name)': data_offsets [\(begin), \(end)] run past the end of the data area (\(dataSize) \
                    bytes; file truncated?)
                    """
                )
            }
            guard let count = checkedElementCount(shape), let bytes = checkedProduct(count, dtype.byteSize) else {
                throw fail("tensor '\(name)': shape \(shape) is too large")
            }
            guard bytes == end - begin else {
                throw fail(
                    """
                    tensor '\(name)' claims \(describeShape(shape)) \(dtype.rawValue) (\(bytes) bytes) but its data \
                    range is \(end - begin) bytes
                    """
                )
            }
            entries[name] = Entry(
                dtype: dtype, shape: shape, count: count, begin: dataStart + begin, end: dataStart + end)
        }

        // Ranges must not overlap (each byte belongs to at most one tensor). Empty tensors own no bytes.
        let ordered = entries.filter { $0.value.end > $0.value.begin }.sorted { $0.value.begin < $1.value.begin }
        for (previous, next) in zip(ordered, ordered.dropFirst()) where next.value.begin < previous.value.end {
            throw fail("tensors '\(previous.key)' and '\(next.key)' have overlapping data ranges")
        }

        self.path = path
        self.file = file
        self.entries = entries
        self.metadata = metadata
        self.names = entries.keys.sorted()
    }

    /// JSON numbers that are exact integers (JSONSerialization hands us NSNumber / Int / Double).
    /// (`is Bool` cannot reject JSON booleans here: on Linux every NSNumber 0/1 matches it; the byte
    /// count check rejects any nonsense that slips through.)
    private static func integers(_ values: [Any]) -> [Int]? {
        var out: [Int] = []
        out.reserveCapacity(values.count)
        for value in values {
            if let i = value as? Int { out.append(i); continue }
            if let d = value as? Double, d.rounded() == d, abs(d) < 9.0e18 { out.append(Int(d)); continue }
            return nil
        }
        return out
    }

    public func contains(_ name: String) -> Bool { entries[name] != nil }

    /// dtype name as written in the file ("F32", "BF16", ...) and shape, or nil if absent.
    public func entry(_ name: String) -> (dtype: String, shape: [Int])? {
        guard let e = entries[name] else { return nil }
        return (e.dtype.rawValue, e.shape)
    }

    /// The tensor as fp32. F16/BF16 are widened exactly; F64 is rounded to nearest; integer and BOOL
    /// types are converted to their float values (large 64-bit integers round).
    public func tensor(_ name: String) throws -> Tensor {
        guard let e = entries[name] else {
            throw RAGSegIOError(path: path, message: "no tensor named '\(name)' (file has \(entries.count) tensors)")
        }
        let source = file.base + e.begin  // may be unaligned: the format does not promise alignment
        return Tensor(shape: e.shape) { out in
            guard e.count > 0, let dst = out.baseAddress else { return }
            widenToFloat(source, dtype: e.dtype, count: e.count, elementStride: 1, into: dst)
        }
    }

    /// Writes `tensors` as F32 in name order (data laid out in the same order), header padded with spaces
    /// so the data area starts 8-byte aligned. Duplicate names are an error. The file appears atomically.
    public static func write(_ tensors: [(String, Tensor)], to path: String) throws {
        let sorted = tensors.sorted { $0.0 < $1.0 }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.0 == b.0 {
            throw RAGSegIOError(path: path, message: "duplicate tensor name '\(a.0)'")
        }
        for (name, _) in sorted where name == "__metadata__" {
            throw RAGSegIOError(path: path, message: "'__metadata__' is reserved and cannot name a tensor")
        }
        let (headerBytes, dataBytes) = header(sorted.map { ($0.0, $0.1.shape) }, metadata: [:])
        var out = [UInt8]()
        out.reserveCapacity(headerBytes.count + dataBytes)
        out.append(contentsOf: headerBytes)
        for (_, tensor) in sorted {
            tensor.withUnsafeBufferPointer { values in
                // Little-endian host: fp32 bytes go out as they are.
                out.append(contentsOf: UnsafeRawBufferPointer(values))
            }
        }
        try writeFileAtomically(out, to: path)
    }

    /// The length prefix and JSON header for F32 tensors laid out in the given order (`__metadata__` first
    /// when there is any), padded with spaces so the data area starts 8-byte aligned; and the data size.
    static func header(_ entries: [(name: String, shape: [Int])], metadata: [String: String]) -> (
        bytes: [UInt8], dataBytes: Int
    ) {
        var header = "{"
        if !metadata.isEmpty {
            let pairs = metadata.sorted { $0.key < $1.key }.map { "\(jsonString($0.key)):\(jsonString($0.value))" }
            header += "\"__metadata__\":{\(pairs.joined(separator: ","))}"
        }
        var offset = 0
        for (name, shape) in entries {
            let bytes = shape.reduce(1, *) * 4
            if header.count > 1 { header += "," }
            header +=
                "\(jsonString(name)):{\"dtype\":\"F32\",\"shape\":[\(shape.map(String.init).joined(separator: ","))],"
                + "\"data_offsets\":[\(offset),\(offset + bytes)]}"
            offset += bytes
        }
        header += "}"
        var headerBytes = Array(header.utf8)
        while (8 + headerBytes.count) % 8 != 0 { headerBytes.append(0x20) }
        var out = [UInt8]()
        withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { out.append(contentsOf: $0) }
        return (out + headerBytes, offset)
    }

    /// A JSON string literal for `text`.
    static func jsonString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    out +=
                        "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count)
                        + String(scalar.value, radix: 16)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

/// A safetensors file as a source of model weights, keys as stored (a model with several key layouts
/// wraps it in its own source that renames).
extension SafeTensors: TensorSource {
    public func tensor(_ key: String, shape expected: [Int]) throws -> Tensor {
        guard let entry = entry(key) else { throw RAGSegIOError(path: path, message: "missing tensor '\(key)'") }
        guard entry.shape == expected else {
            throw RAGSegIOError(path: path, message: "tensor '\(key)' has shape \(entry.shape), expected \(expected)")
        }
        return try tensor(key)
    }

    public func shape(_ key: String) -> [Int]? { entry(key)?.shape }
}

// safetensors reader (memory-mapped) and a small fp32 writer.
//
// Format (https://github.com/huggingface/safetensors): an 8-byte little-endian header length N, N bytes
// of JSON `{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}`,
// then the data area; offsets are relative to the start of the data area. The header is untrusted:
// every claim in it is checked against the file before any tensor byte is read.
import Foundation
import TensorCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only memory map that is unmapped when the last `SafeTensors` copy using it goes away.
private final class MappedFile: @unchecked Sendable {
    // @unchecked: the mapping is PROT_READ and never changes after init, so sharing it is safe.
    let base: UnsafeRawPointer
    let size: Int

    init(path: String) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw RAGSegIOError(path: path, message: "cannot open: \(lastErrnoMessage())") }
        defer { close(fd) }  // the mapping stays valid after close
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw RAGSegIOError(path: path, message: "cannot stat: \(lastErrnoMessage())")
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw RAGSegIOError(path: path, message: "not a regular file") }
        let size = Int(info.st_size)
        guard size >= 8 else {
            throw RAGSegIOError(
                path: path, message: "file is \(size) bytes, too short for a safetensors header (8-byte length prefix)")
        }
        guard let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), mapped != MAP_FAILED else {
            throw RAGSegIOError(path: path, message: "mmap failed: \(lastErrnoMessage())")
        }
        self.base = UnsafeRawPointer(mapped)
        self.size = size
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: base), size) }
}

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
        let file = try MappedFile(path: path)
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
            let n = e.count
            guard n > 0, let dst = out.baseAddress else { return }
            switch e.dtype {
            case .f32:
                // Little-endian host (x86-64, arm64): the bytes are already our floats.
                UnsafeMutableRawPointer(dst).copyMemory(from: source, byteCount: n * 4)
            case .f16:
                for i in 0..<n {
                    dst[i] = floatFromHalfBits(
                        UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
                }
            case .bf16:
                for i in 0..<n {
                    dst[i] = floatFromBFloat16Bits(
                        UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
                }
            case .f64:
                for i in 0..<n {
                    dst[i] = Float(
                        Double(
                            bitPattern: UInt64(
                                littleEndian: source.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))))
                }
            case .i64:
                for i in 0..<n {
                    dst[i] = Float(Int64(littleEndian: source.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)))
                }
            case .u64:
                for i in 0..<n {
                    dst[i] = Float(UInt64(littleEndian: source.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))
                }
            case .i32:
                for i in 0..<n {
                    dst[i] = Float(Int32(littleEndian: source.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)))
                }
            case .u32:
                for i in 0..<n {
                    dst[i] = Float(UInt32(littleEndian: source.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                }
            case .i16:
                for i in 0..<n {
                    dst[i] = Float(Int16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self)))
                }
            case .u16:
                for i in 0..<n {
                    dst[i] = Float(UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
                }
            case .i8:
                for i in 0..<n { dst[i] = Float(source.load(fromByteOffset: i, as: Int8.self)) }
            case .u8:
                for i in 0..<n { dst[i] = Float(source.load(fromByteOffset: i, as: UInt8.self)) }
            case .bool:
                for i in 0..<n { dst[i] = source.load(fromByteOffset: i, as: UInt8.self) != 0 ? 1 : 0 }
            }
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
        var header = "{"
        var offset = 0
        for (index, (name, tensor)) in sorted.enumerated() {
            let bytes = tensor.count * 4
            if index > 0 { header += "," }
            let shape = tensor.shape.map(String.init).joined(separator: ",")
            header +=
                "\(jsonString(name)):{\"dtype\":\"F32\",\"shape\":[\(shape)],"
                + "\"data_offsets\":[\(offset),\(offset + bytes)]}"
            offset += bytes
        }
        header += "}"
        var headerBytes = Array(header.utf8)
        while (8 + headerBytes.count) % 8 != 0 { headerBytes.append(0x20) }

        var out = [UInt8]()
        out.reserveCapacity(8 + headerBytes.count + offset)
        withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: headerBytes)
        for (_, tensor) in sorted {
            tensor.withUnsafeBufferPointer { values in
                // Little-endian host: fp32 bytes go out as they are.
                out.append(contentsOf: UnsafeRawBufferPointer(values))
            }
        }
        try writeFileAtomically(out, to: path)
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

/// IEEE half -> float, exact (every half is representable as a float), including subnormals, inf, NaN.
@inline(__always) func floatFromHalfBits(_ h: UInt16) -> Float {
    let sign: UInt32 = UInt32(h & 0x8000) << 16
    let exponent = UInt32(h >> 10) & 0x1f
    let mantissa = UInt32(h & 0x3ff)
    if exponent == 0 {
        // Zero or subnormal: mantissa * 2^-24 (exact in float).
        let magnitude = Float(mantissa) * 0x1p-24
        return Float(bitPattern: sign | magnitude.bitPattern)
    }
    if exponent == 31 { return Float(bitPattern: sign | 0x7f80_0000 | (mantissa << 13)) }  // inf / NaN
    return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))  // rebias 15 -> 127
}

/// bfloat16 is the top half of a float.
@inline(__always) func floatFromBFloat16Bits(_ b: UInt16) -> Float {
    Float(bitPattern: UInt32(b) << 16)
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

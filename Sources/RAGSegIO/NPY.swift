// NumPy .npy reader and writer (format versions 1.0, 2.0 and 3.0 read; 1.0 written).
//
// Layout: "\x93NUMPY", major, minor, header length (uint16 LE in v1, uint32 LE in v2/v3), then a Python
// dict literal such as {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } padded with spaces and
// a newline, then the raw C-order data. We parse the literal with a tiny tokenizer instead of trusting it.
import TensorCore

/// An array read from a .npy file with its element type kept.
public struct NPYArray: Sendable, Equatable {
    public enum Values: Sendable, Equatable {
        /// '<f4' and '<f8' (float64 rounded to float32).
        case float32([Float])
        /// '|u1' and '|b1' (bool as 0/1).
        case uint8([UInt8])
        /// '<i8' and '<i4'.
        case int64([Int64])
    }

    public var shape: [Int]
    public var values: Values

    public init(shape: [Int], values: Values) {
        self.shape = shape
        self.values = values
    }

    public var float32: [Float]? { if case .float32(let v) = values { v } else { nil } }
    public var uint8: [UInt8]? { if case .uint8(let v) = values { v } else { nil } }
    public var int64: [Int64]? { if case .int64(let v) = values { v } else { nil } }

    /// All values as floats (integers convert exactly up to 2^24).
    public var floats: [Float] {
        switch values {
        case .float32(let v): v
        case .uint8(let v): v.map { Float($0) }
        case .int64(let v): v.map { Float($0) }
        }
    }
}

public enum NPY {
    /// Element types we read, keyed by numpy's descr string. Big-endian and other types are rejected.
    private enum Descr: String {
        case float32 = "<f4", float64 = "<f8", uint8 = "|u1", int64 = "<i8", int32 = "<i4", bool = "|b1"
        var byteSize: Int {
            switch self {
            case .float64, .int64: 8
            case .float32, .int32: 4
            case .uint8, .bool: 1
            }
        }
    }

    private static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // "\x93NUMPY"

    /// Reads any supported .npy file as fp32.
    public static func read(_ path: String) throws -> Tensor {
        let array = try readArray(path)
        return Tensor(shape: array.shape, data: array.floats)
    }

    /// Reads a .npy file keeping the element type (see `NPYArray.Values` for how types map).
    public static func readArray(_ path: String) throws -> NPYArray {
        let bytes = try readFileBytes(path)
        return try parse(bytes, path: path)
    }

    static func parse(_ bytes: [UInt8], path: String) throws -> NPYArray {
        func fail(_ message: String) -> RAGSegIOError { RAGSegIOError(path: path, message: message) }
        guard bytes.count >= 10, Array(bytes[0..<6]) == magic else {
            throw fail("not a .npy file (missing \\x93NUMPY magic)")
        }
        let major = bytes[6]
        let headerLength: Int
        let headerStart: Int
        switch major {
        case 1:
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw fail("truncated .npy header") }
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
            headerStart = 12
        default:
            throw fail("unsupported .npy format version \(major).\(bytes[7])")
        }
        guard headerLength <= bytes.count - headerStart else {
            throw fail(
                """
                header claims \(headerLength) bytes but the file has only \(bytes.count - headerStart) after the \
                prefix (truncated)
                """
            )
        }
        let headerText = String(decoding: bytes[headerStart..<(headerStart + headerLength)], as: UTF8.self)
        guard case .dict(let header)? = try? PythonLiteral.parse(headerText) else {
            throw fail("header is not a Python dict literal: \(headerText.prefix(120))")
        }
        guard case .string(let descrText)? = header["descr"] else { throw fail("header has no 'descr' string") }
        guard let descr = Descr(rawValue: descrText) else {
            throw fail("unsupported dtype '\(descrText)' (supported: <f4 <f8 |u1 <i8 <i4 |b1, little-endian)")
        }
        guard case .bool(let fortranOrder)? = header["fortran_order"] else {
            throw fail("header has no 'fortran_order' flag")
        }
        guard !fortranOrder else {
            throw fail("Fortran-order arrays are not supported (save with np.ascontiguousarray)")
        }
        guard case .tuple(let dims)? = header["shape"] else { throw fail("header has no 'shape' tuple") }
        var shape: [Int] = []
        for dim in dims {
            guard case .int(let d) = dim, d >= 0 else {
                throw fail("shape \(headerText) has a non-integer or negative dimension")
            }
            shape.append(d)
        }
        guard let count = checkedElementCount(shape), let byteCount = checkedProduct(count, descr.byteSize) else {
            throw fail("shape \(shape) is too large")
        }
        let dataStart = headerStart + headerLength
        let available = bytes.count - dataStart
        guard available == byteCount else {
            throw fail(
                """
                shape \(shape) of \(descrText) needs \(byteCount) data bytes but the file has \
                \(available)\(available < byteCount ? " (truncated)" : "")
                """
            )
        }

        return bytes.withUnsafeBytes { raw -> NPYArray in
            let source = raw.baseAddress! + dataStart
            switch descr {
            case .float32:
                return NPYArray(
                    shape: shape,
                    values: .float32(
                        (0..<count).map {
                            Float(
                                bitPattern: UInt32(
                                    littleEndian: source.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self)))
                        }))
            case .float64:
                return NPYArray(
                    shape: shape,
                    values: .float32(
                        (0..<count).map {
                            Float(
                                Double(
                                    bitPattern: UInt64(
                                        littleEndian: source.loadUnaligned(fromByteOffset: 8 * $0, as: UInt64.self))))
                        }))
            case .uint8:
                return NPYArray(
                    shape: shape, values: .uint8(Array(UnsafeRawBufferPointer(start: source, count: count))))
            case .bool:
                return NPYArray(
                    shape: shape,
                    values: .uint8((0..<count).map { source.load(fromByteOffset: $0, as: UInt8.self) != 0 ? 1 : 0 }))
            case .int64:
                return NPYArray(
                    shape: shape,
                    values: .int64(
                        (0..<count).map {
                            Int64(littleEndian: source.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self))
                        }))
            case .int32:
                return NPYArray(
                    shape: shape,
                    values: .int64(
                        (0..<count).map {
                            Int64(Int32(littleEndian: source.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self)))
                        }))
            }
        }
    }

    /// Writes `t` as '<f4'.
    public static func write(_ t: Tensor, to path: String) throws {
        var data = [UInt8]()
        data.reserveCapacity(t.count * 4)
        t.withUnsafeBufferPointer { values in
            for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
        }
        try write(descr: "<f4", shape: t.shape, data: data, to: path)
    }

    /// Writes `uint8` as '|u1'.
    public static func write(uint8: [UInt8], shape: [Int], to path: String) throws {
        try checkCount(uint8.count, shape: shape, path: path)
        try write(descr: "|u1", shape: shape, data: uint8, to: path)
    }

    /// Writes `int64` as '<i8'.
    public static func write(int64: [Int64], shape: [Int], to path: String) throws {
        try checkCount(int64.count, shape: shape, path: path)
        var data = [UInt8]()
        data.reserveCapacity(int64.count * 8)
        for v in int64 { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
        try write(descr: "<i8", shape: shape, data: data, to: path)
    }

    private static func checkCount(_ count: Int, shape: [Int], path: String) throws {
        guard let expected = checkedElementCount(shape), expected == count else {
            throw RAGSegIOError(path: path, message: "shape \(shape) does not match \(count) values")
        }
    }

    /// Header as numpy writes it: padded with spaces to a 64-byte boundary, ending in '\n'.
    /// Version 1.0 unless the header is too long for its 16-bit length (then 2.0).
    private static func write(descr: String, shape: [Int], data: [UInt8], to path: String) throws {
        let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var header = Array("{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shapeText), }".utf8)
        var prefixLength = 10
        if (header.count + 1 + prefixLength + 63) / 64 * 64 - prefixLength > 0xFFFF { prefixLength = 12 }
        while (prefixLength + header.count + 1) % 64 != 0 { header.append(0x20) }
        header.append(0x0A)
        var out = magic
        if prefixLength == 10 {
            out += [1, 0, UInt8(header.count & 0xFF), UInt8(header.count >> 8)]
        } else {
            let n = UInt32(header.count)
            out += [2, 0, UInt8(n & 0xFF), UInt8((n >> 8) & 0xFF), UInt8((n >> 16) & 0xFF), UInt8(n >> 24)]
        }
        out += header
        out += data
        try writeFileAtomically(out, to: path)
    }
}

/// The subset of Python literals that appear in .npy headers: dicts, tuples, strings, ints, booleans.
enum PythonLiteral: Equatable {
    case dict([String: PythonLiteral])
    case tuple([PythonLiteral])
    case string(String)
    case int(Int)
    case bool(Bool)

    struct Malformed: Error {}

    static func parse(_ text: String) throws -> PythonLiteral {
        var parser = Parser(scalars: Array(text.unicodeScalars))
        let value = try parser.value()
        parser.skipSpace()
        guard parser.position == parser.scalars.count else { throw Malformed() }
        return value
    }

    private struct Parser {
        let scalars: [Unicode.Scalar]
        var position = 0
        /// Nesting depth: a hostile header of a million '(' must fail cleanly, not overflow the stack.
        var depth = 0
        static let maxDepth = 16

        mutating func skipSpace() {
            while position < scalars.count, scalars[position].properties.isWhitespace { position += 1 }
        }

        mutating func peek() -> Unicode.Scalar? {
            skipSpace()
            return position < scalars.count ? scalars[position] : nil
        }

        mutating func expect(_ c: Unicode.Scalar) throws {
            guard peek() == c else { throw Malformed() }
            position += 1
        }

        mutating func value() throws -> PythonLiteral {
            guard let c = peek(), depth < Parser.maxDepth else { throw Malformed() }
            depth += 1
            defer { depth -= 1 }
            switch c {
            case "{":
                position += 1
                var dict: [String: PythonLiteral] = [:]
                while peek() != "}" {
                    guard case .string(let key) = try value() else { throw Malformed() }
                    try expect(":")
                    dict[key] = try value()
                    if peek() == "," { position += 1 } else { break }
                }
                try expect("}")
                return .dict(dict)
            case "(", "[":
                let close: Unicode.Scalar = c == "(" ? ")" : "]"
                position += 1
                var items: [PythonLiteral] = []
                while peek() != close {
                    items.append(try value())
                    if peek() == "," { position += 1 } else { break }
                }
                try expect(close)
                return .tuple(items)
            case "'", "\"":
                position += 1
                var text = ""
                while position < scalars.count, scalars[position] != c {
                    text.unicodeScalars.append(scalars[position])
                    position += 1
                }
                guard position < scalars.count else { throw Malformed() }
                position += 1
                return .string(text)
            default:
                var word = ""
                while position < scalars.count,
                    scalars[position].properties.isAlphabetic || ("0"..."9").contains(scalars[position])
                        || scalars[position] == "-" || scalars[position] == "_"
                {
                    word.unicodeScalars.append(scalars[position])
                    position += 1
                }
                switch word {
                case "True": return .bool(true)
                case "False": return .bool(false)
                default:
                    // numpy < 2 could write shapes like (3L,) on Python 2; accept the suffix.
                    let digits = word.hasSuffix("L") ? String(word.dropLast()) : word
                    guard let i = Int(digits) else { throw Malformed() }
                    return .int(i)
                }
            }
        }
    }
}

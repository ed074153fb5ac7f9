// Recognising NIfTI bytes that arrive without a file name (HTTP uploads): by their magic numbers, the
// gzip signature and the NIfTI header inside; and the header alone, to check a size limit before reading.

extension NIfTI {
    /// Whether `bytes` hold a NIfTI-1 or NIfTI-2 single file, plain or gzip-compressed (gzip: `1f 8b`, and
    /// the first 540 inflated bytes carry a NIfTI sizeof_hdr and magic).
    public static func looksLikeNIfTI(_ bytes: [UInt8]) -> Bool {
        let start: [UInt8]
        if Gzip.isGzip(bytes) {
            guard let inflated = try? Gzip.inflate(bytes, limit: 540, name: "upload") else { return false }
            start = inflated.bytes
        } else {
            start = Array(bytes.prefix(540))
        }
        guard let (version, _) = NIfTIHeader.sniff(start) else { return false }
        if version == 1 { return start.count >= 348 && start[344..<348].elementsEqual("n+1\0".utf8) }
        return start.count >= 12 && start[4..<12].elementsEqual([0x6E, 0x2B, 0x32, 0x00, 0x0D, 0x0A, 0x1A, 0x0A])
    }

    /// Whether `bytes` are gzip-compressed (the two magic bytes).
    public static func isGzip(_ bytes: [UInt8]) -> Bool { Gzip.isGzip(bytes) }

    /// The header of NIfTI bytes (plain or gzip), inflating no more than the header needs.
    public static func header(data: [UInt8], name: String) throws -> NIfTIHeader {
        guard Gzip.isGzip(data) else { return try NIfTIHeader.parse(data, name: name) }
        return try NIfTIHeader.parse(try Gzip.inflate(data, limit: 540, name: name).bytes, name: name)
    }
}

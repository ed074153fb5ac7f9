// The zip container of PyTorch checkpoints (`torch.save` since 1.6): a central directory listing
// `<name>/data.pkl`, `<name>/data/<key>` storages, `<name>/byteorder`, ... PyTorch writes every entry STORED
// (uncompressed), padded so data starts 64-byte aligned, and switches to zip64 records past 4 GiB, so an entry
// is a byte range of the mapped file. Only what a checkpoint needs is read: the central directory and each
// entry's local header; every offset and size is checked against the file before it is used.
// (Format: PKWARE APPNOTE.TXT sections 4.3.7 local header, 4.3.12 central directory, 4.3.14-16 end records.)

/// One stored member of the archive: its data is `file[offset..<offset+size]`.
struct ZipEntry: Sendable {
    let name: String
    let offset: Int
    let size: Int
    /// 0 = STORED; anything else is compressed and refused when the entry is read.
    let method: Int
    let crc32: UInt32
}

struct ZipArchive: Sendable {
    let file: MappedFile
    let path: String
    /// Entries by name, in central-directory order.
    let entries: [String: ZipEntry]
    let names: [String]

    /// Largest central directory accepted: 64 MiB holds a million entries, far beyond any checkpoint.
    static let maxCentralDirectoryBytes = 64 << 20

    init(file: MappedFile, path: String) throws {
        self.file = file
        self.path = path
        func fail(_ message: String) -> RAGSegIOError { RAGSegIOError(path: path, message: "zip archive: \(message)") }
        let reader = ZipBytes(file: file)

        // End of central directory: 22 bytes + a comment of at most 65535 bytes, at the very end.
        let minimumEnd = max(0, file.size - 22 - 0xFFFF)
        var endOffset = file.size - 22
        while endOffset >= minimumEnd, reader.u32(endOffset) != 0x0605_4b50 { endOffset -= 1 }
        guard endOffset >= minimumEnd else {
            throw fail("no end-of-central-directory record (truncated, or not a zip file)")
        }
        var count = Int(reader.u16(endOffset + 10)!)
        var directorySize = Int(reader.u32(endOffset + 12)!)
        var directoryOffset = Int(reader.u32(endOffset + 16)!)
        if count == 0xFFFF || directorySize == 0xFFFF_FFFF || directoryOffset == 0xFFFF_FFFF {
            // zip64: a locator just before the end record points at the zip64 end record.
            guard endOffset >= 20, reader.u32(endOffset - 20) == 0x0706_4b50, let at = reader.u64(endOffset - 12),
                reader.u32(at) == 0x0606_4b50, let entries = reader.u64(at + 32),
                let size = reader.u64(at + 40), let offset = reader.u64(at + 48)
            else {
                throw fail("the end record asks for zip64 but no valid zip64 end record was found (truncated?)")
            }
            count = entries
            directorySize = size
            directoryOffset = offset
        }
        guard directorySize <= ZipArchive.maxCentralDirectoryBytes, count <= directorySize / 46,
            reader.contains(directoryOffset, directorySize)
        else {
            throw fail(
                """
                central directory of \(count) entries, \(directorySize) bytes at offset \(directoryOffset) does not \
                fit in the \(file.size)-byte file (truncated or damaged)
                """
            )
        }

        var entries: [String: ZipEntry] = [:]
        var names: [String] = []
        var at = directoryOffset
        let directoryEnd = directoryOffset + directorySize
        for index in 0..<count {
            guard at + 46 <= directoryEnd, reader.u32(at) == 0x0201_4b50 else {
                throw fail("central directory entry \(index) is damaged (bad signature or past the directory's end)")
            }
            let flags = reader.u16(at + 8)!
            let method = reader.u16(at + 10)!
            let crc = reader.u32(at + 16)!
            var compressed = Int(reader.u32(at + 20)!)
            var size = Int(reader.u32(at + 24)!)
            let nameLength = reader.u16(at + 28)!, extraLength = reader.u16(at + 30)!
            let commentLength = reader.u16(at + 32)!
            var localOffset = Int(reader.u32(at + 42)!)
            let recordEnd = at + 46 + nameLength + extraLength + commentLength
            guard recordEnd <= directoryEnd, let nameBytes = file.bytes(at: at + 46, count: nameLength) else {
                throw fail("central directory entry \(index) runs past the directory's end")
            }
            guard let name = String(validating: nameBytes, as: UTF8.self) else {
                throw fail("central directory entry \(index) has a name that is not UTF-8")
            }
            // zip64 extra field (id 1): 8-byte values for exactly the fields that read 0xFFFFFFFF, in this order.
            var extra = at + 46 + nameLength
            let extraEnd = extra + extraLength
            while extra + 4 <= extraEnd {
                let id = reader.u16(extra)!, length = reader.u16(extra + 2)!
                guard extra + 4 + length <= extraEnd else { throw fail("entry '\(name)': damaged extra field") }
                if id == 1 {
                    var field = extra + 4
                    func next() throws -> Int {
                        guard field + 8 <= extra + 4 + length, let value = reader.u64(field) else {
                            throw fail("entry '\(name)': zip64 extra field too short")
                        }
                        field += 8
                        return value
                    }
                    if size == 0xFFFF_FFFF { size = try next() }
                    if compressed == 0xFFFF_FFFF { compressed = try next() }
                    if localOffset == 0xFFFF_FFFF { localOffset = try next() }
                }
                extra += 4 + length
            }
            guard flags & 1 == 0 else { throw fail("entry '\(name)' is encrypted") }
            guard entries[name] == nil else { throw fail("entry '\(name)' appears twice") }
            // The local header repeats the name and has its own extra field (PyTorch's alignment padding).
            guard reader.u32(localOffset) == 0x0403_4b50, let localName = reader.u16(localOffset + 26),
                let localExtra = reader.u16(localOffset + 28)
            else {
                throw fail("entry '\(name)': no local header at offset \(localOffset) (truncated or damaged)")
            }
            let dataOffset = localOffset + 30 + localName + localExtra
            guard reader.contains(dataOffset, compressed) else {
                throw fail(
                    """
                    entry '\(name)': \(compressed) bytes at offset \(dataOffset) run past the end of the \
                    \(file.size)-byte file (truncated?)
                    """
                )
            }
            guard method != 0 || compressed == size else {
                throw fail("entry '\(name)' is stored uncompressed but lists \(compressed) != \(size) bytes")
            }
            entries[name] = ZipEntry(name: name, offset: dataOffset, size: compressed, method: method, crc32: crc)
            names.append(name)
            at = recordEnd
        }
        self.entries = entries
        self.names = names
    }

    /// The bytes of an uncompressed entry (a view of the mapping).
    func data(_ entry: ZipEntry) throws -> UnsafeRawBufferPointer {
        guard entry.method == 0 else {
            throw RAGSegIOError(
                path: path,
                message:
                    """
                    zip archive: entry '\(entry.name)' is compressed (method \(entry.method)); PyTorch writes \
                    checkpoints uncompressed: re-save the file with torch.save
                    """
            )
        }
        return file.bytes(at: entry.offset, count: entry.size)!  // checked at init
    }
}

/// Little-endian reads from the mapping that return nil outside the file (never trap on a bad offset).
struct ZipBytes {
    let file: MappedFile

    func contains(_ offset: Int, _ count: Int) -> Bool { file.bytes(at: offset, count: count) != nil }

    func u16(_ offset: Int) -> Int? {
        guard let b = file.bytes(at: offset, count: 2) else { return nil }
        return Int(UInt16(littleEndian: b.loadUnaligned(as: UInt16.self)))
    }

    func u32(_ offset: Int) -> UInt32? {
        guard let b = file.bytes(at: offset, count: 4) else { return nil }
        return UInt32(littleEndian: b.loadUnaligned(as: UInt32.self))
    }

    /// A 64-bit size or offset; nil past the file or above Int.max (no real file is that large).
    func u64(_ offset: Int) -> Int? {
        guard let b = file.bytes(at: offset, count: 8) else { return nil }
        let value = UInt64(littleEndian: b.loadUnaligned(as: UInt64.self))
        return value <= UInt64(Int.max) ? Int(value) : nil
    }
}

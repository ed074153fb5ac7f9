// gzip through zlib, for .nii.gz. Inflation always has a cap: a header declares how many bytes the
// reader needs, so nothing past that is ever inflated (a small hostile file cannot expand without bound).
import CZlib

enum Gzip {
    /// The first two bytes of every gzip member.
    static func isGzip(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 2 && bytes[0] == 0x1F && bytes[1] == 0x8B
    }

    /// What inflating up to a cap produced.
    struct Inflated {
        var bytes: [UInt8]
        /// The compressed input ended (or broke off) before `limit` bytes came out.
        var endedEarly: Bool
    }

    /// Inflates at most `limit` bytes of the gzip (or zlib) stream in `data`; concatenated gzip members
    /// are read as one stream, as gunzip does. Corrupt data is an error naming `name`; a stream that ends
    /// before `limit` is reported through `endedEarly` (the caller knows what it needed).
    static func inflate(_ data: [UInt8], limit: Int, name: String) throws -> Inflated {
        var stream = z_stream()
        // 15 + 32: the largest window, gzip or zlib header detected automatically.
        guard inflateInit2_(&stream, 15 + 32, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw RAGSegIOError(path: name, message: "cannot start zlib's inflater")
        }
        defer { inflateEnd(&stream) }
        var output = [UInt8](repeating: 0, count: limit)
        var produced = 0
        var consumed = 0
        var endedEarly = false
        try data.withUnsafeBufferPointer { input in
            try output.withUnsafeMutableBufferPointer { out in
                while produced < limit {
                    // zlib counts in UInt32: feed and drain in chunks of at most 1 GiB.
                    let inChunk = min(input.count - consumed, 1 << 30)
                    let outChunk = min(limit - produced, 1 << 30)
                    stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress.map { $0 + consumed })
                    stream.avail_in = UInt32(inChunk)
                    stream.next_out = out.baseAddress! + produced
                    stream.avail_out = UInt32(outChunk)
                    let status = CZlib.inflate(&stream, Z_NO_FLUSH)
                    consumed += inChunk - Int(stream.avail_in)
                    produced += outChunk - Int(stream.avail_out)
                    switch status {
                    case Z_OK:
                        continue
                    case Z_STREAM_END:
                        // Another gzip member may follow (concatenated .gz files are valid).
                        if consumed + 1 < input.count, input[consumed] == 0x1F, input[consumed + 1] == 0x8B {
                            guard inflateReset(&stream) == Z_OK else {
                                throw RAGSegIOError(path: name, message: "cannot restart zlib's inflater")
                            }
                            continue
                        }
                        endedEarly = produced < limit
                        return
                    case Z_BUF_ERROR:
                        // No progress possible: the input is used up before the stream's end.
                        if consumed >= input.count {
                            endedEarly = true
                            return
                        }
                        throw RAGSegIOError(
                            path: name, message: "corrupt gzip data (no progress at compressed byte \(consumed))")
                    default:
                        let reason = stream.msg.map { String(cString: $0) } ?? "zlib error \(status)"
                        throw RAGSegIOError(path: name, message: "corrupt gzip data: \(reason)")
                    }
                }
            }
        }
        if produced < output.count { output.removeLast(output.count - produced) }
        return Inflated(bytes: output, endedEarly: endedEarly)
    }

    /// gzip bytes of `data` (deflate level 6; no file name and a zero time stamp, so output is reproducible).
    static func deflate(_ data: [UInt8], name: String) throws -> [UInt8] {
        var stream = z_stream()
        // 15 + 16: the largest window with a gzip wrapper.
        guard
            deflateInit2_(
                &stream, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION,
                Int32(MemoryLayout<z_stream>.size)) == Z_OK
        else {
            throw RAGSegIOError(path: name, message: "cannot start zlib's deflater")
        }
        defer { deflateEnd(&stream) }
        var output: [UInt8] = []
        output.reserveCapacity(data.count / 2 + 64)
        var chunk = [UInt8](repeating: 0, count: 1 << 18)
        var consumed = 0
        try data.withUnsafeBufferPointer { input in
            try chunk.withUnsafeMutableBufferPointer { out in
                var finished = false
                while !finished {
                    let inChunk = min(input.count - consumed, 1 << 30)
                    stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress.map { $0 + consumed })
                    stream.avail_in = UInt32(inChunk)
                    stream.next_out = out.baseAddress!
                    stream.avail_out = UInt32(out.count)
                    let last = consumed + inChunk == input.count
                    let status = CZlib.deflate(&stream, last ? Z_FINISH : Z_NO_FLUSH)
                    consumed += inChunk - Int(stream.avail_in)
                    output.append(contentsOf: out[0..<(out.count - Int(stream.avail_out))])
                    switch status {
                    case Z_STREAM_END: finished = true
                    case Z_OK, Z_BUF_ERROR: continue
                    default: throw RAGSegIOError(path: name, message: "gzip compression failed (zlib error \(status))")
                    }
                }
            }
        }
        return output
    }
}

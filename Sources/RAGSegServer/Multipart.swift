// A minimal multipart/form-data reader (RFC 7578) for `POST /cases`: Hummingbird has none built in.
// It reads a fully collected body (the server caps its size first), takes each part's `name` from its
// Content-Disposition header and keeps the part's bytes as they are. No nested multiparts, no
// Content-Transfer-Encoding (RFC 7578 deprecates it; curl and browsers send binary).

public struct MultipartError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public var description: String { message }
    init(_ message: String) { self.message = message }
}

public enum Multipart {
    /// The boundary of a `multipart/form-data; boundary=...` Content-Type (quoted or not), else nil.
    public static func boundary(contentType: String) -> String? {
        let fields = contentType.split(separator: ";").map { $0.strippingBlanks() }
        guard let type = fields.first, type.lowercased() == "multipart/form-data" else { return nil }
        for field in fields.dropFirst() {
            guard let eq = field.firstIndex(of: "=") else { continue }
            guard field[..<eq].strippingBlanks().lowercased() == "boundary" else { continue }
            var value = Substring(field[field.index(after: eq)...])
            if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") { value = value.dropFirst().dropLast() }
            // RFC 2046: 1 to 70 characters.
            return value.isEmpty || value.count > 70 ? nil : String(value)
        }
        return nil
    }

    /// The parts of `body` by form field name (a repeated name is an error: the caller wants one of each).
    public static func parse(_ body: [UInt8], boundary: String) throws -> [String: [UInt8]] {
        let delimiter = Array("--\(boundary)".utf8)
        let crlf: [UInt8] = [13, 10]
        guard var at = find(delimiter, in: body, from: 0) else {
            throw MultipartError("multipart body has no boundary line '--\(boundary)'")
        }
        var parts: [String: [UInt8]] = [:]
        while true {
            at += delimiter.count
            // "--" after a delimiter closes the body.
            if at + 1 < body.count, body[at] == 45, body[at + 1] == 45 { return parts }
            // Transport padding (spaces, tabs) may precede the line break.
            while at < body.count, body[at] == 32 || body[at] == 9 { at += 1 }
            guard at + 1 < body.count, body[at] == 13, body[at + 1] == 10 else {
                throw MultipartError("multipart body ends without the closing '--\(boundary)--'")
            }
            at += 2
            guard let headerEnd = find(crlf + crlf, in: body, from: at) else {
                throw MultipartError("multipart part has no blank line after its headers")
            }
            let headers = String(decoding: body[at..<headerEnd], as: UTF8.self)
            let contentStart = headerEnd + 4
            guard let next = find(crlf + delimiter, in: body, from: contentStart) else {
                throw MultipartError("multipart part is not followed by a boundary line")
            }
            guard let name = fieldName(headers) else {
                throw MultipartError("multipart part has no Content-Disposition: form-data; name=\"...\" header")
            }
            guard parts[name] == nil else { throw MultipartError("multipart field '\(name)' appears twice") }
            parts[name] = Array(body[contentStart..<next])
            at = next + 2
        }
    }

    /// `name` of a `Content-Disposition: form-data; name="..."` header line.
    static func fieldName(_ headers: String) -> String? {
        for line in headers.split(separator: "\r\n") {
            guard let colon = line.firstIndex(of: ":"),
                line[..<colon].strippingBlanks().lowercased() == "content-disposition"
            else { continue }
            for field in line[line.index(after: colon)...].split(separator: ";") {
                let f = field.strippingBlanks()
                guard f.lowercased().hasPrefix("name=") else { continue }
                var value = Substring(f.dropFirst(5))
                if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") {
                    value = value.dropFirst().dropLast()
                }
                return String(value)
            }
        }
        return nil
    }

    /// First index of `needle` in `haystack` at or after `start`.
    static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard !needle.isEmpty, haystack.count >= needle.count, start <= haystack.count - needle.count else {
            return nil
        }
        return haystack.withUnsafeBufferPointer { h in
            needle.withUnsafeBufferPointer { n in
                let first = n[0], last = h.count - n.count
                var i = start
                while i <= last {
                    if h[i] == first {
                        var j = 1
                        while j < n.count && h[i + j] == n[j] { j += 1 }
                        if j == n.count { return i }
                    }
                    i += 1
                }
                return nil
            }
        }
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces and tabs.
    func strippingBlanks() -> String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\t" { s = s.dropFirst() }
        while let c = s.last, c == " " || c == "\t" { s = s.dropLast() }
        return String(s)
    }
}

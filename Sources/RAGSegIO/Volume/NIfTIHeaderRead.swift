// Reading only a NIfTI file's header, so a command can check every volume (dimensions, datatype, frames,
// limits, room in the file) and count its slices before it reads any voxels.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension NIfTI {
    /// The header of a .nii or .nii.gz file, checked against `limits` and, for an uncompressed file, against
    /// the file's size (vox_offset and the data must lie inside it). A .nii.gz is only inflated as far as its
    /// header: a truncated stream shows when the volume itself is read.
    public static func readHeader(_ path: String, limits: NIfTILimits = NIfTILimits()) throws -> NIfTIHeader {
        let file = try VolumeFile(path: path)
        defer { file.finish() }
        // A gzip header plus a deflated 540-byte NIfTI-2 header fits many times over in 64 KiB.
        let prefix = try file.readBytes(count: min(file.size, 1 << 16))
        if Gzip.isGzip(prefix) {
            let start = try Gzip.inflate(prefix, limit: 540, name: path)
            if start.bytes.count < 348 {
                throw RAGSegIOError(
                    path: path,
                    message: "truncated .nii.gz: it inflates to \(start.bytes.count) bytes, too few for a NIfTI header")
            }
            let header = try NIfTIHeader.parse(start.bytes, name: path)
            _ = try checkedDataEnd(header, available: nil, limits: limits, name: path)
            return header
        }
        let header = try NIfTIHeader.parse(prefix, name: path)
        _ = try checkedDataEnd(header, available: file.size, limits: limits, name: path)
        return header
    }
}

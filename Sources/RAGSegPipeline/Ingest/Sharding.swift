// Sharded builds: which share of the inputs one `index add --shard I/N` process takes. The share of an input is
// decided by the SHA-256 of its image file (ShardAssignment in SupportBank), so it does not depend on listing
// order or paths, and all slices of a volume go to the same shard (its file is the unit).
import Foundation
import RAGSegIO
import SupportBank

public enum Sharding {
    /// The error of a `--shard` value or of the scheduler variables behind `--shard auto`.
    public struct InvalidShard: Error, CustomStringConvertible {
        public var description: String
    }

    /// `I/N` (0 <= I < N), or `auto`: a Slurm job array's task (SLURM_ARRAY_TASK_ID minus SLURM_ARRAY_TASK_MIN,
    /// of SLURM_ARRAY_TASK_COUNT) or a Kubernetes Indexed Job's pod (JOB_COMPLETION_INDEX, of RAGSEG_SHARD_COUNT,
    /// which the Job sets to its `completions`: Kubernetes does not tell a pod the count).
    public static func parse(_ text: String, environment: [String: String]) throws -> ShardAssignment {
        func number(_ name: String) throws -> Int? {
            guard let value = environment[name] else { return nil }
            guard let n = Int(value.trimmingCharacters(in: .whitespaces)) else {
                throw InvalidShard(description: "\(name)=\(value) is not a whole number")
            }
            return n
        }
        let index: Int
        let count: Int
        if text == "auto" {
            if let task = try number("SLURM_ARRAY_TASK_ID") {
                guard let n = try number("SLURM_ARRAY_TASK_COUNT") else {
                    throw InvalidShard(
                        description: "--shard auto: SLURM_ARRAY_TASK_ID is set but not SLURM_ARRAY_TASK_COUNT")
                }
                if let step = try number("SLURM_ARRAY_TASK_STEP"), step != 1 {
                    throw InvalidShard(
                        description: """
                            --shard auto needs a contiguous job array (e.g. --array=0-\(n - 1)); this one steps by \
                            \(step): give --shard I/N instead
                            """)
                }
                index = task - (try number("SLURM_ARRAY_TASK_MIN") ?? 0)
                count = n
            } else if let completion = try number("JOB_COMPLETION_INDEX") {
                guard let n = try number("RAGSEG_SHARD_COUNT") else {
                    throw InvalidShard(
                        description: """
                            --shard auto: JOB_COMPLETION_INDEX is set but not RAGSEG_SHARD_COUNT (set it to the Job's \
                            completions)
                            """)
                }
                index = completion
                count = n
            } else {
                throw InvalidShard(
                    description: """
                        --shard auto found no job array: neither SLURM_ARRAY_TASK_ID (Slurm) nor JOB_COMPLETION_INDEX \
                        (Kubernetes Indexed Job) is set; give --shard I/N
                        """)
            }
        } else {
            let parts = text.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]) else {
                throw InvalidShard(description: "--shard takes I/N (e.g. 0/4) or auto, got '\(text)'")
            }
            index = i
            count = n
        }
        guard count >= 1, count <= 1_000_000, (0..<count).contains(index) else {
            throw InvalidShard(description: "shard \(index)/\(count): need 0 <= I < N (I counts from 0)")
        }
        return ShardAssignment(index: index, count: count)
    }

    /// The inputs whose image file belongs to `shard`, in their order. Reads (hashes) every image file.
    public static func select<Source>(_ sources: [Source], shard: ShardAssignment, image: (Source) -> String) throws
        -> [Source]
    {
        try sources.filter { shard.owns(sha256: try fileDigest(image($0))) }
    }

    /// SHA-256 of a file's bytes.
    public static func fileDigest(_ path: String) throws -> [UInt8] {
        guard let bytes = hexBytesOf(try VolumeCaseLoader.fileSHA256(path)) else {
            throw RAGSegIOError(path: path, message: "cannot hash")
        }
        return bytes
    }

    private static func hexBytesOf(_ hex: String) -> [UInt8]? {
        let chars = Array(hex.utf8)
        guard chars.count == 64 else { return nil }
        var out = [UInt8]()
        for i in stride(from: 0, to: 64, by: 2) {
            guard let b = UInt8(String(decoding: chars[i..<i + 2], as: UTF8.self), radix: 16) else { return nil }
            out.append(b)
        }
        return out
    }
}

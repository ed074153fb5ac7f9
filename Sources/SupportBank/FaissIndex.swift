// Swift face of the CFaiss wrapper: an owned FAISS index (inner product, 64-bit ids).
import CFaiss
import Foundation

public struct FaissError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public var description: String { message }
    static func last(_ context: String) -> FaissError {
        FaissError(message: "\(context): \(String(cString: cfaiss_last_error()))")
    }
}

/// Which FAISS structure serves a bank's searches.
public enum IndexKind: String, Codable, Sendable, CaseIterable {
    /// Flat while the bank is small, IVF once it passes `IndexKind.autoApproximateThreshold(dimension:)`.
    case auto
    /// Exact brute-force inner product (IndexFlatIP): exact results, O(n) per query.
    case flat
    /// HNSW graph (M = 32): approximate, O(log n) per query; cannot remove ids (tombstones).
    case hnsw
    /// Inverted file over k-means cells (nlist = 2 sqrt n, at most n / 39; nprobe 16): approximate,
    /// removable, trained on the bank's own vectors once it holds 1024 (Flat before that).
    case ivf

    /// Above this many vectors `auto` switches from Flat to IVF: while the vectors fit in 4 Mi
    /// floats (16 MiB; 10 922 at 384-d, 5 461 at 768-d) an exact scan stays near 2 ms on one core
    /// with Debian's generic FAISS build (measured: 1.8 ms p50 at 10k x 384), inside the 5 ms target;
    /// IVF needs at least 1024 vectors to train on.
    /// Why IVF and not HNSW (`ragseg-bench bank`, 2 cores, Debian's scalar FAISS): at 1e6 vectors IVF
    /// met p99 < 5 ms (2.5 ms at 384-d, 4.0 ms at 768-d) with recall@10 0.97-0.997, builds in about a
    /// minute and removes ids natively; HNSW32 took 18 minutes to build at 1e6 x 384, reached recall
    /// 0.74 at efSearch 64, its per-add cost grows with the graph, and removals need tombstones.
    public static func autoApproximateThreshold(dimension: Int) -> Int { max(1024, (4 << 20) / max(dimension, 1)) }

    public static func ivfCellCount(_ count: Int) -> Int {
        max(16, min(65536, Int(2 * Double(max(count, 1)).squareRoot()), count / 39))
    }

    /// The concrete kind used for a bank of `count` vectors.
    public func resolved(count: Int, dimension: Int) -> IndexKind {
        guard self == .auto else { return self }
        return count > IndexKind.autoApproximateThreshold(dimension: dimension) ? .ivf : .flat
    }

    /// FAISS factory string for a concrete kind.
    func factory(count: Int, dimension: Int) -> String {
        switch resolved(count: count, dimension: dimension) {
        case .flat, .auto: return "Flat"
        case .hnsw: return "HNSW32"
        case .ivf:
            // Fewer cells than FAISS's 4-16 sqrt(n) guidance keeps k-means training affordable on a
            // few cores (39 points per cell, FAISS's minimum); nprobe 16 then scans ~16/(2 sqrt n).
            let nlist = IndexKind.ivfCellCount(count)
            return "IVF\(nlist),Flat"
        }
    }
}

/// An owned FAISS index. Not thread-safe for mutation; searches may run concurrently.
public final class FaissIndex: @unchecked Sendable {
    let handle: OpaquePointer

    private init(handle: OpaquePointer) { self.handle = handle }

    /// A new empty index of the given factory string ("Flat", "HNSW32", "IVF256,Flat").
    public convenience init(dimension: Int, factory: String) throws {
        guard let h = cfaiss_create(Int32(dimension), factory) else { throw FaissError.last("create \(factory) index") }
        self.init(handle: h)
        if factory.hasPrefix("HNSW") { _ = cfaiss_set_search_parameter(handle, "efSearch", 64) }
        if factory.hasPrefix("IVF") { _ = cfaiss_set_search_parameter(handle, "nprobe", 16) }
    }

    deinit { cfaiss_free(handle) }

    public var dimension: Int { Int(cfaiss_dimension(handle)) }
    public var count: Int { Int(cfaiss_ntotal(handle)) }
    public var isTrained: Bool { cfaiss_is_trained(handle) == 1 }
    public var supportsRemoval: Bool { cfaiss_supports_removal(handle) == 1 }

    public func train(_ vectors: [Float]) throws {
        let n = vectors.count / dimension
        guard cfaiss_train(handle, Int64(n), vectors) == 0 else { throw FaissError.last("train index") }
    }

    public func add(_ vectors: [Float], ids: [Int64]) throws {
        precondition(vectors.count == ids.count * dimension, "vectors/ids mismatch")
        if ids.isEmpty { return }
        guard cfaiss_add_with_ids(handle, Int64(ids.count), vectors, ids) == 0 else {
            throw FaissError.last("add to index")
        }
    }

    /// Removes ids; returns how many were present. Throws for HNSW.
    @discardableResult
    public func remove(_ ids: [Int64]) throws -> Int {
        if ids.isEmpty { return 0 }
        let n = cfaiss_remove_ids(handle, Int64(ids.count), ids)
        guard n >= 0 else { throw FaissError.last("remove from index") }
        return Int(n)
    }

    /// k nearest by inner product for each of the n queries (row-major n x dimension).
    public func search(_ queries: [Float], k: Int) throws -> (scores: [Float], ids: [Int64]) {
        let n = queries.count / dimension
        var scores = [Float](repeating: 0, count: n * k)
        var ids = [Int64](repeating: -1, count: n * k)
        guard cfaiss_search(handle, Int64(n), queries, Int64(k), &scores, &ids) == 0 else {
            throw FaissError.last("search index")
        }
        return (scores, ids)
    }

    public func allIDs() throws -> [Int64] {
        var ids = [Int64](repeating: 0, count: count)
        let n = cfaiss_get_ids(handle, &ids, Int64(ids.count))
        guard n >= 0 else { throw FaissError.last("list index ids") }
        return Array(ids.prefix(Int(n)))
    }

    /// The stored vector of id, or nil where the index cannot reconstruct (IVF) or lacks the id.
    public func reconstruct(_ id: Int64) -> [Float]? {
        var v = [Float](repeating: 0, count: dimension)
        return cfaiss_reconstruct(handle, id, &v) == 0 ? v : nil
    }

    public func setSearchParameter(_ name: String, _ value: Double) throws {
        guard cfaiss_set_search_parameter(handle, name, value) == 0 else { throw FaissError.last("set \(name)") }
    }

    /// Atomic, fsync'ed, checksummed write with caller bytes stored in the header.
    public func write(to path: String, userData: [UInt8]) throws {
        guard cfaiss_write(handle, path, userData, userData.count) == 0 else { throw FaissError.last("write index") }
    }

    /// Reads a file written by `write`, verifying its checksum first.
    public static func read(from path: String) throws -> (index: FaissIndex, userData: [UInt8]) {
        var user: UnsafeMutablePointer<UInt8>?
        var length = 0
        guard let h = cfaiss_read(path, &user, &length) else { throw FaissError.last("read index") }
        defer { cfaiss_free_bytes(user) }
        let bytes = user.map { Array(UnsafeBufferPointer(start: $0, count: length)) } ?? []
        return (FaissIndex(handle: h), bytes)
    }

    /// OpenMP threads FAISS uses process-wide.
    public static var threads: Int {
        get { Int(cfaiss_get_num_threads()) }
        set { cfaiss_set_num_threads(Int32(newValue)) }
    }
}

import CBLAS
import Synchronization

/// A dense fp32 tensor, row-major (the last axis is contiguous), PyTorch's NCHW conventions.
///
/// Deliberately boring: a shape and a copy-on-write `[Float]`. Hot loops go through
/// `withUnsafeBufferPointer` / `withUnsafeMutableBufferPointer`, never through per-element subscripts.
public struct Tensor: Sendable, Equatable {
    public private(set) var shape: [Int]
    public var data: [Float]

    /// Elements of `shape`; an empty shape is a scalar.
    @inlinable public static func count(of shape: [Int]) -> Int { shape.reduce(1, *) }

    public init(shape: [Int], data: [Float]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        precondition(
            Tensor.count(of: shape) == data.count,
            "shape \(shape) needs \(Tensor.count(of: shape)) values, got \(data.count)")
        self.shape = shape
        self.data = data
    }

    /// A zero-filled tensor.
    public init(zeros shape: [Int]) {
        self.init(shape: shape, data: [Float](repeating: 0, count: Tensor.count(of: shape)))
    }

    public init(repeating value: Float, shape: [Int]) {
        self.init(shape: shape, data: [Float](repeating: value, count: Tensor.count(of: shape)))
    }

    /// A tensor whose storage is written by `body` (no zero fill first). `body` must write every element.
    public init(shape: [Int], uninitialized body: (UnsafeMutableBufferPointer<Float>) throws -> Void) rethrows {
        let n = Tensor.count(of: shape)
        let values = try [Float](unsafeUninitializedCapacity: n) { buffer, initialized in
            try body(buffer)
            initialized = n
        }
        self.init(shape: shape, data: values)
    }

    public var count: Int { data.count }
    public var rank: Int { shape.count }

    /// Size of axis `i`; negative `i` counts from the end like PyTorch.
    public func dim(_ i: Int) -> Int { shape[i < 0 ? shape.count + i : i] }

    /// Same storage, new shape (the element count must match).
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var out = self
        out.reshape(newShape)
        return out
    }

    public mutating func reshape(_ newShape: [Int]) {
        precondition(Tensor.count(of: newShape) == data.count, "cannot reshape \(shape) to \(newShape)")
        shape = newShape
    }

    @inlinable public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try data.withUnsafeBufferPointer(body)
    }

    @inlinable public mutating func withUnsafeMutableBufferPointer<R>(
        _ body: (UnsafeMutableBufferPointer<Float>) throws -> R
    ) rethrows -> R {
        try data.withUnsafeMutableBufferPointer { try body($0) }
    }
}

/// Threading for the whole process: the worker count of our parallel loops and GEMM splitting.
/// OpenBLAS itself is kept single-threaded (see Parallel.swift).
public enum Threads {
    /// Set the number of worker threads.
    public static func set(_ n: Int) {
        current.store(max(1, n), ordering: .relaxed)
    }

    /// Worker count for our parallel loops and GEMMs (default: what OpenBLAS would have used, i.e. the
    /// core count or OPENBLAS_NUM_THREADS).
    public static var count: Int { current.load(ordering: .relaxed) }

    // First use of `count` happens before our first BLAS call: read OpenBLAS's default, then pin it to
    // one thread for good.
    private static let current: Atomic<Int> = {
        let n = max(1, Int(openblas_get_num_threads()))
        openblas_set_num_threads(1)
        return Atomic<Int>(n)
    }()
}

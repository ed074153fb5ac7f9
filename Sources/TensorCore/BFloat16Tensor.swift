import CDNNL

/// A dense tensor of bfloat16 values (their bits), row-major like `Tensor`: the activations that one bf16
/// product hands to the next under `Precision.bf16`.
///
/// Why it exists: in bf16 every product rounds its fp32 input to bf16 first. When the input was itself written
/// by a product, a layer norm or an attention only to be rounded by its one consumer, storing it as bf16 in
/// the first place gives the same numbers (the same rounding of the same fp32 value, done once by whoever
/// wrote it) and moves a third of the bytes: 2 written and 2 read instead of 4 written, 4 read and 2 written
/// again. Hiera's first stages (96 channels over 65,536 tokens) are bound by exactly those bytes.
public struct BFloat16Tensor: Sendable, Equatable {
    public private(set) var shape: [Int]
    public var bits: [UInt16]

    public init(shape: [Int], bits: [UInt16]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        precondition(
            Tensor.count(of: shape) == bits.count,
            "shape \(shape) needs \(Tensor.count(of: shape)) values, got \(bits.count)")
        self.shape = shape
        self.bits = bits
    }

    /// A tensor of zeros (bf16 zero is all bits clear).
    public init(zeros shape: [Int]) {
        self.init(shape: shape, bits: [UInt16](repeating: 0, count: Tensor.count(of: shape)))
    }

    /// A tensor whose storage is written by `body`, which must write every element.
    public init(shape: [Int], uninitialized body: (UnsafeMutableBufferPointer<UInt16>) throws -> Void) rethrows {
        let n = Tensor.count(of: shape)
        let values = try [UInt16](unsafeUninitializedCapacity: n) { buffer, initialized in
            try body(buffer)
            initialized = n
        }
        self.init(shape: shape, bits: values)
    }

    /// Every element of `x` rounded to the nearest bf16 (ties to even, as PyTorch's casts), over the workers.
    public init(rounding x: Tensor) {
        let width = x.rank == 0 ? 1 : max(x.dim(-1), 1), rows = x.count / width
        self.init(shape: x.shape) { out in
            x.withUnsafeBufferPointer { px in
                guard let source = px.baseAddress, let bits = out.baseAddress else { return }
                parallelRanges(rows, grain: max(1, (1 << 15) / width)) { range in
                    ragseg_to_bf16(
                        source + range.lowerBound * width, bits + range.lowerBound * width, range.count * width)
                }
            }
        }
    }

    /// A tensor of rows of `shape`'s last axis, each made in fp32 by `makeRow(r, row)` into a scratch row
    /// (which stays in L1) and rounded from there, over the workers: an fp32 computation whose only reader is a
    /// bf16 product stores its result once, as bf16.
    public init(shape: [Int], roundingRows makeRow: (Int, UnsafeMutablePointer<Float>) -> Void) {
        let width = shape.last ?? 1, rows = width == 0 ? 0 : Tensor.count(of: shape) / width
        self.init(shape: shape) { out in
            guard let bits = out.baseAddress else { return }
            parallelRanges(rows, grain: max(1, (1 << 15) / width)) { range in
                let row = UnsafeMutablePointer<Float>.allocate(capacity: width)
                defer { row.deallocate() }
                for r in range {
                    makeRow(r, row)
                    ragseg_to_bf16(row, bits + r * width, width)
                }
            }
        }
    }

    /// The values as fp32 (exact).
    public var floats: Tensor {
        Tensor(shape: shape) { out in
            for i in bits.indices { out[i] = float(fromBFloat16: bits[i]) }
        }
    }

    public var count: Int { bits.count }
    public var rank: Int { shape.count }

    /// Size of axis `i`; negative `i` counts from the end.
    public func dim(_ i: Int) -> Int { shape[i < 0 ? shape.count + i : i] }

    /// Same storage, new shape (the element count must match).
    public func reshaped(_ newShape: [Int]) -> BFloat16Tensor {
        precondition(Tensor.count(of: newShape) == bits.count, "cannot reshape \(shape) to \(newShape)")
        var out = self
        out.shape = newShape
        return out
    }

    @inlinable public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<UInt16>) throws -> R) rethrows -> R {
        try bits.withUnsafeBufferPointer(body)
    }
}

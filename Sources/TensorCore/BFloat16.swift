/// fp32 -> bfloat16 bits, round to nearest, ties to even (as PyTorch's `.to(torch.bfloat16)`):
/// add 0x7FFF plus the lowest kept bit, keep the top 16 bits. NaN stays a (quiet) NaN.
@inlinable public func bfloat16Bits(_ x: Float) -> UInt16 {
    if x.isNaN { return 0x7FC0 | UInt16(x.bitPattern >> 31) << 15 }
    let u = x.bitPattern
    return UInt16(truncatingIfNeeded: (u &+ 0x7FFF &+ ((u >> 16) & 1)) >> 16)
}

/// bfloat16 bits -> fp32 (exact: the bits become the top half of the float).
@inlinable public func float(fromBFloat16 bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }

/// Every element rounded to the nearest bfloat16 and back (simulates bf16 storage).
public func roundedToBFloat16(_ x: Tensor) -> Tensor {
    var y = x
    y.withUnsafeMutableBufferPointer { p in
        for i in p.indices { p[i] = float(fromBFloat16: bfloat16Bits(p[i])) }
    }
    return y
}

/// fp32 -> IEEE half bits (round to nearest even, overflow to infinity), via Swift's Float16.
@inlinable public func float16Bits(_ x: Float) -> UInt16 { Float16(x).bitPattern }

/// IEEE half bits -> fp32 (exact).
@inlinable public func float(fromFloat16 bits: UInt16) -> Float { Float(Float16(bitPattern: bits)) }

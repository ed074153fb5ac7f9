// Stored element types -> fp32, shared by the weight readers (safetensors, PyTorch checkpoints).

/// Converts `count` elements of `dtype` at `source` (little-endian, possibly unaligned), `elementStride`
/// elements apart, into `dst`. F16/BF16 widen exactly; F64 rounds to nearest; integer and BOOL types become
/// their float values (large 64-bit integers round).
func widenToFloat(
    _ source: UnsafeRawPointer, dtype: SafeTensors.DType, count n: Int, elementStride: Int,
    into dst: UnsafeMutablePointer<Float>
) {
    let step = elementStride * dtype.byteSize
    if dtype == .f32 && elementStride == 1 {
        // Little-endian host (x86-64, arm64): the bytes are already our floats.
        UnsafeMutableRawPointer(dst).copyMemory(from: source, byteCount: n * 4)
        return
    }
    switch dtype {
    case .f32:
        for i in 0..<n {
            dst[i] = Float(
                bitPattern: UInt32(littleEndian: source.loadUnaligned(fromByteOffset: step * i, as: UInt32.self)))
        }
    case .f16:
        for i in 0..<n {
            dst[i] = floatFromHalfBits(
                UInt16(littleEndian: source.loadUnaligned(fromByteOffset: step * i, as: UInt16.self)))
        }
    case .bf16:
        for i in 0..<n {
            dst[i] = floatFromBFloat16Bits(
                UInt16(littleEndian: source.loadUnaligned(fromByteOffset: step * i, as: UInt16.self)))
        }
    case .f64:
        for i in 0..<n {
            dst[i] = Float(
                Double(
                    bitPattern: UInt64(littleEndian: source.loadUnaligned(fromByteOffset: step * i, as: UInt64.self))))
        }
    case .i64:
        for i in 0..<n {
            dst[i] = Float(Int64(littleEndian: source.loadUnaligned(fromByteOffset: step * i, as: Int64.self)))
        }
    case .u64:
        for i in 0..<n {
            dst[i] = Float(UInt64(littleEndian: source.loadUnaligned(fromByteOffset: step * i, as: UInt64.self)))
        }
    case .i32:
        for i in 0..<n {
            dst[i] = Float(Int32(littleEndian: source.loadUnaligned(fromByteOffset: step * i, as: Int32.self)))
        }
    case .u32:
        for i in 0..<n {
            dst[i] = Float(UInt32(littleEndian: source.loadUnaligned(fromByteOffset: step * i, as: UInt32.self)))
        }
    case .i16:
        for i in 0..<n {
            dst[i] = Float(Int16(littleEndian: source.loadUnaligned(fromByteOffset: step * i, as: Int16.self)))
        }
    case .u16:
        for i in 0..<n {
            dst[i] = Float(UInt16(littleEndian: source.loadUnaligned(fromByteOffset: step * i, as: UInt16.self)))
        }
    case .i8:
        for i in 0..<n { dst[i] = Float(source.load(fromByteOffset: step * i, as: Int8.self)) }
    case .u8:
        for i in 0..<n { dst[i] = Float(source.load(fromByteOffset: step * i, as: UInt8.self)) }
    case .bool:
        for i in 0..<n { dst[i] = source.load(fromByteOffset: step * i, as: UInt8.self) != 0 ? 1 : 0 }
    }
}

/// IEEE half -> float, exact (every half is representable as a float), including subnormals, inf, NaN.
@inline(__always) func floatFromHalfBits(_ h: UInt16) -> Float {
    let sign: UInt32 = UInt32(h & 0x8000) << 16
    let exponent = UInt32(h >> 10) & 0x1f
    let mantissa = UInt32(h & 0x3ff)
    if exponent == 0 {
        // Zero or subnormal: mantissa * 2^-24 (exact in float).
        let magnitude = Float(mantissa) * 0x1p-24
        return Float(bitPattern: sign | magnitude.bitPattern)
    }
    if exponent == 31 { return Float(bitPattern: sign | 0x7f80_0000 | (mantissa << 13)) }  // inf / NaN
    return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))  // rebias 15 -> 127
}

/// bfloat16 is the top half of a float.
@inline(__always) func floatFromBFloat16Bits(_ b: UInt16) -> Float {
    Float(bitPattern: UInt32(b) << 16)
}

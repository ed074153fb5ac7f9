import Foundation
import CKernels
import XCTest
@testable import TensorCore

final class TensorTests: XCTestCase {
    func testShapeAndReshape() {
        let t = Tensor(shape: [2, 3], data: [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(t.dim(-1), 3)
        let r = t.reshaped([3, 2])
        XCTAssertEqual(r.shape, [3, 2])
        XCTAssertEqual(r.data, t.data)
    }
}

/// Rotations of the axes (CHW -> HWC, HWC -> CHW, 2-D transposes) take a tiled-transpose path in `permuted`;
/// checked element by element against index arithmetic, on shapes that are not multiples of the 32 x 32 tile
/// and on one large enough to be split over the workers.
final class PermuteRotationTests: XCTestCase {
    func testRotationsMoveEveryElementWhereTheIndexSays() {
        // At every kernel level this CPU has: register blocks (AVX2 and up) and the plain loop.
        let best = String(cString: ragseg_kernels_level())
        defer { XCTAssertEqual(ragseg_kernels_set_level(best), 1) }
        for level in ["baseline", "avx2", "avx512"] where ragseg_kernels_set_level(level) == 1 {
            checkRotations(level)
        }
    }

    private func checkRotations(_ level: String) {
        for shape in [[3, 5, 7], [96, 33, 65], [1, 40, 1], [70, 130], [16, 8], [64, 72, 9]] {
            let count = shape.reduce(1, *)
            let x = Tensor(shape: shape, data: (0..<count).map { Float($0) })
            let rank = shape.count
            for split in 1..<rank {
                let axes = Array(split..<rank) + Array(0..<split)
                let y = permuted(x, axes)
                XCTAssertEqual(y.shape, axes.map { shape[$0] })
                let rows = shape[0..<split].reduce(1, *), columns = count / rows
                for r in 0..<rows {
                    for c in 0..<columns where y.data[c * rows + r] != Float(r * columns + c) {
                        XCTFail("\(level) \(shape) \(axes): element (\(r), \(c)) is \(y.data[c * rows + r])")
                        return
                    }
                }
            }
        }
    }
}

/// The small bf16 kernels of CKernels at every level this CPU has: the softmax numerators of bf16 attention
/// (exponentials rounded to bf16 as they are made) against Double exponentials, the many-row forms of the softmax
/// numerators against a call per row, and the row copy that lays q, k and v out head by head against the plain
/// index arithmetic.
final class BFloat16KernelTests: XCTestCase {
    func testExponentialsRoundedToBFloat16AtEveryLevel() {
        let best = String(cString: ragseg_kernels_level())
        defer { XCTAssertEqual(ragseg_kernels_set_level(best), 1) }
        var values = (0..<203).map { Float(($0 * 7919) % 401) / 40 - 9 }  // -9 ..< 1, many exponents
        values[5] = -.infinity
        values[77] = .nan
        values[150] = -120  // below the clamp
        for level in ["baseline", "avx2", "avx512"] where ragseg_kernels_set_level(level) == 1 {
            for n in [203, 200, 16, 15, 1] {  // body + tail, body only (at 8 and 16 lanes), tail only
                for shift: Float in [1, 0.5] {
                    var bits = [UInt16](repeating: 0xFFFF, count: n)
                    let sum = ragseg_exp_minus_sum_bf16(values, n, shift, &bits)
                    var expectedSum = 0.0
                    for i in 0..<n {
                        let exact = exp(Double(values[i] - shift))  // the kernel subtracts in fp32 too
                        let got = float(fromBFloat16: bits[i])
                        guard exact.isFinite, exact > 1e-30 else {
                            XCTAssertLessThan(got, 1e-30, "\(level), n \(n), [\(i)] = \(values[i])")
                            continue
                        }
                        expectedSum += exact
                        // The rounding of the exact value, or of a value 1e-6 away when it lies that close to a
                        // rounding boundary (the fp32 exponential is within 2e-7).
                        let allowed = [1 - 1e-6, 1, 1 + 1e-6].map { bfloat16Bits(Float(exact * $0)) }
                        XCTAssertTrue(
                            allowed.contains(bits[i]), "\(level), n \(n), [\(i)]: \(got) for e^\(values[i] - shift)")
                    }
                    XCTAssertEqual(Double(sum), expectedSum, accuracy: 2e-6 * expectedSum, "\(level), n \(n): sum")
                }
            }
        }
    }

    /// The softmax numerators of many rows at once (fp32 and bf16), which run rows shorter than a vector as one
    /// stream, against a call per row of the row kernels tested above: bit for bit, values and sums, at every
    /// level, for rows shorter than 4, 8 and 16 lanes, exactly a vector, and longer; with -inf scores, a row of
    /// nothing but -inf, and a NaN.
    func testRowsOfSoftmaxNumeratorsEqualACallPerRowAtEveryLevel() {
        let best = String(cString: ragseg_kernels_level())
        defer { XCTAssertEqual(ragseg_kernels_set_level(best), 1) }
        for level in ["baseline", "avx2", "avx512"] where ragseg_kernels_set_level(level) == 1 {
            for n in [1, 3, 7, 8, 13, 16, 17, 40] {
                let rows = 37
                var scores = (0..<(rows * n)).map { Float(($0 * 7919) % 401) / 40 - 9 + Float($0 % n) * 0.37 }
                scores[n / 2] = -.infinity
                for i in 0..<n { scores[3 * n + i] = -.infinity }  // a fully masked row
                scores[5 * n] = .nan

                // fp32: the per-row kernel in place, then the rows kernel on a copy.
                var perRow = scores, rowsResult = scores
                var perRowSums = [Float](repeating: 0, count: rows), rowsSums = perRowSums
                perRow.withUnsafeMutableBufferPointer { p in
                    for r in 0..<rows { perRowSums[r] = ragseg_exp_shifted_sum(p.baseAddress! + r * n, n) }
                }
                ragseg_exp_shifted_sum_rows(&rowsResult, rows, n, &rowsSums)
                XCTAssertEqual(bitPatterns(rowsResult), bitPatterns(perRow), "\(level), fp32, n \(n): values")
                XCTAssertEqual(bitPatterns(rowsSums), bitPatterns(perRowSums), "\(level), fp32, n \(n): sums")

                // bf16: each row shifted by its maximum (0 for a row of -inf).
                var perRowBits = [UInt16](repeating: 0xFFFF, count: rows * n), rowsBits = perRowBits
                scores.withUnsafeBufferPointer { p in
                    for r in 0..<rows {
                        let maximum = ragseg_row_max(p.baseAddress! + r * n, n)
                        perRowSums[r] = perRowBits.withUnsafeMutableBufferPointer { out in
                            ragseg_exp_minus_sum_bf16(
                                p.baseAddress! + r * n, n, maximum == -.infinity ? 0 : maximum,
                                out.baseAddress! + r * n)
                        }
                    }
                }
                var scratch = scores
                ragseg_exp_minus_max_sum_bf16_rows(&scratch, rows, n, &rowsBits, &rowsSums)
                XCTAssertEqual(rowsBits, perRowBits, "\(level), bf16, n \(n): values")
                XCTAssertEqual(bitPatterns(rowsSums), bitPatterns(perRowSums), "\(level), bf16, n \(n): sums")
            }
        }
    }

    private func bitPatterns(_ values: [Float]) -> [UInt32] { values.map(\.bitPattern) }

    func testRowCopyAtEveryLevel() {
        let best = String(cString: ragseg_kernels_level())
        defer { XCTAssertEqual(ragseg_kernels_set_level(best), 1) }
        let rows = 5, sourceWidth = 200
        let source = (0..<(rows * sourceWidth)).map { UInt16($0) }
        for level in ["baseline", "avx2", "avx512"] where ragseg_kernels_set_level(level) == 1 {
            for (offset, columns) in [(0, 96), (96, 64), (3, 33), (10, 1), (0, 200)] {
                var out = [UInt16](repeating: 0xFFFF, count: rows * columns + 1)
                source.withUnsafeBufferPointer { src in
                    ragseg_copy_rows_u16(src.baseAddress! + offset, sourceWidth, &out, columns, rows, columns)
                }
                let expected = (0..<rows).flatMap { r in source[(r * sourceWidth + offset)...].prefix(columns) }
                XCTAssertEqual(Array(out.prefix(rows * columns)), expected, "\(level), \(offset) + \(columns)")
                XCTAssertEqual(out.last, 0xFFFF, "\(level): wrote past the last row")
            }
        }
    }
}

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

// The vectorized GELU against the tensor core's libm-erff GELU (an independent implementation).
import TensorCore
import XCTest
@testable import SAM2

final class GELUTests: XCTestCase {
    func testMatchesErfGELU() {
        // Dense grid over [-12, 12] plus odd sizes so the scalar tail path runs too.
        let n = 240_007
        let values = (0..<n).map { Float($0) / Float(n - 1) * 24 - 12 }
        var ours = Tensor(shape: [n], data: values)
        geluErfInPlace(&ours)
        let reference = gelu(Tensor(shape: [n], data: values))
        var worst: Float = 0
        for i in 0..<n {
            // Tolerance 1e-6 * max(1, |x|): fp32 noise of a GELU value of size |x|.
            let err = abs(ours.data[i] - reference.data[i]) / max(1, abs(values[i]))
            worst = max(worst, err)
        }
        XCTAssertLessThanOrEqual(worst, 1e-6)
        print("GELU max scaled error \(worst)")
    }
}

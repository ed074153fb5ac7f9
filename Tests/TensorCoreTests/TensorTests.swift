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

import XCTest
@testable import TensorCore

/// conv2d splits the im2col work into tiles of output rows (~1 Mi column floats each). The small
/// PyTorch fixtures fit in one tile, so these shapes are chosen to need several tiles with a ragged
/// last one; output rows at tile edges are checked against a direct Double-precision convolution.
/// Tolerance 1e-4 · max(1, max|ref|), as for the fixtures.
final class ConvolutionTilingTests: XCTestCase {
    func check(
        channels: Int, size: Int, outChannels: Int, kernel: Int, stride: Int, padding: Int, groups: Int,
        rows: (Int) -> [Int], file: StaticString = #filePath, line: UInt = #line
    ) {
        let x = randomTensor([1, channels, size, size], seed: 21)
        let w = randomTensor([outChannels, channels / groups, kernel, kernel], seed: 22)
        let b = randomTensor([outChannels], seed: 23)
        let out = conv2d(x, weight: w, bias: b, stride: stride, padding: padding, groups: groups)
        let ho = (size + 2 * padding - kernel) / stride + 1
        XCTAssertEqual(out.shape, [1, outChannels, ho, ho], file: file, line: line)
        let cg = channels / groups, og = outChannels / groups
        var maxError = 0.0, scale = 1.0
        for oy in rows(ho) {
            for oc in 0..<outChannels {
                let g = oc / og
                for ox in 0..<ho {
                    var acc = Double(b.data[oc])
                    for ci in 0..<cg {
                        for ky in 0..<kernel {
                            let iy = oy * stride - padding + ky
                            if iy < 0 || iy >= size { continue }
                            for kx in 0..<kernel {
                                let ix = ox * stride - padding + kx
                                if ix < 0 || ix >= size { continue }
                                acc +=
                                    Double(x.data[((g * cg + ci) * size + iy) * size + ix])
                                    * Double(w.data[((oc * cg + ci) * kernel + ky) * kernel + kx])
                            }
                        }
                    }
                    maxError = max(maxError, abs(acc - Double(out.data[(oc * ho + oy) * ho + ox])))
                    scale = max(scale, abs(acc))
                }
            }
        }
        XCTAssertLessThanOrEqual(maxError, 1e-4 * scale, "max abs error \(maxError)", file: file, line: line)
    }

    /// 3x3 stride 1: 576 column rows x 130 wide -> 14 output rows per tile, 10 tiles (last has 4).
    func testStride1ManyTiles() {
        check(channels: 64, size: 130, outChannels: 8, kernel: 3, stride: 1, padding: 1, groups: 1) { ho in
            [0, 13, 14, 27, 28, ho - 5, ho - 4, ho - 1]
        }
    }

    /// 7x7 stride 2 with 2 groups: 1568 column rows x 65 wide -> 10 rows per tile, 7 tiles (last has 5).
    func testStride2GroupedManyTiles() {
        check(channels: 64, size: 130, outChannels: 8, kernel: 7, stride: 2, padding: 3, groups: 2) { ho in
            [0, 9, 10, 19, ho - 6, ho - 5, ho - 1]
        }
    }

    /// A Linear over `convolutionPatchRows` is the convolution, channels-last (how Hiera's patch embedding runs),
    /// checked against `conv2d` (itself checked against PyTorch's conv2d in ParityTests) for the padded
    /// stride-4 7x7 case on a ragged map and an unpadded 2x2 one.
    func testPatchRowsTimesWeightIsTheConvolution() {
        for (kernel, stride, padding, h, w) in [(7, 4, 3, 30, 26), (2, 2, 0, 8, 6)] {
            let x = randomTensor([3, h, w], seed: 41)
            let weight = randomTensor([5, 3, kernel, kernel], seed: 42), bias = randomTensor([5], seed: 43)
            let expected = conv2d(x, weight: weight, bias: bias, stride: stride, padding: padding)
            let rows = convolutionPatchRows(x, kernel: kernel, stride: stride, padding: padding)
            let ho = expected.dim(1), wo = expected.dim(2)
            XCTAssertEqual(rows.shape, [ho * wo, 3 * kernel * kernel])
            let y = linear(rows, weight: weight.reshaped([5, 3 * kernel * kernel]), bias: bias)
            for o in 0..<5 {
                for p in 0..<(ho * wo) {
                    XCTAssertEqual(
                        y.data[p * 5 + o], expected.data[o * ho * wo + p], accuracy: 1e-5, "\(kernel) (\(o), \(p))")
                }
            }
        }
    }
}

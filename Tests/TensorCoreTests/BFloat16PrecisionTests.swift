import Foundation
import XCTest

@testable import TensorCore

/// Precision.bf16: oneDNN products on bf16-rounded operands, checked against Double products of the same
/// rounded values (so the expectation never comes from the code under test). Skipped on CPUs without native
/// bf16, where `Precision.use(.bf16)` refuses (that refusal is what such a CPU must see).
final class BFloat16PrecisionTests: XCTestCase {
    override func setUpWithError() throws {
        guard OneDNN.hasNativeBFloat16 else {
            XCTAssertThrowsError(try Precision.use(.bf16))
            throw XCTSkip("no native bf16 on this CPU (oneDNN ISA \(OneDNN.isaName))")
        }
    }

    override func tearDownWithError() throws { try Precision.use(.fp32) }

    func testConversionMatchesSwiftRounding() {
        var values: [Float] = [
            0, -0, 1, -1, 1.00390625, 1.01171875, 3.4e38, -3.4e38, .infinity, -.infinity, .nan, -.nan, 65504,
            // Denormals (kept, not flushed), a tie, the extremes.
            Float(bitPattern: 0x0001_8000), Float(bitPattern: 0x8000_7FFF), .leastNonzeroMagnitude,
            .greatestFiniteMagnitude,
        ]
        values += randomTensor([1000], seed: 3).data.map { $0 * 1e3 }
        let tensor = Tensor(shape: [values.count], data: values)
        let converted = bfloat16Array(tensor)
        for (x, bits) in zip(values, converted) {
            XCTAssertEqual(bits, bfloat16Bits(x), "value \(x)")
        }
    }

    func testLinearRunsOnRoundedOperands() throws {
        // 300 x 96 -> 256: 7.4 M multiply-adds, above the size where bf16 takes over; rows not a multiple of 16.
        let x = randomTensor([300, 96], seed: 1), w = randomTensor([256, 96], seed: 2), b = randomTensor([256], seed: 4)
        let layer = Linear(weight: w, bias: b)
        try Precision.use(.bf16)
        let y = layer(x)
        var residual = randomTensor([300, 256], seed: 5)
        let start = residual
        layer.add(x, into: &residual)
        try Precision.use(.fp32)
        let x16 = roundedToBFloat16(x), w16 = roundedToBFloat16(w)
        var worst: Double = 0
        for i in 0..<300 {
            for j in 0..<256 {
                var dot = Double(b.data[j])
                for c in 0..<96 { dot += Double(x16.data[i * 96 + c]) * Double(w16.data[j * 96 + c]) }
                worst = max(worst, abs(Double(y.data[i * 256 + j]) - dot))
                XCTAssertEqual(
                    Double(residual.data[i * 256 + j]), Double(start.data[i * 256 + j]) + dot, accuracy: 1e-4)
            }
        }
        // fp32 accumulation of 96 products of size <= 1: measured 2.6e-6. Unrounded fp32 inputs would miss by
        // ~1e-2 (each differs from its rounded value by up to 2^-9 relative), far outside this bound.
        XCTAssertLessThan(worst, 1e-4)
        // And the bf16 result really differs from the fp32 one (the oneDNN path ran).
        XCTAssertNotEqual(y, layer(x))
    }

    func testAttentionAgainstDoubleOnRoundedOperands() throws {
        // 2 heads, 200 queries x 300 keys, d = 64: each product 3.8 M multiply-adds.
        let q = randomTensor([200, 128], seed: 6), k = randomTensor([300, 128], seed: 7)
        let v = randomTensor([300, 128], seed: 8)
        try Precision.use(.bf16)
        let out = attention(query: q, key: k, value: v, heads: 2)
        try Precision.use(.fp32)
        let rows = [0, 1, 99, 128, 199]
        let expected = naiveAttentionRows(
            q: roundedToBFloat16(q), k: roundedToBFloat16(k), v: roundedToBFloat16(v), heads: 2,
            scale: 1 / 8, rows: rows)
        var worst: Float = 0
        for (n, i) in rows.enumerated() {
            for c in 0..<128 { worst = max(worst, abs(out.data[i * 128 + c] - expected[n][c])) }
        }
        // The probabilities are also rounded to bf16 before PV (as autocast does), up to 2^-9 relative per
        // term, which the Double reference does not do: measured 1.9e-4.
        XCTAssertLessThan(worst, 5e-4)
    }

    func testFeedForwardRoundsTheActivatedHiddenOnce() throws {
        // 300 rows, 96 -> 384 -> 96: the bf16 chunk path (bias and activation inside oneDNN, hidden stored as
        // bf16) against Double sums of the rounded operands, the hidden activated in Double and rounded once.
        let x = randomTensor([300, 96], seed: 11)
        let w1 = randomTensor([384, 96], seed: 12), b1 = randomTensor([384], seed: 13)
        let w2 = randomTensor([96, 384], seed: 14), b2 = randomTensor([96], seed: 15)
        let hidden = Linear(weight: w1, bias: b1), output = Linear(weight: w2, bias: b2)
        let start = randomTensor([300, 96], seed: 16)
        let x16 = roundedToBFloat16(x), w116 = roundedToBFloat16(w1), w216 = roundedToBFloat16(w2)
        for activation in [FeedForwardActivation.gelu, .relu] {
            var y = start
            try Precision.use(.bf16)
            addFeedForward(into: &y, input: x, hidden: hidden, output: output, activation: activation)
            try Precision.use(.fp32)
            var worst: Double = 0
            for i in 0..<300 {
                // h: the hidden values rounded as expected; step: how far the other rounding lies for a value
                // within fp32 accumulation noise (1e-5 relative) of a bf16 rounding boundary, 0 elsewhere.
                var h = [Double](repeating: 0, count: 384), step = [Double](repeating: 0, count: 384)
                for j in 0..<384 {
                    var dot = Double(b1.data[j])
                    for c in 0..<96 { dot += Double(x16.data[i * 96 + c]) * Double(w116.data[j * 96 + c]) }
                    let a = activation == .gelu ? 0.5 * dot * (1 + erf(dot / 2.0.squareRoot())) : max(dot, 0)
                    let rounded = { (v: Double) in Double(float(fromBFloat16: bfloat16Bits(Float(v)))) }
                    h[j] = rounded(a)
                    step[j] = max(abs(rounded(a * (1 + 1e-5)) - h[j]), abs(rounded(a * (1 - 1e-5)) - h[j]))
                }
                for j in 0..<96 {
                    var dot = Double(start.data[i * 96 + j]) + Double(b2.data[j]), slack = 0.0
                    for c in 0..<384 {
                        dot += h[c] * Double(w216.data[j * 384 + c])
                        slack += step[c] * abs(Double(w216.data[j * 384 + c]))
                    }
                    worst = max(worst, abs(Double(y.data[i * 96 + j]) - dot) - slack)
                }
            }
            // Beyond the boundary cases' slack: fp32 accumulation and oneDNN's erf, measured 5.0e-5 (GELU) and
            // 2.5e-5 (ReLU). Rounding before the activation, or not rounding the hidden values, misses by 1e-2
            // or more.
            XCTAssertLessThan(worst, 1e-4, "\(activation)")
        }
    }

    func testAttentionOverSeveralKeyTiles() throws {
        // 5,000 keys: three key tiles of 1,667, 1,667 and 1,666 (attentionKeyTile 2,048). The last keys score
        // highest, so each later tile raises the rows' running maximum and the earlier partial sums must be
        // rescaled.
        let q = randomTensor([70, 64], seed: 21)
        var k = randomTensor([5000, 64], seed: 22)
        for i in 3400..<5000 { for c in 0..<64 { k.data[i * 64 + c] *= 3 } }
        let v = randomTensor([5000, 64], seed: 23)
        XCTAssertGreaterThan(5000, attentionKeyTile * 2, "the test needs at least three key tiles")
        try Precision.use(.bf16)
        let out = attention(query: q, key: k, value: v, heads: 1)
        try Precision.use(.fp32)
        let rows = Array(0..<70)
        let expected = naiveAttentionRows(
            q: roundedToBFloat16(q), k: roundedToBFloat16(k), v: roundedToBFloat16(v), heads: 1, scale: 1 / 8,
            rows: rows)
        var worst: Float = 0
        for i in rows { for c in 0..<64 { worst = max(worst, abs(out.data[i * 64 + c] - expected[i][c])) } }
        // As with one tile: the bf16 rounding of the probabilities, measured 6.2e-5.
        // The running maxima rise by about 2 across the tiles: partial sums left unscaled would weigh the first
        // tiles several times too much, far outside this bound.
        XCTAssertLessThan(worst, 5e-4)
    }

    func testManySmallAttentionsRunBatched() throws {
        // 64 windows x 2 heads of 49 tokens, d = 32: 77 k multiply-adds per item (under the bf16 size) but 9.8 M
        // in all, so the items run as batched bf16 products, 109 items per call (two calls).
        let q = randomTensor([64, 49, 64], seed: 31), k = randomTensor([64, 49, 64], seed: 32)
        let v = randomTensor([64, 49, 64], seed: 33)
        try Precision.use(.bf16)
        let out = attention(query: q, key: k, value: v, heads: 2)
        try Precision.use(.fp32)
        XCTAssertNotEqual(out, attention(query: q, key: k, value: v, heads: 2), "the bf16 path ran")
        var worst: Float = 0
        for b in [0, 1, 37, 63] {
            let window = { (x: Tensor) in roundedToBFloat16(sliced(x, axis: 0, range: b..<(b + 1)).reshaped([49, 64])) }
            let expected = naiveAttentionRows(
                q: window(q), k: window(k), v: window(v), heads: 2, scale: 1 / 32.0.squareRoot(), rows: Array(0..<49))
            for r in 0..<49 {
                for c in 0..<64 { worst = max(worst, abs(out.data[(b * 49 + r) * 64 + c] - expected[r][c])) }
            }
        }
        // The probabilities' bf16 rounding (2^-9 relative per term), which averages out less over 49 keys than
        // over hundreds: measured 5.1e-4. A value from the wrong window or head would miss by ~0.1 or more.
        XCTAssertLessThan(worst, 2e-3)
    }

    /// The bf16-activation forms (a layer norm, a product and an attention writing bf16; a product, an attention
    /// and a feed-forward reading bf16) against the fp32-activation forms under bf16, rounded: each rounds the
    /// same fp32 value once, so they agree bit for bit. Checked for one head and several, tiled and batched.
    func testBFloat16ActivationsEqualRoundedFP32Activations() throws {
        let x = randomTensor([300, 96], seed: 41)
        let norm = LayerNorm(weight: randomTensor([96], seed: 42), bias: randomTensor([96], seed: 43), eps: 1e-6)
        let layer = Linear(weight: randomTensor([128, 96], seed: 44), bias: randomTensor([128], seed: 45))
        try Precision.use(.bf16)
        let normed = norm.bfloat16(x)
        XCTAssertEqual(normed, BFloat16Tensor(rounding: norm(x)), "layer norm")
        XCTAssertEqual(layer.bfloat16(normed), BFloat16Tensor(rounding: layer(normed.floats)), "product to bf16")
        let product = layer(normed)
        XCTAssertEqual(product, layer(normed.floats), "product from bf16")

        for (shape, heads) in [([300, 128], 1), ([300, 128], 4), ([64, 49, 64], 2)] {
            let q = BFloat16Tensor(rounding: randomTensor(shape, seed: 46))
            let k = BFloat16Tensor(rounding: randomTensor(shape, seed: 47))
            let v = BFloat16Tensor(rounding: randomTensor(shape, seed: 48))
            XCTAssertEqual(
                attention(query: q, key: k, value: v, heads: heads),
                BFloat16Tensor(rounding: attention(query: q.floats, key: k.floats, value: v.floats, heads: heads)),
                "attention \(shape), \(heads) heads")
        }

        let hidden = Linear(weight: randomTensor([384, 96], seed: 49), bias: randomTensor([384], seed: 50))
        let output = Linear(weight: randomTensor([96, 384], seed: 51), bias: randomTensor([96], seed: 52))
        var fromBFloat16 = randomTensor([300, 96], seed: 53), fromFP32 = fromBFloat16
        addFeedForward(into: &fromBFloat16, input: normed, hidden: hidden, output: output, activation: .gelu)
        addFeedForward(into: &fromFP32, input: normed.floats, hidden: hidden, output: output, activation: .gelu)
        XCTAssertEqual(fromBFloat16, fromFP32, "feed-forward from bf16")
        try Precision.use(.fp32)
        XCTAssertNotEqual(product, layer(normed.floats), "the product ran in bf16 (its weight rounded)")
    }
}

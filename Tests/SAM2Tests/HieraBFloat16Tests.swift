// Hiera blocks under Precision.bf16 with bf16 activations (`forwardBFloat16`): the same roundings of the same
// fp32 values as the block with fp32 activations whose products round their inputs (`forward` under bf16), so
// the two must agree to fp32 noise; and both must differ from fp32 (bf16 really ran) by a bf16-sized amount.
import TensorCore
import XCTest

@testable import SAM2

final class HieraBFloat16Tests: XCTestCase {
    override func setUpWithError() throws {
        guard OneDNN.hasNativeBFloat16 else { throw XCTSkip("no native bf16 on this CPU (\(OneDNN.isaName))") }
    }

    override func tearDownWithError() throws { try Precision.use(.fp32) }

    /// Values of about unit size with a per-channel offset, like a residual stream.
    private func tokens(_ height: Int, _ width: Int, _ channels: Int, seed: UInt64) -> Tensor {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 &+ 1
        return Tensor(shape: [height, width, channels]) { out in
            for i in 0..<out.count {
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                out[i] = Float(state >> 40) / Float(1 << 24) * 4 - 2 + Float(i % channels) * 0.01
            }
        }
    }

    private func check(_ layout: SAM2Config.Block, height: Int, width: Int, seed: UInt64) throws {
        let block = try HieraBlock(SAM2RandomWeights(seed: seed).scope["blocks.0"], layout: layout)
        let x = tokens(height, width, layout.dimIn, seed: seed)
        let fp32 = block(x)
        try Precision.use(.bf16)
        XCTAssertTrue(block.carriesBFloat16Activations(height: height, width: width), "\(layout): sizes too small")
        let roundedByConsumers = block.forward(x)
        let carried = block(x)
        try Precision.use(.fp32)
        XCTAssertEqual(carried.shape, fp32.shape)
        var scale: Float = 0, sameArithmetic: Float = 0, bf16Error: Float = 0
        for i in 0..<fp32.count {
            scale = max(scale, abs(fp32.data[i]))
            sameArithmetic = max(sameArithmetic, abs(carried.data[i] - roundedByConsumers.data[i]))
            bf16Error = max(bf16Error, abs(carried.data[i] - fp32.data[i]))
        }
        print("\(layout): bf16 activations vs bf16 products \(sameArithmetic), vs fp32 \(bf16Error), scale \(scale)")
        // The same roundings in both: measured 0 (an unrounded q, or a wrong head or window, is off by more
        // than 1e-3 of the scale).
        XCTAssertLessThanOrEqual(sameArithmetic, 1e-5 * scale, "\(layout)")
        // bf16 against fp32: each rounding is up to 2^-9 relative; measured ~3e-3 of the scale.
        XCTAssertGreaterThan(bf16Error, 1e-5 * scale, "\(layout): bf16 did not run")
        XCTAssertLessThanOrEqual(bf16Error, 2e-2 * scale, "\(layout)")
    }

    /// Stage 1 of Hiera-T: one head, windows of 8 over a grid that is not a multiple of 8 (padded windows).
    func testWindowedBlockWithPadding() throws {
        try check(.init(dimIn: 96, dimOut: 96, heads: 1, window: 8, qPool: false), height: 60, width: 60, seed: 1)
    }

    /// A stage change: width doubles (shortcut projection), heads double, queries pooled inside windows of 4.
    func testPooledBlockWithTwoHeads() throws {
        try check(.init(dimIn: 96, dimOut: 192, heads: 2, window: 4, qPool: true), height: 64, width: 64, seed: 2)
    }

    /// A global block with several heads (the operands are reordered head by head).
    func testGlobalBlockWithFourHeads() throws {
        try check(.init(dimIn: 192, dimOut: 192, heads: 4, window: 0, qPool: false), height: 32, width: 32, seed: 3)
    }

    /// A global block that pools its queries over the whole map.
    func testGlobalPooledBlock() throws {
        try check(.init(dimIn: 96, dimOut: 192, heads: 2, window: 0, qPool: true), height: 48, width: 48, seed: 4)
    }
}

/// A memory-attention layer under Precision.bf16 with bf16 activations (`forwardBFloat16`: norms, RoPE'd q and
/// k, values and attention outputs stored as bf16, the memory rounded once) against the layer whose products
/// round their fp32 inputs: the same arithmetic, so they agree to fp32 noise, and both differ from fp32.
final class MemoryAttentionBFloat16Tests: XCTestCase {
    override func setUpWithError() throws {
        guard OneDNN.hasNativeBFloat16 else { throw XCTSkip("no native bf16 on this CPU (\(OneDNN.isaName))") }
    }

    override func tearDownWithError() throws { try Precision.use(.fp32) }

    func testLayerWithBFloat16ActivationsMatchesRoundedProducts() throws {
        let config = SAM2Config.tiny, grid = 32, tokens = grid * grid, pointers = 4
        let layer = try MemoryAttentionLayer(SAM2RandomWeights(seed: 5).scope["layers.0"], config: config)
        let rope = AxialRoPE(dim: config.hiddenDim, gridWidth: grid, gridHeight: grid)
        let random = SAM2RandomWeights(seed: 6)
        let x = try random.tensor("x", shape: [tokens, config.hiddenDim]).scaledBy(8)
        // Two memory frames of the grid plus pointer tokens (not rotated).
        let memory = try random.tensor("memory", shape: [2 * tokens + pointers, config.memoryDim]).scaledBy(8)
        let keys = try random.tensor("keys", shape: memory.shape).scaledBy(8)
        let fp32 = layer(x, memoryKeys: keys, memoryValues: memory, pointerTokens: pointers, rope: rope)
        try Precision.use(.bf16)
        XCTAssertTrue(MemoryAttention.carriesBFloat16Activations(config, tokens: tokens, memoryTokens: memory.dim(0)))
        let roundedByConsumers = layer(x, memoryKeys: keys, memoryValues: memory, pointerTokens: pointers, rope: rope)
        let carried = layer.forwardBFloat16(
            x, memoryKeys: BFloat16Tensor(rounding: keys), memoryValues: BFloat16Tensor(rounding: memory),
            pointerTokens: pointers, rope: rope)
        try Precision.use(.fp32)
        var scale: Float = 0, sameArithmetic: Float = 0, bf16Error: Float = 0
        for i in 0..<fp32.count {
            scale = max(scale, abs(fp32.data[i]))
            sameArithmetic = max(sameArithmetic, abs(carried.data[i] - roundedByConsumers.data[i]))
            bf16Error = max(bf16Error, abs(carried.data[i] - fp32.data[i]))
        }
        print(
            "memory attention layer: bf16 activations vs bf16 products \(sameArithmetic),",
            "vs fp32 \(bf16Error), scale \(scale)")
        // Measured 0; RoPE applied to the pointer tokens, or an unrounded value, misses by far more.
        XCTAssertLessThanOrEqual(sameArithmetic, 1e-5 * scale)
        XCTAssertGreaterThan(bf16Error, 1e-5 * scale, "bf16 did not run")
        XCTAssertLessThanOrEqual(bf16Error, 2e-2 * scale)
    }
}

extension Tensor {
    fileprivate func scaledBy(_ factor: Float) -> Tensor { Tensor(shape: shape, data: data.map { $0 * factor }) }
}

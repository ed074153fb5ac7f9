import CKernels
import XCTest
@testable import TensorCore

/// Every op against PyTorch outputs made by tools/make_tensorcore_fixtures.py.
/// Tolerance: max abs error ≤ 1e-4 · max(1, max|ref|) for float math; exact for pure data movement
/// (pooling, layout, nearest resampling) and for bf16/f16 rounding.
final class ParityTests: XCTestCase {
    func f(_ name: String) throws -> Tensor { try NPYFixture.load(name) }

    func testLinearWithBias() throws {
        assertClose(
            linear(try f("linear_x"), weight: try f("linear_w"), bias: try f("linear_b")), try f("linear_out"), "linear"
        )
    }

    func testMatmulTransposes() throws {
        assertClose(matmul(try f("matmul_a"), try f("matmul_b"), transposeB: true), try f("matmul_out_nt"), "a·bᵀ")
        assertClose(
            matmul(try f("matmul_tn_a"), try f("matmul_tn_b"), transposeA: true), try f("matmul_tn_out"), "aᵀ·b")
        assertClose(
            matmul(try f("matmul_tt_a"), try f("matmul_tt_b"), transposeA: true, transposeB: true),
            try f("matmul_tt_out"), "aᵀ·bᵀ")
    }

    func conv(_ c: String, stride: Int = 1, padding: Int = 0, groups: Int = 1) throws {
        let out = conv2d(
            try f("\(c)_x"), weight: try f("\(c)_w"), bias: try f("\(c)_b"),
            stride: stride, padding: padding, groups: groups)
        assertClose(out, try f("\(c)_out"), c)
    }

    func testConv2dStride2Padding1() throws { try conv("conv_s2p1", stride: 2, padding: 1) }
    func testConv2dGroups() throws { try conv("conv_groups", padding: 1, groups: 2) }
    func testConv2dDepthwise7x7() throws { try conv("conv_depthwise7", padding: 3, groups: 8) }
    func testConv2d1x1() throws { try conv("conv_1x1") }
    func testConv2dPatchEmbed7x7Stride4() throws { try conv("conv_patch", stride: 4, padding: 3) }

    func testConv2dUnbatchedMatchesBatched() throws {
        let x = try f("conv_patch_x")
        let unbatched = conv2d(
            x.reshaped(Array(x.shape.dropFirst())), weight: try f("conv_patch_w"),
            bias: try f("conv_patch_b"), stride: 4, padding: 3)
        let ref = try f("conv_patch_out")
        assertClose(unbatched, ref.reshaped(Array(ref.shape.dropFirst())), "conv [C,H,W]")
    }

    func testConvTranspose2x2() throws {
        assertClose(
            convTranspose2x2(try f("convT_x"), weight: try f("convT_w"), bias: try f("convT_b")), try f("convT_out"),
            "convT")
    }

    func testLayerNorm() throws {
        assertClose(
            layerNorm(try f("layernorm_x"), weight: try f("layernorm_w"), bias: try f("layernorm_b"), eps: 1e-6),
            try f("layernorm_out"), "layerNorm")
    }

    func testLayerNorm2d() throws {
        assertClose(
            layerNorm2d(
                try f("layernorm2d_x"), weight: try f("layernorm2d_w"), bias: try f("layernorm2d_b"), eps: 1e-6),
            try f("layernorm2d_out"), "layerNorm2d")
    }

    func testActivations() throws {
        let x = try f("act_x")
        assertClose(gelu(x), try f("act_gelu"), "gelu")
        assertClose(relu(x), try f("act_relu"), relative: 0, "relu")
        assertClose(silu(x), try f("act_silu"), "silu")
        assertClose(sigmoid(x), try f("act_sigmoid"), "sigmoid")
        var y = x
        geluInPlace(&y)
        assertClose(y, try f("act_gelu"), "geluInPlace")
        // A length that is not a multiple of 8 also runs the scalar tail of the vectorized maps.
        let odd = sliced(x.reshaped([x.count]), axis: 0, range: 0..<1199)
        for (name, op) in [("gelu", gelu), ("silu", silu), ("sigmoid", sigmoid)] as [(String, (Tensor) -> Tensor)] {
            let ref = sliced(try f("act_\(name)").reshaped([x.count]), axis: 0, range: 0..<1199)
            assertClose(op(odd), ref, "\(name) odd length")
        }
    }

    func testSoftmax() throws { assertClose(softmax(try f("softmax_x")), try f("softmax_out"), "softmax") }

    /// The transcendental kernels exist once per instruction-set level (CKernels); the CPU picks one, so
    /// the others are forced here in turn. Levels this CPU lacks are reported, not silently passed.
    func testActivationsAndSoftmaxAtEveryInstructionSetLevel() throws {
        let best = String(cString: ragseg_kernels_level())
        defer { XCTAssertEqual(ragseg_kernels_set_level(best), 1) }
        let x = try f("act_x").reshaped([1200])
        var ran: [String] = []
        for level in ["baseline", "avx2", "avx512"] {
            guard ragseg_kernels_set_level(level) == 1 else { continue }
            ran.append(level)
            XCTAssertEqual(String(cString: ragseg_kernels_level()), level)
            for length in [1200, 1199, 13, 1] {  // vector body only, body + tail, tail only
                let input = sliced(x, axis: 0, range: 0..<length)
                for (name, op) in [("gelu", gelu), ("silu", silu), ("sigmoid", sigmoid), ("relu", relu)]
                    as [(String, (Tensor) -> Tensor)]
                {
                    let ref = sliced(try f("act_\(name)").reshaped([1200]), axis: 0, range: 0..<length)
                    assertClose(
                        op(input), ref, relative: name == "relu" ? 0 : 1e-4, "\(name) at \(level), length \(length)")
                }
            }
            assertClose(softmax(try f("softmax_x")), try f("softmax_out"), "softmax at \(level)")
        }
        XCTAssertTrue(ran.contains("baseline"), "the baseline kernels must run everywhere")
        print("CKernels levels tested on this CPU: \(ran.joined(separator: ", ")) (best: \(best))")
    }

    func testAttentionMultiHeadBatchedRaggedBlocks() throws {
        let out = attention(
            query: try f("attention_q"), key: try f("attention_k"), value: try f("attention_v"), heads: 3)
        assertClose(out, try f("attention_out"), "attention")
    }

    func testMaxPool() throws {
        assertClose(maxPool2x2(try f("maxpool_x")), try f("maxpool_out"), relative: 0, "maxPool2x2")
        assertClose(
            maxPool2x2ChannelsLast(try f("maxpool_cl_x")), try f("maxpool_cl_out"), relative: 0,
            "maxPool2x2ChannelsLast")
    }

    func resize(_ c: String, _ size: (Int, Int), _ mode: ResampleMode, antialias: Bool = false, exact: Bool = false)
        throws
    {
        let out = interpolate(try f("\(c)_x"), size: (height: size.0, width: size.1), mode: mode, antialias: antialias)
        assertClose(out, try f("\(c)_out"), relative: exact ? 0 : 1e-4, c)
    }

    func testNearest() throws {
        try resize("nearest_up", (13, 9), .nearest, exact: true)
        try resize("nearest_down", (6, 7), .nearest, exact: true)
        let x2 = interpolate(try f("nearest_x2_x"), scaleFactor: (height: 2, width: 2), mode: .nearest)
        assertClose(x2, try f("nearest_x2_out"), relative: 0, "nearest x2")
    }

    func testBilinear() throws {
        try resize("bilinear_up", (16, 20), .bilinear)
        try resize("bilinear_down", (7, 5), .bilinear)
    }

    func testBilinearAntialias() throws {
        try resize("bilinear_aa_down64", (16, 16), .bilinear, antialias: true)
        try resize("bilinear_aa_down37", (10, 10), .bilinear, antialias: true)
        try resize("bilinear_aa_up", (16, 20), .bilinear, antialias: true)
    }

    func testBicubic() throws {
        try resize("bicubic_up", (16, 16), .bicubic)
        try resize("bicubic_down", (16, 16), .bicubic)
        try resize("bicubic_nonsquare", (24, 20), .bicubic)
    }

    /// DINOv2 official position-embedding resize: the coordinate map uses the given factor, not 37/16.
    func testBicubicScaleFactorUsesGivenFactor() throws {
        let factor = (16 + 0.1) / 37.0
        let out = interpolate(
            try f("bicubic_scalefactor_x"), scaleFactor: (height: factor, width: factor), mode: .bicubic)
        assertClose(out, try f("bicubic_scalefactor_out"), "bicubic scale_factor")
        // And it must differ from the size form, or this test would not distinguish the two.
        let sized = interpolate(try f("bicubic_scalefactor_x"), size: (height: 16, width: 16), mode: .bicubic)
        XCTAssertGreaterThan(zip(sized.data, out.data).map { abs($0 - $1) }.max()!, 1e-3)
    }

    func testBicubicAntialias() throws {
        try resize("bicubic_aa_down", (16, 16), .bicubic, antialias: true)
        try resize("bicubic_aa_up", (64, 64), .bicubic, antialias: true)
    }

    func testBFloat16RoundingMatchesTorchIncludingTies() throws {
        let x = try f("bf16_x"), ref = try f("bf16_out")
        // Bit-exact (the fixture includes values that round to ±inf, so compare bit patterns, not differences).
        let rounded = roundedToBFloat16(x)
        for (i, (v, r)) in zip(x.data, ref.data).enumerated() {
            XCTAssertEqual(float(fromBFloat16: bfloat16Bits(v)).bitPattern, r.bitPattern, "bf16 of \(v)")
            XCTAssertEqual(rounded.data[i].bitPattern, r.bitPattern, "roundedToBFloat16 of \(v)")
        }
    }

    func testFloat16RoundingMatchesTorch() throws {
        let x = try f("f16_x"), ref = try f("f16_out")
        for (v, r) in zip(x.data, ref.data) {
            XCTAssertEqual(float(fromFloat16: float16Bits(v)).bitPattern, r.bitPattern, "f16 of \(v)")
        }
    }
}

/// Data movement and simple arithmetic against PyTorch: exact (these only copy, or do one IEEE op per element).
final class LayoutAndArithmeticTests: XCTestCase {
    func f(_ name: String) throws -> Tensor { try NPYFixture.load(name) }

    func testBinaryOps() throws {
        let a = try f("binary_a"), b = try f("binary_b")
        assertClose(add(a, b), try f("binary_add"), relative: 0, "add")
        assertClose(mul(a, b), try f("binary_mul"), relative: 0, "mul")
        assertClose(scaled(a, by: -1.75), try f("binary_scaled"), relative: 0, "scaled")
        var c = a
        addInPlace(&c, b)
        assertClose(c, try f("binary_add"), relative: 0, "addInPlace")
    }

    func testPermuted() throws {
        let x = try f("layout_x")
        assertClose(permuted(x, [0, 2, 3, 1]), try f("layout_perm0231"), relative: 0, "permute 0231")
        assertClose(permuted(x, [3, 1, 2, 0]), try f("layout_perm3120"), relative: 0, "permute 3120")
        assertClose(permuted(x, [1, 0, 2, 3]), try f("layout_perm1023"), relative: 0, "permute 1023")
    }

    func testSliced() throws {
        let x = try f("layout_x")
        assertClose(sliced(x, axis: 2, range: 1..<3), try f("layout_slice_ax2"), relative: 0, "slice axis 2")
        assertClose(sliced(x, axis: -1, range: 2..<5), try f("layout_slice_ax3"), relative: 0, "slice axis -1")
    }

    func testConcatenated() throws {
        let x = try f("layout_x")
        assertClose(concatenated([x, try f("concat_y")], axis: 1), try f("concat_cat_ax1"), relative: 0, "cat axis 1")
        assertClose(concatenated([x, try f("concat_z")], axis: 3), try f("concat_cat_ax3"), relative: 0, "cat axis 3")
    }

    func testScaleFactorForms() throws {
        let n = interpolate(try f("nearest_sf_x"), scaleFactor: (height: 1.7, width: 0.45), mode: .nearest)
        assertClose(n, try f("nearest_sf_out"), relative: 0, "nearest scale_factor")
        let b = interpolate(try f("bilinear_sf_x"), scaleFactor: (height: 1.7, width: 0.45), mode: .bilinear)
        assertClose(b, try f("bilinear_sf_out"), "bilinear scale_factor")
    }

    /// Multi-threaded and single-threaded runs of the parallel paths give the same results.
    func testThreadCountDoesNotChangeResults() throws {
        let x = randomTensor([1, 16, 40, 40], seed: 5), w = randomTensor([16, 1, 7, 7], seed: 6)
        let q = randomTensor([600, 32], seed: 7), k = randomTensor([300, 32], seed: 8)
        let saved = Threads.count
        defer { Threads.set(saved) }
        Threads.set(1)
        let conv1 = conv2d(x, weight: w, bias: nil, padding: 3, groups: 16),
            att1 = attention(query: q, key: k, value: k, heads: 4)
        Threads.set(2)
        let conv2 = conv2d(x, weight: w, bias: nil, padding: 3, groups: 16),
            att2 = attention(query: q, key: k, value: k, heads: 4)
        assertClose(conv2, conv1, relative: 0, "depthwise conv threads")
        assertClose(att2, att1, relative: 1e-6, "attention threads")
    }
}

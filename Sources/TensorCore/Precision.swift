import CDNNL
import Synchronization

/// The arithmetic of the large matrix products, for the whole process.
///
/// `fp32` (the default) is the parity mode: every product is an OpenBLAS sgemm. `bf16` runs the large
/// products (linear layers, Hiera's patch embedding read as one, attention's QKᵀ and PV) through oneDNN with
/// bfloat16 inputs and fp32 accumulation, as PyTorch's `autocast(dtype=torch.bfloat16)` does on CPU;
/// normalizations, softmax, residual sums, the other convolutions and every elementwise step compute in fp32.
/// Activations whose only readers are bf16 products (the FFN's hidden values, and in Hiera and memory attention
/// the norms' outputs, q, k, v and attention outputs) are stored as bf16 (`BFloat16Tensor`), rounded once by
/// their writer: the same roundings the readers would make (docs/bf16.md). Weights are rounded to bf16 once, on
/// a layer's first bf16 product (`BFloat16Weight`).
public enum Precision: String, Sendable, CaseIterable, CustomStringConvertible {
    case fp32
    case bf16

    public var description: String { rawValue }

    /// The precision products use now (read at each product; set once, before the models run).
    public static var current: Precision { state.load(ordering: .relaxed) == 1 ? .bf16 : .fp32 }

    /// Selects `precision` for the products that follow. bf16 is refused (an error saying why) when oneDNN
    /// does not run native bf16 dot products on this CPU (AVX512_BF16 or AMX): emulated bf16 measured
    /// slower than fp32 sgemm, so it would be a slower and less accurate mode. A probe product runs first,
    /// so a oneDNN that cannot build the primitives fails here, not in the middle of a model.
    public static func use(_ precision: Precision) throws {
        if precision == .bf16 {
            guard OneDNN.hasNativeBFloat16 else { throw PrecisionError.noNativeBFloat16(isa: OneDNN.isaName) }
            try OneDNN.probe()
        }
        state.store(precision == .bf16 ? 1 : 0, ordering: .relaxed)
    }

    private static let state = Atomic<Int>(0)
}

public enum PrecisionError: Error, CustomStringConvertible, Sendable {
    case noNativeBFloat16(isa: String)
    case oneDNN(operation: String, status: String)

    public var description: String {
        switch self {
        case .noNativeBFloat16(let isa):
            return """
                --precision bf16 needs a CPU with native bf16 dot products (AVX512_BF16 or AMX); oneDNN \
                reports '\(isa)' here. Use --precision fp32.
                """
        case .oneDNN(let operation, let status): return "oneDNN \(operation) failed: \(status)"
        }
    }
}

/// What TensorCore needs from oneDNN: the ISA query, a startup probe, and `matmul`.
public enum OneDNN {
    public static var version: String {
        var major: Int32 = 0, minor: Int32 = 0, patch: Int32 = 0
        ragseg_dnnl_version(&major, &minor, &patch)
        return "\(major).\(minor).\(patch)"
    }

    /// oneDNN's effective instruction set, by name.
    public static var isaName: String {
        switch ragseg_dnnl_cpu_isa() {
        case 0x3e7: return "avx512_core_amx"
        case 0xe7: return "avx512_core_bf16"
        case 0x67: return "avx512_core_vnni"
        case 0x27: return "avx512_core"
        case let isa where isa & 0x7 == 0x7: return "avx2"
        case let isa: return "isa 0x" + String(isa, radix: 16)
        }
    }

    public static var hasNativeBFloat16: Bool { ragseg_dnnl_has_native_bf16() != 0 }

    /// Threads now holding a stream and scratchpad for products: made on a thread's first product, released
    /// when the thread exits.
    public static var threadStates: Int { ragseg_dnnl_thread_states() }

    /// The implementation oneDNN chooses for a product of this shape (e.g. "brg:avx512_core_bf16").
    public static func implementation(bf16: Bool, transA: Bool, transB: Bool, m: Int, n: Int, k: Int) throws -> String {
        var name = [CChar](repeating: 0, count: 128)
        let status = ragseg_dnnl_matmul_impl(
            bf16 ? 1 : 0, transA ? 1 : 0, transB ? 1 : 0, m, n, k, transA ? m : k, transB ? k : n, n, &name, 128)
        guard status == 0 else { throw PrecisionError.oneDNN(operation: "matmul descriptor", status: text(status)) }
        return String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// One small bf16 product checked against its exact value.
    static func probe() throws {
        let a: [UInt16] = [1, 2, 3, 4].map { bfloat16Bits(Float($0)) }  // [[1, 2], [3, 4]]
        var c = [Float](repeating: 0, count: 4)
        let status = ragseg_dnnl_matmul(1, 0, 1, 2, 2, 2, 1, a, 2, a, 2, 0, &c, 2)
        guard status == 0 else { throw PrecisionError.oneDNN(operation: "bf16 matmul", status: text(status)) }
        guard c == [5, 11, 11, 25] else {
            throw PrecisionError.oneDNN(operation: "bf16 matmul", status: "wrong result \(c) for a 2x2 product")
        }
    }

    static func text(_ status: Int32) -> String { String(cString: ragseg_dnnl_status_text(status)) }

    public enum ElementType: Int32, Sendable {
        case f32 = 0
        case bf16 = 1
    }

    /// An activation applied to a product's fp32 result inside oneDNN, before it is stored.
    public enum Activation: Int32, Sendable {
        case none = 0
        /// GELU with the exact erf, PyTorch's `nn.GELU()`.
        case gelu = 1
        case relu = 2
    }

    /// Row-major C = activation(alpha · op(A) · op(B) + bias + beta · C) on the calling thread (beta 0 or 1),
    /// A and B of `type`, bias [n] fp32 (optional) added to every row, C of `output` type (bf16 bits rounded
    /// once from the fp32 result, beta 0). Operands must be dense (leading dimension = row length): oneDNN's
    /// fast kernels take no other layout. The bias, the sum and the activation are oneDNN post-ops on the
    /// accumulator, so none of them costs a pass over C of its own.
    /// A failure here, after the startup probe succeeded, is a broken installation or a bug: it stops the
    /// process with oneDNN's message rather than returning wrong numbers.
    @inline(__always)
    public static func matmul(
        _ type: ElementType, transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafeRawPointer, lda: Int, b: UnsafeRawPointer, ldb: Int, bias: UnsafePointer<Float>? = nil,
        activation: Activation = .none, beta: Float = 0, c: UnsafeMutableRawPointer, output: ElementType = .f32,
        ldc: Int
    ) {
        let status = ragseg_dnnl_matmul_fused(
            type.rawValue, transA ? 1 : 0, transB ? 1 : 0, m, n, k, alpha, a, lda, b, ldb, bias,
            activation.rawValue, beta, c, output.rawValue, ldc)
        if status != 0 {
            fatalError("oneDNN matmul \(m)x\(n)x\(k) (\(type) -> \(output)) failed: \(text(status))")
        }
    }

    /// `batch` products of one shape in one call, operands dense and one after another: C[i] = alpha · A[i] ·
    /// op(B[i]), A [batch, m, k], B [batch, n, k] when `transB` (else [batch, k, n]), C [batch, m, n] fp32.
    /// Fails like `matmul`.
    public static func matmulBatched(
        _ type: ElementType, batch: Int, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafeRawPointer, b: UnsafeRawPointer, c: UnsafeMutablePointer<Float>
    ) {
        let status = ragseg_dnnl_matmul_batched(batch, type.rawValue, transB ? 1 : 0, m, n, k, alpha, a, b, c)
        if status != 0 {
            fatalError("oneDNN batched matmul \(batch) x \(m)x\(n)x\(k) (\(type)) failed: \(text(status))")
        }
    }
}

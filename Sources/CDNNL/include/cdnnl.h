// A narrow C surface over oneDNN (Debian libdnnl-dev 2.x, C API) for RAGSeg's bf16 and f32 matrix products.
// Every call returns 0 or a oneDNN status code (dnnl_status_t); ragseg_dnnl_status_text names it.
#ifndef RAGSEG_CDNNL_H
#define RAGSEG_CDNNL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Element types of the A and B operands (C is always fp32).
enum ragseg_dnnl_type { RAGSEG_DNNL_F32 = 0, RAGSEG_DNNL_BF16 = 1 };

/// Row-major C = alpha * op(A) * op(B) + beta * C with A, B of `type` (fp32 or bf16 bits) and C fp32,
/// accumulation in fp32. Runs on the calling thread only (one oneDNN thread); primitives are cached per
/// shape, leading dimensions, transposes, alpha and beta. beta must be 0 or 1.
int ragseg_dnnl_matmul(
    int type, int trans_a, int trans_b, long m, long n, long k, float alpha, const void *a, long lda,
    const void *b, long ldb, float beta, float *c, long ldc);

/// Activations fused into a product (a oneDNN eltwise post-op on the fp32 accumulator): none, GELU with the
/// exact erf (PyTorch's nn.GELU()), ReLU.
enum ragseg_dnnl_activation { RAGSEG_DNNL_NO_ACTIVATION = 0, RAGSEG_DNNL_GELU = 1, RAGSEG_DNNL_RELU = 2 };

/// The same product with a fused epilogue: C = activation(alpha * op(A) * op(B) + bias + beta * C), bias
/// ([n] fp32, may be NULL) added to every row, C of `c_type` (fp32, or bf16 bits rounded once from the fp32
/// result; beta must be 0 then).
int ragseg_dnnl_matmul_fused(
    int type, int trans_a, int trans_b, long m, long n, long k, float alpha, const void *a, long lda,
    const void *b, long ldb, const float *bias, int activation, float beta, void *c, int c_type, long ldc);

/// `batch` products of one shape at once, operands dense and one after another: C[i] = alpha * A[i] * op(B[i])
/// for A [batch, m, k], B [batch, n, k] when trans_b (else [batch, k, n]), C [batch, m, n] fp32. For many
/// small products (attention within small windows), where a call per product costs more than its work.
int ragseg_dnnl_matmul_batched(
    long batch, int type, int trans_b, long m, long n, long k, float alpha, const void *a, const void *b,
    float *c);

/// The implementation oneDNN picks for that product (e.g. "brg:avx512_core_bf16"), written into `name`.
int ragseg_dnnl_matmul_impl(
    int type, int trans_a, int trans_b, long m, long n, long k, long lda, long ldb, long ldc, char *name,
    size_t capacity);

/// Threads that currently hold a stream and scratchpad for products (made on a thread's first product,
/// released when it exits).
long ragseg_dnnl_thread_states(void);

/// oneDNN's effective instruction set (dnnl_cpu_isa_t value) and version.
int ragseg_dnnl_cpu_isa(void);
/// 1 when the effective ISA has native bf16 dot products (avx512_core_bf16 or AMX), else 0.
int ragseg_dnnl_has_native_bf16(void);
void ragseg_dnnl_version(int *major, int *minor, int *patch);

/// A short English name of a status code.
const char *ragseg_dnnl_status_text(int status);

/// fp32 -> bf16 bits, round to nearest even (NaN stays NaN), `count` values.
void ragseg_to_bf16(const float *src, uint16_t *dst, size_t count);
/// The same for a row-major block: `rows` rows of `cols` values, source stride `src_ld`, dest stride `dst_ld`.
void ragseg_to_bf16_rows(const float *src, long src_ld, uint16_t *dst, long dst_ld, long rows, long cols);

#ifdef __cplusplus
}
#endif
#endif

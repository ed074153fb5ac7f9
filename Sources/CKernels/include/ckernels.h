#ifndef RAGSEG_CKERNELS_H
#define RAGSEG_CKERNELS_H
#include <stddef.h>
#include <stdint.h>

// Transcendental pointwise kernels of the tensor core, in C so that each is compiled for AVX-512,
// AVX2 and baseline x86-64 and picked at load time (Swift code can only target the baseline, where
// these loops ran 4-5x slower and took 13% of the SAM 2 image encoder).

/// x[i] = GELU(x[i]) = 0.5 x (1 + erf(x / sqrt 2)), exact-erf form (error <= 1.5e-7 absolute in erf).
void ragseg_gelu(float *x, size_t n);

/// x[i] = exp(x[i] - max(x)), returns the sum of the new values (softmax numerators).
/// A row of -inf (fully masked) becomes exp(x - 0) = 0 everywhere and returns 0.
float ragseg_exp_shifted_sum(float *x, size_t n);

/// The two halves of ragseg_exp_shifted_sum, for softmax over a row that arrives in pieces: the largest
/// value of x (-inf for an empty or all -inf row; NaN is ignored), and x[i] = exp(x[i] - shift) returning
/// the sum of the new values.
float ragseg_row_max(const float *x, size_t n);
float ragseg_exp_minus_sum(float *x, size_t n, float shift);
/// The softmax numerators of a bf16 attention row: out[i] = e^(x[i] - shift) rounded to bf16 bits (ties to even),
/// x left as it was; returns the sum of the fp32 exponentials. For shift >= max(x): its exponential is a cheaper
/// form than ragseg_exp_minus_sum's, equally accurate (2e-7 relative) over x - shift <= 0. Never NaN: NaN and
/// -inf inputs give ~1e-38.
float ragseg_exp_minus_sum_bf16(const float *x, size_t n, float shift, uint16_t *out);

/// ragseg_exp_shifted_sum on each of `rows` rows of n values stored one after another ([rows, n]), the row sums
/// into sums[rows]. Rows shorter than a vector are shifted first and their exponentials run as one stream (a call
/// per row was mostly padding); every value and sum is the same as a call per row.
void ragseg_exp_shifted_sum_rows(float *x, size_t rows, size_t n, float *sums);
/// ragseg_exp_minus_sum_bf16 on each of `rows` rows of x [rows, n] with the row's maximum as the shift (0 for a
/// row of -inf), the bf16 numerators into out [rows, n] and the fp32 sums into sums[rows]; x is overwritten.
/// Short rows run as one stream, with the same values and sums as a call per row.
void ragseg_exp_minus_max_sum_bf16_rows(float *x, size_t rows, size_t n, uint16_t *out, float *sums);

/// x[i] = max(x[i], 0) (ReLU; NaN becomes 0).
void ragseg_relu(float *x, size_t n);

/// x[i] = 1 / (1 + exp(-x[i])).
void ragseg_sigmoid(float *x, size_t n);

/// x[i] = x[i] / (1 + exp(-x[i])) (SiLU).
void ragseg_silu(float *x, size_t n);

/// out[c * rows + r] = x[r * columns + c] for rows row_begin..<row_end of x [rows, columns]: part of a
/// matrix transpose (a rotation of a tensor's axes), in 8 x 8 register blocks at the AVX2 level and above.
void ragseg_transpose_rows(const float *x, long rows, long columns, float *out, long row_begin, long row_end);

/// Copies `rows` rows of `columns` 16-bit values (bf16 bits) from src (rows src_ld apart) to dst (dst_ld apart).
void ragseg_copy_rows_u16(const uint16_t *src, long src_ld, uint16_t *dst, long dst_ld, long rows, long columns);
/// Per-thread nesting depth of RAGSeg's parallel loops. A thread that is already one of a parallel
/// loop's workers runs nested loops and GEMMs inline instead of fanning out again (which would put
/// more busy threads than cores on the machine). In C because Swift has no cheap thread-local storage.
void ragseg_parallel_enter(void);
void ragseg_parallel_exit(void);
int ragseg_parallel_depth(void);

/// Tells glibc's malloc to keep freed memory for reuse (one arena, no mmap-backed blocks, 1 GiB trim
/// threshold) instead of returning it to the kernel after every large temporary: the encoders allocate and
/// free tens of megabytes per layer, and faulting fresh zeroed pages back in took 5-10% of the SAM 2 image
/// encoder. Runs when the library is loaded; calling it again is harmless. No-op off glibc.
void ragseg_configure_allocator(void);

/// Runs the kernels at a lower level than the CPU's best ("baseline", "avx2", "avx512"), so tests can
/// check every variant on one machine; returns 0 (and changes nothing) when the CPU lacks the level or
/// the name is unknown. Not for use while kernels run on other threads.
int ragseg_kernels_set_level(const char *name);

/// The instruction-set level the kernels run at: "avx512", "avx2" or "baseline".
const char *ragseg_kernels_level(void);

#endif

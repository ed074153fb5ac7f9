// See ckernels.h. The loops are written branch-free so the compiler vectorizes them at every target;
// the formulas are the ones the Swift tensor core used before (Cephes expf, Abramowitz-Stegun 7.1.26
// erf), so results do not depend on which clone runs beyond fp32 rounding of fused multiply-adds.
#include "ckernels.h"

#include <math.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <stdint.h>
#include <string.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

// Explicit vectors in clang's vector extension, because the auto-vectorizer left the max reduction
// and the bit casts of a scalar form in scalar code. kernels.inc is compiled once per level with that
// level's register width (16 lanes for AVX-512, 8 for AVX2, 4 at the SSE2 baseline) and every helper
// carries the level's target attribute, so no vector crosses a target boundary; the level is picked
// once, from the CPU, on first use.
typedef float fv16 __attribute__((vector_size(64)));
typedef uint32_t uv16 __attribute__((vector_size(64)));
typedef int32_t iv16 __attribute__((vector_size(64)));
typedef float fv8 __attribute__((vector_size(32)));
typedef uint32_t uv8 __attribute__((vector_size(32)));
typedef int32_t iv8 __attribute__((vector_size(32)));
typedef float fv4 __attribute__((vector_size(16)));
typedef uint32_t uv4 __attribute__((vector_size(16)));
typedef int32_t iv4 __attribute__((vector_size(16)));
typedef uint16_t hv16 __attribute__((vector_size(32)));
typedef uint16_t hv8 __attribute__((vector_size(16)));
typedef uint16_t hv4 __attribute__((vector_size(8)));
#define ALWAYS_INLINE __attribute__((always_inline))

#if defined(__x86_64__)
#define TARGET __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma,f16c,bmi2")))
#define NAME(f) f##_avx512
#define LANES 16
#define FV fv16
#define UV uv16
#define IV iv16
#define HV hv16
#include "kernels.inc"
#define TARGET __attribute__((target("avx2,fma,f16c,bmi2")))
#define NAME(f) f##_avx2
#define LANES 8
#define FV fv8
#define UV uv8
#define IV iv8
#define HV hv8
#include "kernels.inc"
#endif
#define TARGET
#define NAME(f) f##_baseline
#define LANES 4
#define FV fv4
#define UV uv4
#define IV iv4
#define HV hv4
#include "kernels.inc"

typedef enum { LEVEL_UNKNOWN, LEVEL_BASELINE, LEVEL_AVX2, LEVEL_AVX512 } level_t;
static _Atomic level_t cached_level = LEVEL_UNKNOWN;

static level_t level(void) {
    level_t l = cached_level;
    if (l != LEVEL_UNKNOWN) return l;
    l = LEVEL_BASELINE;
#if defined(__x86_64__)
    __builtin_cpu_init();
    // __builtin_cpu_supports also checks that the OS saves the wider register state.
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) l = LEVEL_AVX2;
    if (l == LEVEL_AVX2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")
        && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")) l = LEVEL_AVX512;
#endif
    cached_level = l;
    return l;
}

#if defined(__x86_64__)
#define DISPATCH(f, ...)                                              \
    switch (level()) {                                                \
    case LEVEL_AVX512: return f##_avx512(__VA_ARGS__);                \
    case LEVEL_AVX2: return f##_avx2(__VA_ARGS__);                    \
    default: return f##_baseline(__VA_ARGS__);                        \
    }
#else
#define DISPATCH(f, ...) return f##_baseline(__VA_ARGS__);
#endif

void ragseg_gelu(float *x, size_t n) { DISPATCH(ragseg_gelu, x, n) }
void ragseg_relu(float *x, size_t n) { DISPATCH(ragseg_relu, x, n) }
void ragseg_sigmoid(float *x, size_t n) { DISPATCH(ragseg_sigmoid, x, n) }
void ragseg_silu(float *x, size_t n) { DISPATCH(ragseg_silu, x, n) }
float ragseg_exp_shifted_sum(float *x, size_t n) { DISPATCH(ragseg_exp_shifted_sum, x, n) }
float ragseg_row_max(const float *x, size_t n) { DISPATCH(ragseg_row_max, x, n) }
float ragseg_exp_minus_sum(float *x, size_t n, float shift) { DISPATCH(ragseg_exp_minus_sum, x, n, shift) }
float ragseg_exp_minus_sum_bf16(const float *x, size_t n, float shift, uint16_t *out) {
    DISPATCH(ragseg_exp_minus_sum_bf16, x, n, shift, out)
}
void ragseg_exp_shifted_sum_rows(float *x, size_t rows, size_t n, float *sums) {
    DISPATCH(ragseg_exp_shifted_sum_rows, x, rows, n, sums)
}
void ragseg_exp_minus_max_sum_bf16_rows(float *x, size_t rows, size_t n, uint16_t *out, float *sums) {
    DISPATCH(ragseg_exp_minus_max_sum_bf16_rows, x, rows, n, out, sums)
}

int ragseg_kernels_set_level(const char *name) {
    level_t detected = LEVEL_UNKNOWN, wanted;
    cached_level = LEVEL_UNKNOWN;
    detected = level();
    if (strcmp(name, "baseline") == 0) wanted = LEVEL_BASELINE;
    else if (strcmp(name, "avx2") == 0) wanted = LEVEL_AVX2;
    else if (strcmp(name, "avx512") == 0) wanted = LEVEL_AVX512;
    else return 0;
    if (wanted > detected) return 0;
    cached_level = wanted;
    return 1;
}

const char *ragseg_kernels_level(void) {
    switch (level()) {
    case LEVEL_AVX512: return "avx512";
    case LEVEL_AVX2: return "avx2";
    default: return "baseline";
    }
}

static _Thread_local int parallel_depth = 0;
void ragseg_parallel_enter(void) { parallel_depth++; }
void ragseg_parallel_exit(void) { parallel_depth--; }
int ragseg_parallel_depth(void) { return parallel_depth; }

void ragseg_configure_allocator(void) {
#if defined(__GLIBC__)
    // Every block comes from the main heap, big ones included, and freed memory is reused, kept up to 1 GiB:
    // - An mmap-backed block (glibc's threshold is at most 32 MiB, and a Hiera-T qkv output is 75 MB) is
    //   unmapped when freed, so the next one faults in fresh zeroed pages (3% of the image encoder).
    // - One arena: a thread other than the main one (Swift's async commands and the server run on such
    //   threads) otherwise allocates from its own arena, made of 64 MiB heaps that glibc maps and unmaps as
    //   tensors come and go; a block larger than a heap is mmapped whatever M_MMAP_MAX says. That churn cost
    //   about 90,000 page faults per image encoding, 10% of the bf16 encoder's CPU time (perf, Zen 5); with one
    //   arena the encoder faults only on its first run (and fp32 queries also gained 2-3%). The encoders'
    //   allocations are few and large, so one lock for all threads costs them nothing measurable; many
    //   concurrent small server requests were not measured.
    // Set when the library is loaded, before any thread has picked an arena.
    mallopt(M_ARENA_MAX, 1);
    mallopt(M_MMAP_MAX, 0);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

__attribute__((constructor)) static void configure_allocator_at_load(void) { ragseg_configure_allocator(); }

#if defined(__x86_64__)
// 8 x 8 transpose of floats in AVX registers (the usual unpack / shuffle / 128-bit permute network).
__attribute__((target("avx2"))) static inline void transpose8x8(const float *src, long ld_src, float *dst,
                                                                 long ld_dst) {
    __m256 r0 = _mm256_loadu_ps(src + 0 * ld_src), r1 = _mm256_loadu_ps(src + 1 * ld_src);
    __m256 r2 = _mm256_loadu_ps(src + 2 * ld_src), r3 = _mm256_loadu_ps(src + 3 * ld_src);
    __m256 r4 = _mm256_loadu_ps(src + 4 * ld_src), r5 = _mm256_loadu_ps(src + 5 * ld_src);
    __m256 r6 = _mm256_loadu_ps(src + 6 * ld_src), r7 = _mm256_loadu_ps(src + 7 * ld_src);
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(dst + 0 * ld_dst, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(dst + 1 * ld_dst, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(dst + 2 * ld_dst, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(dst + 3 * ld_dst, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(dst + 4 * ld_dst, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(dst + 5 * ld_dst, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(dst + 6 * ld_dst, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(dst + 7 * ld_dst, _mm256_permute2f128_ps(u3, u7, 0x31));
}

__attribute__((target("avx2"))) static void transpose_avx2(const float *x, long rows, long columns, float *out,
                                                           long row_begin, long row_end) {
    const long tile = 64;
    for (long r0 = row_begin; r0 < row_end; r0 += tile) {
        long r1 = r0 + tile < row_end ? r0 + tile : row_end;
        for (long c0 = 0; c0 < columns; c0 += tile) {
            long c1 = c0 + tile < columns ? c0 + tile : columns;
            long r = r0;
            for (; r + 8 <= r1; r += 8) {
                long c = c0;
                for (; c + 8 <= c1; c += 8) transpose8x8(x + r * columns + c, columns, out + c * rows + r, rows);
                for (; c < c1; c++)
                    for (long i = r; i < r + 8; i++) out[c * rows + i] = x[i * columns + c];
            }
            for (; r < r1; r++)
                for (long c = c0; c < c1; c++) out[c * rows + r] = x[r * columns + c];
        }
    }
}

#endif

static void transpose_plain(const float *x, long rows, long columns, float *out, long row_begin, long row_end) {
    const long tile = 32;
    for (long r0 = row_begin; r0 < row_end; r0 += tile) {
        long r1 = r0 + tile < row_end ? r0 + tile : row_end;
        for (long c0 = 0; c0 < columns; c0 += tile) {
            long c1 = c0 + tile < columns ? c0 + tile : columns;
            for (long r = r0; r < r1; r++)
                for (long c = c0; c < c1; c++) out[c * rows + r] = x[r * columns + c];
        }
    }
}

void ragseg_transpose_rows(const float *x, long rows, long columns, float *out, long row_begin, long row_end) {
#if defined(__x86_64__)
    if (level() >= LEVEL_AVX2) {
        transpose_avx2(x, rows, columns, out, row_begin, row_end);
        return;
    }
#endif
    transpose_plain(x, rows, columns, out, row_begin, row_end);
}

#if defined(__x86_64__)
// Rows of 16-bit values in 64-byte registers, the tail under a mask: the rows here are short (a head's 96
// channels are 192 bytes), and one memcpy call per row cost more than its copy.
__attribute__((target("avx512f,avx512bw"))) static void copy_rows_u16_avx512(const uint16_t *src, long src_ld,
                                                                            uint16_t *dst, long dst_ld, long rows,
                                                                            long columns) {
    for (long r = 0; r < rows; r++) {
        const uint16_t *s = src + r * src_ld;
        uint16_t *d = dst + r * dst_ld;
        long c = 0;
        for (; c + 32 <= columns; c += 32) _mm512_storeu_si512((void *)(d + c), _mm512_loadu_si512((const void *)(s + c)));
        if (c < columns) {
            __mmask32 mask = (__mmask32)((1u << (columns - c)) - 1);
            _mm512_mask_storeu_epi16(d + c, mask, _mm512_maskz_loadu_epi16(mask, s + c));
        }
    }
}
#endif

void ragseg_copy_rows_u16(const uint16_t *src, long src_ld, uint16_t *dst, long dst_ld, long rows, long columns) {
#if defined(__x86_64__)
    if (level() >= LEVEL_AVX512) {
        copy_rows_u16_avx512(src, src_ld, dst, dst_ld, rows, columns);
        return;
    }
#endif
    for (long r = 0; r < rows; r++) memcpy(dst + r * dst_ld, src + r * src_ld, (size_t)columns * sizeof(uint16_t));
}

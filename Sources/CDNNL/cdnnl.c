// oneDNN matmul behind a cache of primitives, run single-threaded on the calling thread.
//
// Threading: RAGSeg splits products over its own workers (TensorCore/Parallel.swift), so each call here
// must use exactly one core. Debian's oneDNN uses OpenMP; omp_set_num_threads(1) sets the calling
// thread's own limit (libgomp keeps it per thread), so no OpenMP team is ever started.
// Concurrency: primitives are immutable once created and may run on several threads at once provided
// each execution brings its own scratchpad (user scratchpad mode) and stream (one per thread).
#include "cdnnl.h"

#include <immintrin.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>

extern void omp_set_num_threads(int);

static dnnl_engine_t engine;
static dnnl_status_t engine_status = dnnl_success;
static pthread_once_t engine_once = PTHREAD_ONCE_INIT;

static void create_engine(void) { engine_status = dnnl_engine_create(&engine, dnnl_cpu, 0); }

// Each thread's stream and scratchpad (the largest any product on it has asked for), released when the thread
// exits: worker threads come and go (libdispatch retires idle workers and starts new ones), and a long-running
// server would otherwise keep the scratchpad of every worker that ever ran a product.
struct thread_state {
    dnnl_stream_t stream;
    void *scratch;
    size_t scratch_size;
};
static __thread struct thread_state *thread_state;
static pthread_key_t thread_state_key;
static int thread_state_key_status = -1;
static pthread_once_t thread_state_key_once = PTHREAD_ONCE_INIT;
static long live_thread_states;

// Runs on the exiting thread itself, after its last product.
static void release_thread_state(void *state) {
    struct thread_state *t = state;
    thread_state = NULL;  // a product run by a later destructor would make a new one (and its key destructor frees it)
    if (t->stream) dnnl_stream_destroy(t->stream);
    free(t->scratch);
    free(t);
    __atomic_fetch_sub(&live_thread_states, 1, __ATOMIC_RELAXED);
}

static void create_thread_state_key(void) {
    thread_state_key_status = pthread_key_create(&thread_state_key, release_thread_state);
}

// The calling thread's state, made on its first product; NULL when it cannot be made.
static struct thread_state *current_thread_state(void) {
    if (thread_state) return thread_state;
    pthread_once(&thread_state_key_once, create_thread_state_key);
    if (thread_state_key_status != 0) return NULL;
    struct thread_state *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    if (pthread_setspecific(thread_state_key, t) != 0) {
        free(t);
        return NULL;
    }
    __atomic_fetch_add(&live_thread_states, 1, __ATOMIC_RELAXED);
    thread_state = t;
    return t;
}

long ragseg_dnnl_thread_states(void) { return __atomic_load_n(&live_thread_states, __ATOMIC_RELAXED); }

#define CHECK(call)                                                                                    \
    do {                                                                                               \
        dnnl_status_t s_ = (call);                                                                     \
        if (s_ != dnnl_success) return (int)s_;                                                        \
    } while (0)

struct key {
    long m, n, k, lda, ldb, ldc;
    int type, trans_a, trans_b;
    float alpha, beta;
    int has_bias, activation, c_type;
    long batch;  // 1: one product; more: that many products of the same shape, operands one after another
};

struct entry {
    struct key key;
    dnnl_primitive_t primitive;
    const dnnl_memory_desc_t *a_md, *b_md, *bias_md, *c_md, *scratch_md;
    dnnl_primitive_desc_t pd;
    size_t scratch_size;
    int used;
};

// Open addressing, never evicted: a model has a few dozen distinct products. When full, products are
// created and destroyed per call (slower, still correct).
#define CACHE_SIZE 1024
static struct entry cache[CACHE_SIZE];
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

static unsigned long hash_key(const struct key *k) {
    unsigned long h = 1469598103934665603ul;
    const unsigned char *p = (const unsigned char *)k;
    for (size_t i = 0; i < sizeof *k; i++) h = (h ^ p[i]) * 1099511628211ul;
    return h;
}

// A [rows, cols] operand (stored transposed when `trans`) with leading dimension ld; with batch > 1, a
// [batch, rows, cols] stack of such matrices stored one after another.
static void init_md(dnnl_memory_desc_t *md, long batch, long rows, long cols, int trans, long ld,
                    dnnl_data_type_t dt, dnnl_status_t *status) {
    if (batch > 1) {
        dnnl_dims_t dims = {batch, rows, cols};
        dnnl_dims_t strides = {(trans ? cols : rows) * ld, trans ? 1 : ld, trans ? ld : 1};
        *status = dnnl_memory_desc_init_by_strides(md, 3, dims, dt, strides);
        return;
    }
    dnnl_dims_t dims = {rows, cols};
    dnnl_dims_t strides = {trans ? 1 : ld, trans ? ld : 1};
    *status = dnnl_memory_desc_init_by_strides(md, 2, dims, dt, strides);
}

static int create_pd(const struct key *key, dnnl_primitive_desc_t *pd) {
    pthread_once(&engine_once, create_engine);
    CHECK(engine_status);
    dnnl_data_type_t dt = key->type == RAGSEG_DNNL_BF16 ? dnnl_bf16 : dnnl_f32;
    dnnl_memory_desc_t a_md, b_md, bias_md, c_md;
    dnnl_status_t s;
    init_md(&a_md, key->batch, key->m, key->k, key->trans_a, key->lda, dt, &s);
    CHECK(s);
    init_md(&b_md, key->batch, key->k, key->n, key->trans_b, key->ldb, dt, &s);
    CHECK(s);
    init_md(&bias_md, 1, 1, key->n, 0, key->n, dnnl_f32, &s);
    CHECK(s);
    init_md(&c_md, key->batch, key->m, key->n, 0, key->ldc, key->c_type == RAGSEG_DNNL_BF16 ? dnnl_bf16 : dnnl_f32,
            &s);
    CHECK(s);
    dnnl_matmul_desc_t desc;
    CHECK(dnnl_matmul_desc_init(&desc, &a_md, &b_md, key->has_bias ? &bias_md : NULL, &c_md));
    dnnl_primitive_attr_t attr;
    CHECK(dnnl_primitive_attr_create(&attr));
    s = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (s == dnnl_success && key->alpha != 1.0f) s = dnnl_primitive_attr_set_output_scales(attr, 1, 0, &key->alpha);
    // Post-ops run in order on the fp32 accumulator (bias already added): the sum (beta = 1) and then the
    // activation, before the one rounding to the destination type.
    if (s == dnnl_success && (key->beta != 0.0f || key->activation != RAGSEG_DNNL_NO_ACTIVATION)) {
        dnnl_post_ops_t ops;
        s = dnnl_post_ops_create(&ops);
        if (s == dnnl_success) {
            if (key->beta != 0.0f) s = dnnl_post_ops_append_sum(ops, key->beta);
            if (s == dnnl_success && key->activation != RAGSEG_DNNL_NO_ACTIVATION)
                s = dnnl_post_ops_append_eltwise(
                    ops, 1.0f, key->activation == RAGSEG_DNNL_GELU ? dnnl_eltwise_gelu_erf : dnnl_eltwise_relu,
                    0.0f, 0.0f);
            if (s == dnnl_success) s = dnnl_primitive_attr_set_post_ops(attr, ops);
            dnnl_post_ops_destroy(ops);
        }
    }
    if (s == dnnl_success) s = dnnl_primitive_desc_create(pd, &desc, attr, engine, NULL);
    dnnl_primitive_attr_destroy(attr);
    return (int)s;
}

static int fill_entry(struct entry *e, const struct key *key) {
    CHECK(create_pd(key, &e->pd));
    dnnl_status_t s = dnnl_primitive_create(&e->primitive, e->pd);
    if (s != dnnl_success) {
        dnnl_primitive_desc_destroy(e->pd);
        return (int)s;
    }
    e->key = *key;
    e->a_md = dnnl_primitive_desc_query_md(e->pd, dnnl_query_src_md, 0);
    e->b_md = dnnl_primitive_desc_query_md(e->pd, dnnl_query_weights_md, 0);
    e->bias_md = key->has_bias ? dnnl_primitive_desc_query_md(e->pd, dnnl_query_weights_md, 1) : NULL;
    e->c_md = dnnl_primitive_desc_query_md(e->pd, dnnl_query_dst_md, 0);
    e->scratch_md = dnnl_primitive_desc_query_md(e->pd, dnnl_query_scratchpad_md, 0);
    e->scratch_size = e->scratch_md ? dnnl_memory_desc_get_size(e->scratch_md) : 0;
    return 0;
}

// The cached entry for `key`, created on first use; *owned = 1 when the cache was full and the caller
// must destroy it.
static int lookup(const struct key *key, struct entry **out, struct entry *spare, int *owned) {
    unsigned long h = hash_key(key);
    *owned = 0;
    pthread_mutex_lock(&cache_lock);
    for (int probe = 0; probe < CACHE_SIZE; probe++) {
        struct entry *e = &cache[(h + probe) % CACHE_SIZE];
        if (e->used && memcmp(&e->key, key, sizeof *key) == 0) {
            pthread_mutex_unlock(&cache_lock);
            *out = e;
            return 0;
        }
        if (!e->used) {
            // Created under the lock: creation happens a few dozen times per process.
            int status = fill_entry(e, key);
            if (status == 0) e->used = 1;
            pthread_mutex_unlock(&cache_lock);
            *out = e;
            return status;
        }
    }
    pthread_mutex_unlock(&cache_lock);
    *owned = 1;
    *out = spare;
    return fill_entry(spare, key);
}

static int run(struct entry *e, const void *a, const void *b, const float *bias, void *c) {
    struct thread_state *t = current_thread_state();
    if (!t) return (int)dnnl_out_of_memory;
    if (!t->stream) CHECK(dnnl_stream_create(&t->stream, engine, dnnl_stream_default_flags));
    if (e->scratch_size > t->scratch_size) {
        free(t->scratch);
        t->scratch = malloc(e->scratch_size);
        t->scratch_size = t->scratch ? e->scratch_size : 0;
        if (!t->scratch) return (int)dnnl_out_of_memory;
    }
    dnnl_memory_t ma = NULL, mb = NULL, mbias = NULL, mc = NULL, ms = NULL;
    dnnl_status_t s = dnnl_memory_create(&ma, e->a_md, engine, (void *)a);
    if (s == dnnl_success) s = dnnl_memory_create(&mb, e->b_md, engine, (void *)b);
    if (s == dnnl_success && e->bias_md) s = dnnl_memory_create(&mbias, e->bias_md, engine, (void *)bias);
    if (s == dnnl_success) s = dnnl_memory_create(&mc, e->c_md, engine, c);
    if (s == dnnl_success && e->scratch_size > 0) s = dnnl_memory_create(&ms, e->scratch_md, engine, t->scratch);
    if (s == dnnl_success) {
        dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}};
        int count = 3;
        if (mbias) args[count++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, mbias};
        if (ms) args[count++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, ms};
        s = dnnl_primitive_execute(e->primitive, t->stream, count, args);
        if (s == dnnl_success) s = dnnl_stream_wait(t->stream);
    }
    if (ma) dnnl_memory_destroy(ma);
    if (mb) dnnl_memory_destroy(mb);
    if (mbias) dnnl_memory_destroy(mbias);
    if (mc) dnnl_memory_destroy(mc);
    if (ms) dnnl_memory_destroy(ms);
    return (int)s;
}

int ragseg_dnnl_matmul(
    int type, int trans_a, int trans_b, long m, long n, long k, float alpha, const void *a, long lda,
    const void *b, long ldb, float beta, float *c, long ldc) {
    return ragseg_dnnl_matmul_fused(
        type, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, NULL, RAGSEG_DNNL_NO_ACTIVATION, beta, c,
        RAGSEG_DNNL_F32, ldc);
}

static int matmul(
    long batch, int type, int trans_a, int trans_b, long m, long n, long k, float alpha, const void *a, long lda,
    const void *b, long ldb, const float *bias, int activation, float beta, void *c, int c_type, long ldc) {
    if (batch <= 0 || m <= 0 || n <= 0 || k <= 0 || (beta != 0.0f && beta != 1.0f)) return (int)dnnl_invalid_arguments;
    if (batch > 1 && bias != NULL) return (int)dnnl_invalid_arguments;
    if (activation < RAGSEG_DNNL_NO_ACTIVATION || activation > RAGSEG_DNNL_RELU) return (int)dnnl_invalid_arguments;
    // The sum post-op would read back a bf16 destination; nothing here needs that, so it is not offered.
    if (c_type == RAGSEG_DNNL_BF16 && beta != 0.0f) return (int)dnnl_invalid_arguments;
    omp_set_num_threads(1);
    struct key key;
    memset(&key, 0, sizeof key);  // padding bytes take part in hashing and comparison
    key.m = m, key.n = n, key.k = k, key.lda = lda, key.ldb = ldb, key.ldc = ldc;
    key.type = type, key.trans_a = trans_a != 0, key.trans_b = trans_b != 0, key.alpha = alpha, key.beta = beta;
    key.has_bias = bias != NULL, key.activation = activation, key.c_type = c_type == RAGSEG_DNNL_BF16;
    key.batch = batch;
    struct entry spare, *e;
    int owned;
    int status = lookup(&key, &e, &spare, &owned);
    if (status != 0) return status;
    status = run(e, a, b, bias, c);
    if (owned) {
        dnnl_primitive_destroy(e->primitive);
        dnnl_primitive_desc_destroy(e->pd);
    }
    return status;
}

int ragseg_dnnl_matmul_fused(
    int type, int trans_a, int trans_b, long m, long n, long k, float alpha, const void *a, long lda,
    const void *b, long ldb, const float *bias, int activation, float beta, void *c, int c_type, long ldc) {
    return matmul(1, type, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, bias, activation, beta, c, c_type, ldc);
}

int ragseg_dnnl_matmul_batched(
    long batch, int type, int trans_b, long m, long n, long k, float alpha, const void *a, const void *b,
    float *c) {
    return matmul(
        batch, type, 0, trans_b, m, n, k, alpha, a, k, b, trans_b ? k : n, NULL, RAGSEG_DNNL_NO_ACTIVATION, 0.0f, c,
        RAGSEG_DNNL_F32, n);
}

int ragseg_dnnl_matmul_impl(
    int type, int trans_a, int trans_b, long m, long n, long k, long lda, long ldb, long ldc, char *name,
    size_t capacity) {
    omp_set_num_threads(1);
    struct key key;
    memset(&key, 0, sizeof key);
    key.m = m, key.n = n, key.k = k, key.lda = lda, key.ldb = ldb, key.ldc = ldc;
    key.type = type, key.trans_a = trans_a != 0, key.trans_b = trans_b != 0, key.alpha = 1, key.beta = 0;
    key.c_type = RAGSEG_DNNL_F32, key.batch = 1;
    dnnl_primitive_desc_t pd;
    CHECK(create_pd(&key, &pd));
    const char *impl = NULL;
    dnnl_status_t s = dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    if (s == dnnl_success && capacity > 0) {
        strncpy(name, impl ? impl : "?", capacity - 1);
        name[capacity - 1] = 0;
    }
    dnnl_primitive_desc_destroy(pd);
    return (int)s;
}

int ragseg_dnnl_cpu_isa(void) { return (int)dnnl_get_effective_cpu_isa(); }

int ragseg_dnnl_has_native_bf16(void) {
    int isa = (int)dnnl_get_effective_cpu_isa();
    return (isa & (int)dnnl_cpu_isa_avx512_core_bf16) == (int)dnnl_cpu_isa_avx512_core_bf16;
}

void ragseg_dnnl_version(int *major, int *minor, int *patch) {
    const dnnl_version_t *v = dnnl_version();
    *major = v->major, *minor = v->minor, *patch = v->patch;
}

const char *ragseg_dnnl_status_text(int status) { return dnnl_status2str((dnnl_status_t)status); }

static inline uint16_t to_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)(0x7fc0u | ((u >> 16) & 0x8000u));
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

// The same rounding with AVX-512 integer ops, 16 values at a time (bit-identical to to_bf16;
// vcvtneps2bf16 would flush denormals, which this does not).
__attribute__((target("avx512f,avx512bw"))) static void to_bf16_avx512(const float *src, uint16_t *dst,
                                                                       size_t count) {
    const __m512i bias = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1);
    const __m512i quiet = _mm512_set1_epi32(0x7fc0), sign = _mm512_set1_epi32(0x8000);
    size_t i = 0;
    for (; i + 16 <= count; i += 16) {
        __m512 x = _mm512_loadu_ps(src + i);
        __m512i u = _mm512_castps_si512(x);
        __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), one);
        __m512i r = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, bias), lsb), 16);
        __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
        __m512i q = _mm512_or_si512(quiet, _mm512_and_si512(_mm512_srli_epi32(u, 16), sign));
        r = _mm512_mask_mov_epi32(r, nan, q);
        _mm256_storeu_si256((__m256i *)(dst + i), _mm512_cvtepi32_epi16(r));
    }
    for (; i < count; i++) dst[i] = to_bf16(src[i]);
}

static void to_bf16_plain(const float *src, uint16_t *dst, size_t count) {
    for (size_t i = 0; i < count; i++) dst[i] = to_bf16(src[i]);
}

void ragseg_to_bf16(const float *src, uint16_t *dst, size_t count) {
    static int avx512 = -1;
    if (avx512 < 0) avx512 = __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512f");
    if (avx512)
        to_bf16_avx512(src, dst, count);
    else
        to_bf16_plain(src, dst, count);
}

void ragseg_to_bf16_rows(const float *src, long src_ld, uint16_t *dst, long dst_ld, long rows, long cols) {
    for (long r = 0; r < rows; r++) ragseg_to_bf16(src + r * src_ld, dst + r * dst_ld, (size_t)cols);
}

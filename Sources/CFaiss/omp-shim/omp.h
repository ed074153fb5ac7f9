/*
 * Minimal stand-in for GCC's <omp.h>: Swift's bundled clang does not ship libomp's header and
 * FAISS's impl/HNSW.h includes <omp.h>. Only what the FAISS headers and cfaiss.cpp use, with
 * libgomp's x86_64/arm64 layout (omp_lock_t is 4 bytes, 4-aligned); the symbols come from libgomp.
 */
#ifndef RAGSEG_OMP_SHIM_H
#define RAGSEG_OMP_SHIM_H
#ifdef __cplusplus
extern "C" {
#endif
typedef struct { unsigned char _x[4] __attribute__((__aligned__(4))); } omp_lock_t;
void omp_set_num_threads(int);
int omp_get_max_threads(void);
#ifdef __cplusplus
}
#endif
#endif

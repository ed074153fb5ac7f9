#ifndef RAGSEG_CFAISS_H
#define RAGSEG_CFAISS_H
/*
 * A small extern "C" surface over the FAISS C++ API (Debian's static libfaiss ships no C API).
 *
 * Every function catches every exception (faiss::FaissException, std::exception, anything else):
 * failures return -1 / NULL and leave a message readable with cfaiss_last_error() on the same
 * thread. All indexes use the inner-product metric (cosine similarity on L2-normalized vectors) and
 * take caller-chosen 64-bit ids: indexes without native id support are wrapped in IndexIDMap2.
 *
 * On-disk file (cfaiss_write / cfaiss_read): a 32-byte fixed header
 *   "RSGFAISS" | u32 version=1 | u32 user_len | u64 payload_len | u32 crc32(user+payload) | u32 0
 * then user_len caller bytes (the support bank stores the LMDB journal position there), then the
 * FAISS serialization. Files are written to a temporary name, fsync'ed, renamed over the target and
 * the directory fsync'ed, so a crash leaves either the old or the new file, never a torn one. The
 * checksum is verified before FAISS parses a single byte.
 */
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cfaiss_index cfaiss_index;

int ragseg_faiss_version_major(void);

/* Message of the last failure on this thread ("" when none). Valid until the next call that fails. */
const char *cfaiss_last_error(void);

/* New empty index from a FAISS factory string ("Flat", "HNSW32", "IVF256,Flat", ...), inner product. */
cfaiss_index *cfaiss_create(int dimension, const char *factory);
void cfaiss_free(cfaiss_index *index);

int cfaiss_dimension(const cfaiss_index *index);
int64_t cfaiss_ntotal(const cfaiss_index *index);
/* 1 when trained (Flat/HNSW always are), 0 when not, -1 on error. */
int cfaiss_is_trained(const cfaiss_index *index);
/* 1 when remove_ids works for this index type (HNSW cannot remove), 0 otherwise. */
int cfaiss_supports_removal(const cfaiss_index *index);

int cfaiss_train(cfaiss_index *index, int64_t n, const float *vectors);
int cfaiss_add_with_ids(cfaiss_index *index, int64_t n, const float *vectors, const int64_t *ids);
/* distances/labels are n*k; missing results have label -1. */
int cfaiss_search(const cfaiss_index *index, int64_t n, const float *queries, int64_t k,
                  float *distances, int64_t *labels);
/* Number of ids removed, or -1 (e.g. HNSW). */
int64_t cfaiss_remove_ids(cfaiss_index *index, int64_t n, const int64_t *ids);

/* Copies the ids stored in the index into ids (capacity ntotal). Returns the count, or -1. */
int64_t cfaiss_get_ids(const cfaiss_index *index, int64_t *ids, int64_t capacity);
/* The stored vector of an id (dimension floats). 0 on success, -1 when absent or unsupported (IVF). */
int cfaiss_reconstruct(const cfaiss_index *index, int64_t id, float *vector);

/* Search-time parameter: "efSearch" (HNSW) or "nprobe" (IVF). Returns 0, or -1 when not applicable. */
int cfaiss_set_search_parameter(cfaiss_index *index, const char *name, double value);

/* OpenMP threads FAISS uses (single queries run fastest with 1). */
void cfaiss_set_num_threads(int n);
int cfaiss_get_num_threads(void);

/* Atomic, checksummed write (see above). */
int cfaiss_write(const cfaiss_index *index, const char *path, const uint8_t *user, size_t user_len);
/* Reads and verifies a file written by cfaiss_write. On success *user is malloc'ed (free with
 * cfaiss_free_bytes; may be NULL when user_len is 0). */
cfaiss_index *cfaiss_read(const char *path, uint8_t **user, size_t *user_len);
void cfaiss_free_bytes(uint8_t *bytes);

#ifdef __cplusplus
}
#endif
#endif

#ifndef RAGSEG_CFAISS_H
#define RAGSEG_CFAISS_H
/* extern "C" surface over the FAISS C++ API; filled in by the support-bank work. */
#ifdef __cplusplus
extern "C" {
#endif
int ragseg_faiss_version_major(void);
#ifdef __cplusplus
}
#endif
#endif

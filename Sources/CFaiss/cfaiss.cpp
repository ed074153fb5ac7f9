#include <faiss/Index.h>
#include "cfaiss.h"
extern "C" int ragseg_faiss_version_major(void) { return FAISS_VERSION_MAJOR; }

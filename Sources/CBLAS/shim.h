// OpenBLAS's CBLAS interface (Debian: libopenblas-dev puts cblas.h on the default include path).
#include <cblas.h>
// Thread control, so single queries and tests can pin BLAS to a known number of threads.
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);

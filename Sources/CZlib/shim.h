// zlib (Debian: zlib1g-dev) for reading and writing .nii.gz.
#include <zlib.h>

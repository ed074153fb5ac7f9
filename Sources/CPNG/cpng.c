#include <png.h>
#include "cpng.h"
const char *ragseg_png_libpng_version(void) { return PNG_LIBPNG_VER_STRING; }

#ifndef RAGSEG_CPNG_H
#define RAGSEG_CPNG_H
/* C shim over libpng; filled in by the PNG work. */
const char *ragseg_png_libpng_version(void);
#endif

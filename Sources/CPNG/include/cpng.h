#ifndef RAGSEG_CPNG_H
#define RAGSEG_CPNG_H
/*
 * C shim over libpng for RAGSegIO.
 *
 * libpng reports errors by longjmp, which must not cross Swift frames. Every libpng call happens in
 * this file between a setjmp and its return; Swift only sees a status code and a message, and frees
 * what it is handed with ragseg_png_free. Decoding and encoding work on memory buffers, so the Swift
 * side owns all file I/O.
 */
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Return codes. */
enum {
    RAGSEG_PNG_OK = 0,
    RAGSEG_PNG_ERROR = 1,        /* libpng rejected the data (message says why) */
    RAGSEG_PNG_TOO_LARGE = 2,    /* dimensions or byte size over the limits below */
    RAGSEG_PNG_NO_MEMORY = 3,
    RAGSEG_PNG_BAD_ARGUMENT = 4, /* encoder called with invalid sizes/channels */
    RAGSEG_PNG_OVER_PIXEL_LIMIT = 5 /* width x height over the caller's max_pixels (out->width/height say the size) */
};

/* Largest image we decode: 65535 on a side and 1 << 31 bytes of decoded pixels. */
#define RAGSEG_PNG_MAX_DIMENSION 65535u
#define RAGSEG_PNG_MAX_BYTES ((size_t)1 << 31)

typedef struct {
    uint32_t width;
    uint32_t height;
    int channels;        /* 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA (palette expanded, tRNS -> alpha) */
    int bit_depth;       /* 8 or 16 (lower depths are expanded to 8) */
    uint8_t *pixels;     /* malloc'd, row-major interleaved; 16-bit samples in host byte order */
    size_t byte_count;   /* width * height * channels * bit_depth / 8 */
} ragseg_png_image;

/*
 * Decodes a whole PNG from memory. On RAGSEG_PNG_OK, out->pixels must be released with
 * ragseg_png_free. On failure, out->pixels is NULL and message (capacity message_capacity, always
 * NUL-terminated) holds libpng's reason. An image of more than max_pixels (width x height, from the
 * header) is refused with RAGSEG_PNG_OVER_PIXEL_LIMIT before its pixels are allocated: a small file
 * can declare a huge canvas.
 */
int ragseg_png_decode(const uint8_t *data, size_t size, uint64_t max_pixels, ragseg_png_image *out,
                      char *message, size_t message_capacity);

/* Options of ragseg_png_decode_options. */
enum {
    /* The stored samples rather than the colours they stand for: a palette image gives its palette indices
       (one channel), gray under 8 bits its values unscaled (0...2^depth - 1), and tRNS adds no alpha
       channel. Other layouts decode as without it. What a mask's label values are read from. */
    RAGSEG_PNG_KEEP_SAMPLES = 1
};

/* ragseg_png_decode with options (a bitwise OR of the flags above; 0 = ragseg_png_decode). */
int ragseg_png_decode_options(const uint8_t *data, size_t size, int options, uint64_t max_pixels, ragseg_png_image *out,
                              char *message, size_t message_capacity);

/*
 * Encodes 8-bit gray (channels 1) or RGB (channels 3) pixels, row-major interleaved, into a PNG in
 * memory. On RAGSEG_PNG_OK, *out_data (length *out_size) must be released with ragseg_png_free.
 */
int ragseg_png_encode8(const uint8_t *pixels, uint32_t width, uint32_t height, int channels,
                       uint8_t **out_data, size_t *out_size, char *message, size_t message_capacity);

void ragseg_png_free(void *pointer);

/* The libpng version we were compiled against, e.g. "1.6.39". */
const char *ragseg_png_libpng_version(void);

#ifdef __cplusplus
}
#endif
#endif

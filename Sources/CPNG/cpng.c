/*
 * libpng behind a setjmp boundary (see include/cpng.h).
 *
 * Structure: each public function keeps its allocations in a state struct that it owns, and calls a
 * helper that does setjmp and all libpng work. The helper only modifies the state through a pointer,
 * so after a longjmp the outer function sees well-defined values (locals changed between setjmp and
 * longjmp would be indeterminate) and can free everything on the error path.
 */
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpng.h"

const char *ragseg_png_libpng_version(void) { return PNG_LIBPNG_VER_STRING; }

void ragseg_png_free(void *pointer) { free(pointer); }

/* Where libpng's error callback leaves its message. */
typedef struct {
    char *message;
    size_t capacity;
    char last_warning[160];  /* libpng often explains a fatal error in the warning just before it */
} error_sink;

static void set_message(char *message, size_t capacity, const char *text) {
    if (message == NULL || capacity == 0) return;
    snprintf(message, capacity, "%s", text);
}

/* libpng calls this on fatal errors; it must not return, so it jumps back to the setjmp. */
static void on_error(png_structp png, png_const_charp text) {
    error_sink *sink = (error_sink *)png_get_error_ptr(png);
    if (sink != NULL && sink->message != NULL && sink->capacity > 0) {
        const char *reason = text != NULL ? text : "libpng error";
        if (sink->last_warning[0] != '\0') {
            snprintf(sink->message, sink->capacity, "%s (%s)", reason, sink->last_warning);
        } else {
            snprintf(sink->message, sink->capacity, "%s", reason);
        }
    }
    png_longjmp(png, 1);
}

/* Warnings (e.g. a bad CRC in an ancillary chunk, which libpng then skips) are not failures; the
   last one is kept to explain a following error (e.g. "Invalid IHDR data" after "Image width
   exceeds user limit in IHDR"). */
static void on_warning(png_structp png, png_const_charp text) {
    error_sink *sink = (error_sink *)png_get_error_ptr(png);
    if (sink != NULL && text != NULL) snprintf(sink->last_warning, sizeof sink->last_warning, "%s", text);
}

/* ------------------------------------------------------------------------------------ decoding */

typedef struct {
    const uint8_t *data;
    size_t size;
    size_t position;
} memory_reader;

static void read_from_memory(png_structp png, png_bytep out, png_size_t length) {
    memory_reader *reader = (memory_reader *)png_get_io_ptr(png);
    if (length > reader->size - reader->position) {
        png_error(png, "unexpected end of data (truncated PNG)");
    }
    memcpy(out, reader->data + reader->position, length);
    reader->position += length;
}

typedef struct {
    png_structp png;
    png_infop info;
    uint8_t *pixels;
    png_bytep *rows;
    int status;
} decode_state;

static const unsigned char png_signature[8] = {137, 80, 78, 71, 13, 10, 26, 10};

/* All libpng work for decoding; returns through longjmp on any libpng error. */
static int decode_inner(decode_state *state, memory_reader *reader, int options, uint64_t max_pixels,
                        ragseg_png_image *out, char *message, size_t capacity) {
    png_structp png = state->png;
    png_infop info = state->info;
    if (setjmp(png_jmpbuf(png))) return RAGSEG_PNG_ERROR;  /* message already stored by on_error */

    png_set_read_fn(png, reader, read_from_memory);
    png_set_user_limits(png, RAGSEG_PNG_MAX_DIMENSION, RAGSEG_PNG_MAX_DIMENSION);
    png_read_info(png, info);

    png_uint_32 width = 0, height = 0;
    int bit_depth = 0, color_type = 0, interlace = 0;
    png_get_IHDR(png, info, &width, &height, &bit_depth, &color_type, &interlace, NULL, NULL);
    if ((uint64_t)width * (uint64_t)height > max_pixels) {
        out->width = width;
        out->height = height;
        set_message(message, capacity, "over the pixel limit");
        return RAGSEG_PNG_OVER_PIXEL_LIMIT;
    }

    /* Normalize to 8/16-bit gray, gray+alpha, RGB or RGBA, keeping raw sample values (no gamma). */
    int keep_samples = (options & RAGSEG_PNG_KEEP_SAMPLES) != 0;
    if (keep_samples) {
        /* Palette indices and low-depth gray values, one byte each, unscaled; tRNS is not turned into alpha. */
        if (bit_depth < 8) png_set_packing(png);
    } else {
        if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
        if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
        if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
    }
    if (bit_depth == 16) {
        const uint16_t probe = 1;
        if (*(const uint8_t *)&probe == 1) png_set_swap(png);  /* PNG is big-endian; host is little */
    }
    png_set_interlace_handling(png);
    png_read_update_info(png, info);

    int channels = png_get_channels(png, info);
    int out_depth = png_get_bit_depth(png, info);
    size_t row_bytes = png_get_rowbytes(png, info);
    if ((out_depth != 8 && out_depth != 16) || channels < 1 || channels > 4) {
        set_message(message, capacity, "unsupported pixel layout after expansion");
        return RAGSEG_PNG_ERROR;
    }
    size_t expected_row = (size_t)width * (size_t)channels * (size_t)(out_depth / 8);
    if (row_bytes != expected_row) {
        set_message(message, capacity, "unexpected row size after expansion");
        return RAGSEG_PNG_ERROR;
    }
    if (height != 0 && row_bytes > RAGSEG_PNG_MAX_BYTES / height) {
        char text[160];
        snprintf(text, sizeof text, "image of %ux%u with %d channels at %d bits exceeds the %zu-byte limit",
                 (unsigned)width, (unsigned)height, channels, out_depth, (size_t)RAGSEG_PNG_MAX_BYTES);
        set_message(message, capacity, text);
        return RAGSEG_PNG_TOO_LARGE;
    }
    size_t total = row_bytes * height;
    state->pixels = (uint8_t *)malloc(total > 0 ? total : 1);
    state->rows = (png_bytep *)malloc(sizeof(png_bytep) * (height > 0 ? height : 1));
    if (state->pixels == NULL || state->rows == NULL) {
        set_message(message, capacity, "out of memory for the decoded image");
        return RAGSEG_PNG_NO_MEMORY;
    }
    for (png_uint_32 y = 0; y < height; y++) state->rows[y] = state->pixels + (size_t)y * row_bytes;
    png_read_image(png, state->rows);
    /* Reads the chunks after the image through IEND: a file cut short after IDAT fails here. */
    png_read_end(png, NULL);

    out->width = width;
    out->height = height;
    out->channels = channels;
    out->bit_depth = out_depth;
    out->byte_count = total;
    return RAGSEG_PNG_OK;
}

int ragseg_png_decode(const uint8_t *data, size_t size, uint64_t max_pixels, ragseg_png_image *out,
                      char *message, size_t message_capacity) {
    return ragseg_png_decode_options(data, size, 0, max_pixels, out, message, message_capacity);
}

int ragseg_png_decode_options(const uint8_t *data, size_t size, int options, uint64_t max_pixels, ragseg_png_image *out,
                              char *message, size_t message_capacity) {
    set_message(message, message_capacity, "");
    memset(out, 0, sizeof *out);
    if (data == NULL || size < 8 || memcmp(data, png_signature, 8) != 0) {
        set_message(message, message_capacity, size < 8 ? "too short to be a PNG" : "not a PNG (bad signature)");
        return RAGSEG_PNG_ERROR;
    }
    error_sink sink = {message, message_capacity, {0}};
    decode_state state = {NULL, NULL, NULL, NULL, RAGSEG_PNG_ERROR};
    memory_reader reader = {data, size, 0};
    state.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &sink, on_error, on_warning);
    if (state.png == NULL) {
        set_message(message, message_capacity, "cannot create libpng read struct");
        return RAGSEG_PNG_NO_MEMORY;
    }
    state.info = png_create_info_struct(state.png);
    if (state.info == NULL) {
        png_destroy_read_struct(&state.png, NULL, NULL);
        set_message(message, message_capacity, "cannot create libpng info struct");
        return RAGSEG_PNG_NO_MEMORY;
    }
    state.status = decode_inner(&state, &reader, options, max_pixels, out, message, message_capacity);
    png_destroy_read_struct(&state.png, &state.info, NULL);
    free(state.rows);
    if (state.status == RAGSEG_PNG_OK) {
        out->pixels = state.pixels;
    } else {
        free(state.pixels);
        uint32_t width = out->width, height = out->height;
        memset(out, 0, sizeof *out);
        if (state.status == RAGSEG_PNG_OVER_PIXEL_LIMIT) {
            out->width = width;
            out->height = height;
        }
    }
    return state.status;
}

/* ------------------------------------------------------------------------------------ encoding */

typedef struct {
    uint8_t *data;
    size_t size;
    size_t capacity;
} memory_writer;

static void write_to_memory(png_structp png, png_bytep bytes, png_size_t length) {
    memory_writer *writer = (memory_writer *)png_get_io_ptr(png);
    if (length > writer->capacity - writer->size) {
        size_t capacity = writer->capacity > 0 ? writer->capacity : 4096;
        while (capacity - writer->size < length) {
            if (capacity > SIZE_MAX / 2) png_error(png, "encoded PNG too large");
            capacity *= 2;
        }
        uint8_t *grown = (uint8_t *)realloc(writer->data, capacity);
        if (grown == NULL) png_error(png, "out of memory for the encoded PNG");
        writer->data = grown;
        writer->capacity = capacity;
    }
    memcpy(writer->data + writer->size, bytes, length);
    writer->size += length;
}

static void flush_memory(png_structp png) { (void)png; }

typedef struct {
    png_structp png;
    png_infop info;
    png_bytep *rows;
    memory_writer writer;
} encode_state;

static int encode_inner(encode_state *state, const uint8_t *pixels, uint32_t width, uint32_t height,
                        int channels) {
    png_structp png = state->png;
    png_infop info = state->info;
    if (setjmp(png_jmpbuf(png))) return RAGSEG_PNG_ERROR;

    png_set_write_fn(png, &state->writer, write_to_memory, flush_memory);
    png_set_IHDR(png, info, width, height, 8, channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    size_t row_bytes = (size_t)width * (size_t)channels;
    /* libpng's row pointers are non-const but png_write_image only reads them. */
    for (uint32_t y = 0; y < height; y++) state->rows[y] = (png_bytep)(uintptr_t)(pixels + (size_t)y * row_bytes);
    png_write_image(png, state->rows);
    png_write_end(png, NULL);
    return RAGSEG_PNG_OK;
}

int ragseg_png_encode8(const uint8_t *pixels, uint32_t width, uint32_t height, int channels,
                       uint8_t **out_data, size_t *out_size, char *message, size_t message_capacity) {
    set_message(message, message_capacity, "");
    *out_data = NULL;
    *out_size = 0;
    if (pixels == NULL || width == 0 || height == 0 || width > RAGSEG_PNG_MAX_DIMENSION ||
        height > RAGSEG_PNG_MAX_DIMENSION || (channels != 1 && channels != 3)) {
        set_message(message, message_capacity, "encoder needs 1 or 3 channels and sizes in 1...65535");
        return RAGSEG_PNG_BAD_ARGUMENT;
    }
    error_sink sink = {message, message_capacity, {0}};
    encode_state state;
    memset(&state, 0, sizeof state);
    state.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &sink, on_error, on_warning);
    if (state.png == NULL) {
        set_message(message, message_capacity, "cannot create libpng write struct");
        return RAGSEG_PNG_NO_MEMORY;
    }
    state.info = png_create_info_struct(state.png);
    state.rows = (png_bytep *)malloc(sizeof(png_bytep) * height);
    int status = RAGSEG_PNG_NO_MEMORY;
    if (state.info == NULL || state.rows == NULL) {
        set_message(message, message_capacity, "out of memory");
    } else {
        status = encode_inner(&state, pixels, width, height, channels);
    }
    png_destroy_write_struct(&state.png, state.info != NULL ? &state.info : NULL);
    free(state.rows);
    if (status == RAGSEG_PNG_OK) {
        *out_data = state.writer.data;
        *out_size = state.writer.size;
    } else {
        free(state.writer.data);
    }
    return status;
}

#!/usr/bin/env python3
"""Writes the mask fixtures of the one mask rule (RAGSegIO.MaskReader) into Tests/RAGSegIOTests/Fixtures/masks/.

Needs: the Python standard library only (the PNG chunks are written by hand, so every colour type, bit depth,
palette and tRNS chunk is exactly as named). Run from the repo root:  python3 tools/make_mask_fixtures.py
Deterministic: rerunning reproduces the committed files byte for byte.

Every file is 24x20 and stores one of two masks in its own way:
  object(x, y): the rectangle 5 <= x < 17, 4 <= y < 14, plus the single pixel (20, 17);
  labels(x, y): 0 outside the object, 1 on it where x < 11, 2 elsewhere on it.
The tests state the same two rules themselves; nothing here is computed by the code under test.
"""
import os
import struct
import zlib

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "RAGSegIOTests", "Fixtures", "masks")
W, H = 24, 20


def on_object(x, y):
    return (5 <= x < 17 and 4 <= y < 14) or (x, y) == (20, 17)


def label(x, y):
    return 0 if not on_object(x, y) else (1 if x < 11 else 2)


def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def pack_row(samples, bit_depth):
    """One scanline's samples (already interleaved) as bytes, filter type 0."""
    if bit_depth == 16:
        return b"\0" + b"".join(struct.pack(">H", s) for s in samples)
    if bit_depth == 8:
        return b"\0" + bytes(samples)
    per_byte = 8 // bit_depth
    out = bytearray()
    for i in range(0, len(samples), per_byte):
        group = samples[i:i + per_byte] + [0] * (per_byte - len(samples[i:i + per_byte]))
        value = 0
        for s in group:
            value = (value << bit_depth) | s
        out.append(value)
    return b"\0" + bytes(out)


def write_png(name, color_type, bit_depth, pixel, palette=None, trns=None):
    """pixel(x, y) -> list of samples for that pixel (one per channel)."""
    raw = b"".join(pack_row([s for x in range(W) for s in pixel(x, y)], bit_depth) for y in range(H))
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", W, H, bit_depth, color_type, 0, 0, 0))
    if palette is not None:
        data += chunk(b"PLTE", b"".join(bytes(c) for c in palette))
    if trns is not None:
        data += chunk(b"tRNS", trns)
    data += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


GRAY, RGB, PALETTE, GRAY_ALPHA, RGBA = 0, 2, 3, 4, 6
os.makedirs(OUT, exist_ok=True)

# One object, stored every way a mask may be.
o = on_object
write_png("object_gray8_255.png", GRAY, 8, lambda x, y: [255 if o(x, y) else 0])  # the usual mask
write_png("object_gray8_1.png", GRAY, 8, lambda x, y: [1 if o(x, y) else 0])
write_png("object_gray16.png", GRAY, 16, lambda x, y: [1000 if o(x, y) else 0])  # 16-bit value above 255
write_png("object_gray1.png", GRAY, 1, lambda x, y: [1 if o(x, y) else 0])
# Alpha is ignored: transparent object pixels and opaque background alike.
write_png("object_gray_alpha.png", GRAY_ALPHA, 8, lambda x, y: [255 if o(x, y) else 0, (x * 37 + y * 11) % 256])
write_png("object_gray_trns.png", GRAY, 8, lambda x, y: [255 if o(x, y) else 0], trns=struct.pack(">H", 255))
write_png("object_rgb.png", RGB, 8, lambda x, y: [255, 255, 255] if o(x, y) else [0, 0, 0])
write_png("object_rgba.png", RGBA, 8, lambda x, y: ([1, 1, 1] if o(x, y) else [0, 0, 0]) + [(x * 13 + y) % 256])
write_png("object_rgb16.png", RGB, 16, lambda x, y: [65535] * 3 if o(x, y) else [0] * 3)
# Palette by index, whatever the colours: index 0 (background) is red, index 1 (the object) is black, so
# reading colours instead of indices would give the inverse mask. The tRNS chunk is ignored too.
write_png("object_palette.png", PALETTE, 8, lambda x, y: [1 if o(x, y) else 0],
          palette=[(200, 30, 30), (0, 0, 0)], trns=bytes([0, 255]))
write_png("object_palette2.png", PALETTE, 2, lambda x, y: [1 if o(x, y) else 0],
          palette=[(0, 0, 0), (255, 255, 255)])

# Two labels, stored as label values.
write_png("labels_gray8.png", GRAY, 8, lambda x, y: [label(x, y)])
write_png("labels_gray16.png", GRAY, 16, lambda x, y: [label(x, y)])
write_png("labels_gray2.png", GRAY, 2, lambda x, y: [label(x, y)])
write_png("labels_rgb.png", RGB, 8, lambda x, y: [label(x, y)] * 3)
write_png("labels_palette.png", PALETTE, 8, lambda x, y: [label(x, y)],
          palette=[(0, 0, 0), (255, 0, 0), (0, 255, 0)])

# Errors: a colour pixel (the first in row order at x=7, y=5; another at x=3, y=15), and a value beyond
# two labels (3, first at x=9, y=6).
write_png("error_color.png", RGB, 8,
          lambda x, y: [255, 0, 0] if (x, y) in ((7, 5), (3, 15)) else ([255] * 3 if o(x, y) else [0] * 3))
write_png("error_label3.png", GRAY, 8, lambda x, y: [3 if (x, y) in ((9, 6), (12, 12)) else label(x, y)])

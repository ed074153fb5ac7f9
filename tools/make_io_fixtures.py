#!/usr/bin/env python3
"""Writes the RAGSegIO test fixtures into Tests/RAGSegIOTests/Fixtures/.

Needs: numpy, safetensors, torch (for bfloat16 only), pillow  -- e.g. /tmp/refenv/bin/python.
Run from the repo root:  /tmp/refenv/bin/python tools/make_io_fixtures.py
Deterministic (fixed seeds), so rerunning reproduces the committed files byte for byte.
The expected values are made by numpy / torch / Pillow, never by the Swift code under test.
"""
import os
import struct
import zlib

import numpy as np
import torch
from PIL import Image
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import save_file as save_torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "RAGSegIOTests", "Fixtures")
os.makedirs(OUT, exist_ok=True)


def path(name):
    return os.path.join(OUT, name)


rng = np.random.default_rng(20261121)

# ---------------------------------------------------------------- safetensors
# Special values that exercise the half-precision conversion: zero, -0, subnormals, the largest
# finite half, infinities, and ordinary values.
specials = np.array([0.0, -0.0, 1.0, -2.5, 65504.0, -65504.0, 6.0e-8, 5.96e-8, 6.1e-5, np.inf, -np.inf,
                     0.333251953125, 1e-3, 3.140625], dtype=np.float32)
a32 = rng.standard_normal((3, 5)).astype(np.float32)
b32 = (rng.standard_normal((2, 2, 3)) * 100).astype(np.float32)
scalar32 = np.array(7.25, dtype=np.float32)
save_numpy({"a": a32, "b.weight": b32, "scalar": scalar32}, path("st_f32.safetensors"),
           metadata={"format": "np"})  # one key: safetensors writes metadata in hash order
np.save(path("st_f32_a.npy"), a32)
np.save(path("st_f32_b.npy"), b32)

f16 = np.concatenate([specials, rng.standard_normal(10).astype(np.float32)]).astype(np.float16).reshape(4, 6)
f16_odd = rng.standard_normal(5).astype(np.float16)
save_numpy({"h": f16, "odd": f16_odd}, path("st_f16.safetensors"))
np.save(path("st_f16_h.npy"), f16.astype(np.float32))
np.save(path("st_f16_odd.npy"), f16_odd.astype(np.float32))

bf_src = torch.from_numpy(np.concatenate([specials, rng.standard_normal(10).astype(np.float32) * 1000]).reshape(3, 8))
bf16 = bf_src.to(torch.bfloat16)
save_torch({"w": bf16}, path("st_bf16.safetensors"), metadata={"format": "pt"})
np.save(path("st_bf16_w.npy"), bf16.to(torch.float32).numpy())

# Mixed integer/float64 file: converted to fp32 by the reader.
save_numpy({"d": np.array([1.5, -2.25, 1e10], dtype=np.float64),
            "i": np.array([[-3, 0], [7, 123456]], dtype=np.int64),
            "k": np.array([-7, 9], dtype=np.int32),
            "u": np.array([0, 255, 17], dtype=np.uint8),
            "flag": np.array([True, False, True])}, path("st_mixed.safetensors"))

# ---------------------------------------------------------------- npy (numpy-written)
np.save(path("np_f4.npy"), (np.arange(6, dtype=np.float32).reshape(2, 3) * 0.5 - 1.0))
np.save(path("np_f8.npy"), np.array([1.0 / 3.0, -2.0, 1e-3], dtype=np.float64))
np.save(path("np_u1.npy"), np.array([[0, 1], [128, 255]], dtype=np.uint8))
np.save(path("np_i8.npy"), np.array([-(2 ** 40), -1, 0, 2 ** 40 + 1], dtype=np.int64))
np.save(path("np_i4.npy"), np.array([-5, 2147483647], dtype=np.int32))
np.save(path("np_b1.npy"), np.array([True, False, True]))
np.save(path("np_scalar.npy"), np.array(3.5, dtype=np.float32))
np.save(path("np_f4_3d.npy"), np.arange(24, dtype=np.float32).reshape(2, 3, 4))
np.save(path("np_fortran.npy"), np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)))
np.save(path("np_bigendian.npy"), np.arange(3, dtype=">f4"))
with open(path("np_v2.npy"), "wb") as f:
    np.lib.format.write_array(f, np.array([[1.5, 2.5]], dtype=np.float32), version=(2, 0))

# ---------------------------------------------------------------- PNG (Pillow-written, odd sizes)
H, W = 7, 13


def save_expected(name, array):
    """Expected pixels as int32 [H, W] or [H, W, C] (what Pillow/numpy decode)."""
    np.save(path(name), np.ascontiguousarray(array).astype(np.int32))


gray8 = rng.integers(0, 256, (H, W), dtype=np.uint8)
Image.fromarray(gray8, "L").save(path("png_gray8.png"))
save_expected("png_gray8.npy", np.array(Image.open(path("png_gray8.png"))))

gray16 = rng.integers(0, 65536, (H, W), dtype=np.uint16)
Image.fromarray(gray16).save(path("png_gray16.png"))
im = Image.open(path("png_gray16.png"))
assert im.mode.startswith("I"), im.mode
save_expected("png_gray16.npy", np.array(im))

la = rng.integers(0, 256, (H, W, 2), dtype=np.uint8)
Image.fromarray(la, "LA").save(path("png_gray_alpha.png"))
save_expected("png_gray_alpha.npy", np.array(Image.open(path("png_gray_alpha.png"))))

rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
Image.fromarray(rgb, "RGB").save(path("png_rgb.png"))
save_expected("png_rgb.npy", np.array(Image.open(path("png_rgb.png"))))

rgba = rng.integers(0, 256, (H, W, 4), dtype=np.uint8)
Image.fromarray(rgba, "RGBA").save(path("png_rgba.png"))
save_expected("png_rgba.npy", np.array(Image.open(path("png_rgba.png"))))

# Palette without transparency -> RGB.
pal = Image.fromarray(rng.integers(0, 6, (H, W), dtype=np.uint8), "P")
pal.putpalette([10, 20, 30, 200, 0, 0, 0, 200, 0, 0, 0, 200, 255, 255, 255, 7, 77, 177])
pal.save(path("png_palette.png"))
im = Image.open(path("png_palette.png"))
assert im.mode == "P"
save_expected("png_palette.npy", np.array(im.convert("RGB")))

# Palette with a tRNS chunk -> RGBA.
palt = Image.fromarray(rng.integers(0, 4, (H, W), dtype=np.uint8), "P")
palt.putpalette([1, 2, 3, 40, 50, 60, 100, 110, 120, 250, 240, 230])
palt.save(path("png_palette_trns.png"), transparency=bytes([0, 128, 255, 64]))
im = Image.open(path("png_palette_trns.png"))
assert "transparency" in im.info
save_expected("png_palette_trns.npy", np.array(im.convert("RGBA")))

# 1-bit: libpng expands 0/1 to 0/255, like Pillow's convert("L").
bits = rng.integers(0, 2, (H, W)).astype(bool)
Image.fromarray(bits).convert("1").save(path("png_1bit.png"))
im = Image.open(path("png_1bit.png"))
assert im.mode == "1"
save_expected("png_1bit.npy", np.array(im.convert("L")))


# 16-bit RGB and 2-bit gray, which Pillow does not write: encoded here by hand (zlib + CRC), decoded
# back by Pillow for the expected values where it can, so the expectation is not our own encoder's.
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def raw_png(width, height, bit_depth, color_type, rows):
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    raw = b"".join(b"\x00" + r for r in rows)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


rgb16 = rng.integers(0, 65536, (5, 6, 3), dtype=np.uint16)
with open(path("png_rgb16.png"), "wb") as f:
    f.write(raw_png(6, 5, 16, 2, [r.astype(">u2").tobytes() for r in rgb16]))
save_expected("png_rgb16.npy", rgb16)

gray2 = rng.integers(0, 4, (5, 7), dtype=np.uint8)
rows2 = []
for r in gray2:
    padded = np.concatenate([r, np.zeros((-len(r)) % 4, dtype=np.uint8)])
    rows2.append(bytes((padded[i] << 6) | (padded[i + 1] << 4) | (padded[i + 2] << 2) | padded[i + 3]
                       for i in range(0, len(padded), 4)))
with open(path("png_gray2.png"), "wb") as f:
    f.write(raw_png(7, 5, 2, 0, rows2))
im = Image.open(path("png_gray2.png"))
expected2 = np.array(im.convert("L"))
assert (expected2 == gray2 * 85).all(), "Pillow and the bit-replication rule disagree"
save_expected("png_gray2.npy", expected2)

total = sum(os.path.getsize(path(n)) for n in os.listdir(OUT))
print(f"wrote {len(os.listdir(OUT))} files, {total} bytes, into {os.path.normpath(OUT)}")

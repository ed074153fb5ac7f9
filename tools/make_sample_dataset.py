#!/usr/bin/env python3
"""Writes a small synthetic segmentation dataset for the quick start (standard library only).

Each case is a 8-bit grayscale "scan" (smooth background, noise, a few distractor blobs) with one
bright, slightly textured ellipse whose mask is the ground truth. It exercises the whole RAGSeg
pipeline on any machine; it is NOT medical data and says nothing about clinical accuracy.

    python3 tools/make_sample_dataset.py OUT_DIR [--cases 24] [--size 160] [--seed 1]

writes OUT_DIR/images/case_NNN.png and OUT_DIR/masks/case_NNN.png (0/255).
"""
import argparse
import math
import os
import random
import struct
import zlib


def write_gray_png(path, width, height, pixels):
    raw = b"".join(b"\x00" + bytes(pixels[y * width:(y + 1) * width]) for y in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(png)
    os.replace(tmp, path)


def make_case(rng, size):
    cx, cy = rng.uniform(0.3, 0.7) * size, rng.uniform(0.3, 0.7) * size
    rx, ry = rng.uniform(0.10, 0.25) * size, rng.uniform(0.10, 0.25) * size
    angle = rng.uniform(0, math.pi)
    ca, sa = math.cos(angle), math.sin(angle)
    blobs = [(rng.uniform(0, size), rng.uniform(0, size), rng.uniform(0.03, 0.08) * size) for _ in range(3)]
    tilt = rng.uniform(-0.3, 0.3)
    image, mask = [], []
    for y in range(size):
        for x in range(size):
            dx, dy = x - cx, y - cy
            u, v = (dx * ca + dy * sa) / rx, (-dx * sa + dy * ca) / ry
            inside = u * u + v * v <= 1.0
            value = 60 + 40 * tilt * (x - size / 2) / size + 25 * math.sin(x / 9.0) * math.cos(y / 13.0)
            for bx, by, br in blobs:
                if (x - bx) ** 2 + (y - by) ** 2 <= br * br:
                    value += 45
            if inside:
                value = 170 + 20 * math.sin(u * 5) * math.cos(v * 4)
            value += rng.gauss(0, 8)
            image.append(max(0, min(255, int(round(value)))))
            mask.append(255 if inside else 0)
    return image, mask


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--cases", type=int, default=24)
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    for sub in ("images", "masks"):
        os.makedirs(os.path.join(args.out, sub), exist_ok=True)
    for i in range(args.cases):
        image, mask = make_case(rng, args.size)
        name = f"case_{i:03d}.png"
        write_gray_png(os.path.join(args.out, "images", name), args.size, args.size, image)
        write_gray_png(os.path.join(args.out, "masks", name), args.size, args.size, mask)
    print(f"wrote {args.cases} synthetic cases ({args.size}x{args.size}) to {args.out}")


if __name__ == "__main__":
    main()

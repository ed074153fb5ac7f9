#!/usr/bin/env python3
"""Compare two .npy tensors the way the parity tests do: max |a - b| / max |b| (b = reference).

Needs numpy only. Usage: python tools/compare_npy.py OURS.npy REFERENCE.npy [--tolerance 1e-4]
Exit status 1 when shapes differ or the relative error exceeds the tolerance.
"""
import argparse
import sys

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ours")
    ap.add_argument("reference")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    args = ap.parse_args()
    a = np.load(args.ours).astype(np.float64)
    b = np.load(args.reference).astype(np.float64)
    if a.shape != b.shape:
        print(f"shape mismatch: {a.shape} vs {b.shape}")
        sys.exit(1)
    diff = np.abs(a - b).max()
    scale = np.abs(b).max()
    rel = diff / scale if scale > 0 else diff
    print(f"shape {a.shape}: max |diff| {diff:.3e}, reference scale {scale:.3e}, relative {rel:.3e} "
          f"({'OK' if rel <= args.tolerance else 'FAIL'} at {args.tolerance:g})")
    sys.exit(0 if rel <= args.tolerance else 1)


if __name__ == "__main__":
    main()

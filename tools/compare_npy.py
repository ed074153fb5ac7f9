#!/usr/bin/env python3
"""Compare the .npy files two directories have in common: max |a - b| and the relative error
max |a - b| / max(1, max |b|) (the parity criterion of the project, pass at <= 1e-4).

Needs (not CI): numpy.   python tools/compare_npy.py SWIFT_DIR REFERENCE_DIR
"""
import os
import sys

import numpy as np


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    ours, ref = sys.argv[1], sys.argv[2]
    names = sorted(set(os.listdir(ours)) & set(f for f in os.listdir(ref) if f.endswith(".npy")))
    if not names:
        sys.exit("no .npy files in common")
    worst = 0.0
    for name in names:
        a, b = np.load(os.path.join(ours, name)), np.load(os.path.join(ref, name))
        if a.shape != b.shape:
            print(f"{name:24s} SHAPE {a.shape} vs {b.shape}")
            worst = float("inf")
            continue
        diff = float(np.abs(a.astype(np.float64) - b).max())
        scale = float(np.abs(b).max())
        rel = diff / max(1.0, scale)
        worst = max(worst, rel)
        print(f"{name:24s} {str(a.shape):18s} max|diff| {diff:.3e}  scale {scale:.3g}  rel {rel:.2e}  {'ok' if rel <= 1e-4 else 'FAIL'}")
    print("PASS" if worst <= 1e-4 else "FAIL")
    sys.exit(0 if worst <= 1e-4 else 1)


if __name__ == "__main__":
    main()

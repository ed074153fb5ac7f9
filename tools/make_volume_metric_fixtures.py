#!/usr/bin/env python3
"""Reference values for the 3-D metrics (Tests/EvaluationTests/Fixtures/volumes): Dice, IoU and HD95 in mm.

HD95 is MedPy's own function, `medpy.metric.binary.hd95(result, reference, voxelspacing)`: surface voxels by
binary erosion with generate_binary_structure(3, 1) (the six face neighbours; outside the volume counts as
background), distances by scipy's exact Euclidean distance transform with sampling = voxel spacing, the 95th
percentile of both directed sets pooled. Dice and IoU are counted with numpy; where both masks are empty they
are 1 (MedPy's dc/jc give 0 there; RAGSeg's 2-D metrics say 1, a correct "nothing here"). MedPy refuses an
empty mask for HD95: the expected value is then null.

Volumes are saved as uint8 .npy arrays of shape (n0, n1, n2) in voxel index order (i, j, k), as nibabel's
`get_fdata()` gives them; the spacing is per index axis in mm.
Needs (not in CI): numpy, scipy and PyPI `medpy`. Run from the repository root:
    python3 -m venv /tmp/medpy && /tmp/medpy/bin/pip install medpy
    /tmp/medpy/bin/python tools/make_volume_metric_fixtures.py
"""
import json
import os

import numpy as np
from medpy.metric.binary import hd95

OUT = "Tests/EvaluationTests/Fixtures/volumes"


def ellipsoids(rng, shape, count, spacing):
    """Union of `count` random ellipsoids, radii drawn in mm (so they look round in the world)."""
    grid = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing)], indexing="ij")
    extent = [n * s for n, s in zip(shape, spacing)]
    mask = np.zeros(shape, bool)
    for _ in range(count):
        centre = [rng.uniform(0.2, 0.8) * e for e in extent]
        radii = [rng.uniform(0.12, 0.3) * min(extent) for _ in extent]
        mask |= sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii)) <= 1
    return mask


def scores(pred, truth, spacing):
    inter = int(np.logical_and(pred, truth).sum())
    total = int(pred.sum() + truth.sum())
    union = int(np.logical_or(pred, truth).sum())
    dice = 1.0 if total == 0 else 2.0 * inter / total
    iou = 1.0 if union == 0 else inter / union
    value = None
    if pred.any() and truth.any():
        value = float(hd95(pred, truth, voxelspacing=spacing))
    return {"dice": dice, "iou": iou, "hd95": value}


def main():
    rng = np.random.default_rng(13)
    os.makedirs(OUT, exist_ok=True)
    cases = []

    def add(name, pred, truth, spacing):
        np.save(f"{OUT}/{name}_pred.npy", pred.astype(np.uint8))
        np.save(f"{OUT}/{name}_truth.npy", truth.astype(np.uint8))
        cases.append({"name": name, "spacing": list(spacing), **scores(pred, truth, spacing)})

    # Random blobs with strongly anisotropic spacing (thick slices on the last axis).
    spacing = (0.8, 1.2, 3.0)
    add("blobs", ellipsoids(rng, (28, 24, 14), 2, spacing), ellipsoids(rng, (28, 24, 14), 2, spacing), spacing)
    # Overlap-heavy: the truth is the prediction shifted by a few voxels along every axis.
    spacing = (1.5, 0.7, 2.5)
    pred = ellipsoids(rng, (22, 30, 16), 3, spacing)
    add("shifted", pred, np.roll(pred, (2, -3, 1), axis=(0, 1, 2)), spacing)
    # Masks reaching the volume's faces (voxels on the border are surface: outside counts as background).
    spacing = (0.9, 0.9, 4.0)
    pred = np.zeros((16, 18, 10), bool)
    pred[0:9, 3:18, 0:6] = True
    truth = np.zeros_like(pred)
    truth[2:12, 0:14, 2:10] = True
    add("border", pred, truth, spacing)
    # One mask empty, both empty.
    spacing = (1.0, 2.0, 3.0)
    truth = ellipsoids(rng, (12, 10, 8), 1, spacing)
    empty = np.zeros_like(truth)
    add("empty", empty, truth, spacing)
    add("bothempty", empty, empty, spacing)
    with open(f"{OUT}/expected.json", "w") as f:
        json.dump(cases, f, indent=1)
    print(json.dumps(cases, indent=1))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Reference values for Tests/EvaluationTests: Dice, IoU and HD95 of random blob masks.

Independent of the Swift code: HD95 is MedPy's definition (medpy.metric.binary.hd95) restated with
scipy.ndimage (binary_erosion with a cross, exact Euclidean distance transform, NumPy percentile).
Needs: numpy, scipy (the system python3 has both). Run from the repository root:
    python3 tools/make_eval_fixtures.py
"""
import json
import os

import numpy as np
from scipy import ndimage

OUT = "Tests/EvaluationTests/Fixtures"


def blob_mask(rng, h, w, blobs):
    yy, xx = np.mgrid[0:h, 0:w]
    m = np.zeros((h, w), bool)
    for _ in range(blobs):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        ry, rx = rng.uniform(2, h / 3), rng.uniform(2, w / 3)
        m |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    return m


def surface_distances(a, b, spacing):
    cross = ndimage.generate_binary_structure(2, 1)
    a_border = a ^ ndimage.binary_erosion(a, structure=cross, iterations=1)
    b_border = b ^ ndimage.binary_erosion(b, structure=cross, iterations=1)
    dt = ndimage.distance_transform_edt(~b_border, sampling=spacing)
    return dt[a_border]


def scores(pred, truth, spacing):
    inter = np.logical_and(pred, truth).sum()
    total = pred.sum() + truth.sum()
    union = np.logical_or(pred, truth).sum()
    dice = 1.0 if total == 0 else 2.0 * inter / total
    iou = 1.0 if union == 0 else inter / union
    hd95 = None
    if pred.any() and truth.any():
        d = np.hstack((surface_distances(pred, truth, spacing), surface_distances(truth, pred, spacing)))
        hd95 = float(np.percentile(d, 95))
    return {"dice": float(dice), "iou": float(iou), "hd95": hd95}


def main():
    rng = np.random.default_rng(7)
    os.makedirs(OUT, exist_ok=True)
    cases = []
    specs = [(48, 64, 2, (1.0, 1.0)), (40, 40, 3, (1.0, 1.0)), (33, 57, 1, (0.7, 1.3)), (64, 48, 4, (1.0, 1.0))]
    for i, (h, w, blobs, spacing) in enumerate(specs):
        pred = blob_mask(rng, h, w, blobs)
        truth = blob_mask(rng, h, w, blobs)
        if i == 1:  # overlap-heavy pair: truth is the prediction shifted by a few pixels
            truth = np.roll(pred, (3, -2), axis=(0, 1))
        name = f"case{i}"
        np.save(f"{OUT}/{name}_pred.npy", pred.astype(np.uint8))
        np.save(f"{OUT}/{name}_truth.npy", (truth * 255).astype(np.uint8))  # 0/255 like a mask PNG
        cases.append({"name": name, "spacing": list(spacing), **scores(pred, truth, spacing)})
    # Edge cases: empty prediction, both empty.
    truth = blob_mask(rng, 20, 24, 1)
    empty = np.zeros_like(truth)
    np.save(f"{OUT}/empty_pred.npy", empty.astype(np.uint8))
    np.save(f"{OUT}/empty_truth.npy", truth.astype(np.uint8))
    cases.append({"name": "empty", "spacing": [1.0, 1.0], **scores(empty, truth, (1.0, 1.0))})
    np.save(f"{OUT}/bothempty_pred.npy", empty.astype(np.uint8))
    np.save(f"{OUT}/bothempty_truth.npy", empty.astype(np.uint8))
    cases.append({"name": "bothempty", "spacing": [1.0, 1.0], **scores(empty, empty, (1.0, 1.0))})
    with open(f"{OUT}/expected.json", "w") as f:
        json.dump(cases, f, indent=1)
    print(json.dumps(cases, indent=1))


if __name__ == "__main__":
    main()

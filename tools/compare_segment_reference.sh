#!/usr/bin/env bash
# Compares `ragseg segment --logits` with the official predictor on the full-size reference that
# tools/make_segment_reference.py wrote (real sam2.1 tiny, random weights, k = 1..8).
# Needs (not CI): numpy (tools/compare_npy.py).
#   bash tools/compare_segment_reference.sh DIR [RAGSEG_BINARY]
# Pass: relative error of every k{k}_low_res.npy <= 1e-4 (compare_npy.py's criterion), and the written
# masks agree with the reference's final logits except where |reference logit| <= 1e-4 of its scale.
set -euo pipefail
dir=${1:?usage: compare_segment_reference.sh DIR [RAGSEG_BINARY]}
ragseg=${2:-.build/release/ragseg}
python=${PYTHON:-python3}
mkdir -p "$dir/swift"
for k in 1 2 3 4 5 6 7 8; do
    args=()
    for ((j = 0; j < k; j++)); do args+=(--support "$dir/support$j.png=$dir/support${j}_mask.png"); done
    "$ragseg" segment --sam2 "$dir/weights.safetensors" "${args[@]}" "$dir/target.png" \
        --out "$dir/swift/k$k" --logits "$dir/swift/k${k}_low_res.npy"
done
"$python" "$(dirname "$0")/compare_npy.py" "$dir/swift" "$dir/ref"
"$python" - "$dir" <<'PY'
import sys
import numpy as np
from PIL import Image
d = sys.argv[1]
bad = 0
for k in range(1, 9):
    ref = np.load(f"{d}/ref/k{k}_final.npy")
    ours = np.asarray(Image.open(f"{d}/swift/k{k}/target.png")) > 0
    band = 1e-4 * max(1.0, float(np.abs(ref).max()))
    flips = (ours != (ref > 0)) & (np.abs(ref) > band)
    print(f"k={k}: {int(ours.sum())} foreground px, {int(flips.sum())} differ outside the +-{band:.2g} band")
    bad += int(flips.sum())
sys.exit(1 if bad else 0)
PY

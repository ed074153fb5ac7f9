#!/usr/bin/env bash
# RAGSeg end to end on a fresh Debian machine: system packages, release build, model weights, a small
# synthetic dataset, a support bank built from it, and segmentation of held-out images with Dice printed
# and overlays written. Everything lands in out/quickstart/.
#
# Weights: RAGSEG_WEIGHTS=DIR with DIR/dinov2/model.safetensors (+ config.json) and DIR/sam2.safetensors
# (e.g. facebook/dinov2-small and facebook/sam2.1-hiera-tiny from Hugging Face). Without them, and when
# they cannot be downloaded, the same pipeline runs on the repository's tiny random-weight test models and
# says so: the masks and Dice are then meaningless, only the machinery is shown.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
OUT=out/quickstart

bash tools/install-deps.sh
swift build -c release --product ragseg
RAGSEG=.build/release/ragseg

WEIGHTS=${RAGSEG_WEIGHTS:-weights}
if [ ! -f "$WEIGHTS/dinov2/model.safetensors" ] || [ ! -f "$WEIGHTS/sam2.safetensors" ]; then
    if [ -z "${RAGSEG_WEIGHTS:-}" ] && [ -z "${RAGSEG_OFFLINE:-}" ] && command -v curl >/dev/null; then
        echo "== downloading DINOv2-S/14 and SAM 2.1 tiny from Hugging Face into $WEIGHTS/ (set RAGSEG_OFFLINE=1 to skip)"
        mkdir -p "$WEIGHTS/dinov2"
        hf=https://huggingface.co
        curl -fL --retry 2 -o "$WEIGHTS/dinov2/model.safetensors.part" "$hf/facebook/dinov2-small/resolve/main/model.safetensors" \
            && curl -fL --retry 2 -o "$WEIGHTS/dinov2/config.json" "$hf/facebook/dinov2-small/resolve/main/config.json" \
            && mv "$WEIGHTS/dinov2/model.safetensors.part" "$WEIGHTS/dinov2/model.safetensors" \
            && curl -fL --retry 2 -o "$WEIGHTS/sam2.safetensors.part" "$hf/facebook/sam2.1-hiera-tiny/resolve/main/model.safetensors" \
            && mv "$WEIGHTS/sam2.safetensors.part" "$WEIGHTS/sam2.safetensors" \
            || echo "   download failed"
    fi
fi
if [ -f "$WEIGHTS/dinov2/model.safetensors" ] && [ -f "$WEIGHTS/sam2.safetensors" ]; then
    DINOV2="$WEIGHTS/dinov2"; SAM2="$WEIGHTS/sam2.safetensors"; K=4
    echo "== real weights: $DINOV2, $SAM2"
else
    DINOV2=Tests/DINOv2Tests/Fixtures/plain; SAM2=Tests/SAM2Tests/Fixtures/memory/weights.safetensors; K=3
    cat <<MSG
== NO REAL WEIGHTS: running on the tiny random-weight TEST models ($DINOV2, $SAM2).
   The pipeline below is the real one, but these models know nothing: the masks and Dice scores are
   NOT meaningful. Put real weights in \$RAGSEG_WEIGHTS (see the comment at the top of this script).
MSG
fi

rm -rf "$OUT"
python3 tools/make_sample_dataset.py "$OUT/data" --cases 24 --size 160
# 20 cases build the bank, 4 are held out.
mkdir -p "$OUT/heldout/images" "$OUT/heldout/masks"
for i in 020 021 022 023; do
    mv "$OUT/data/images/case_$i.png" "$OUT/heldout/images/"; mv "$OUT/data/masks/case_$i.png" "$OUT/heldout/masks/"
done

echo "== building the support bank"
$RAGSEG index create "$OUT/bank" --dinov2 "$DINOV2" --sam2 "$SAM2"
$RAGSEG index add "$OUT/bank" --images "$OUT/data/images" --masks "$OUT/data/masks" > /dev/null   # weights recorded at create
$RAGSEG index info "$OUT/bank"
$RAGSEG index verify "$OUT/bank"

echo "== segmenting the held-out images (k = $K)"
$RAGSEG segment --index "$OUT/bank" --k "$K" --overlay \
    --out "$OUT/masks" "$OUT"/heldout/images/*.png
echo "== Dice of the held-out images"
$RAGSEG eval --index "$OUT/bank" --k "$K" \
    --images "$OUT/heldout/images" --masks "$OUT/heldout/masks" --csv "$OUT/eval.csv"
echo "== masks and overlays in $OUT/masks/"

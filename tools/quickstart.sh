#!/usr/bin/env bash
# RAGSeg end to end on a fresh Debian machine: system packages, release build, model weights, a small
# synthetic dataset, a support bank built from it, and segmentation of held-out images with Dice printed
# and overlays written; then a small synthetic NIfTI dataset and a bank of its slices. Everything lands in
# out/quickstart/.
#
# Weights: weights/ (or RAGSEG_WEIGHTS=DIR) with dinov2/model.safetensors + dinov2/config.json
# (facebook/dinov2-small) and sam2.safetensors (facebook/sam2.1-hiera-tiny's model.safetensors). Missing
# files are downloaded into that folder with tools/fetch_weights.sh (HF_ENDPOINT picks a mirror;
# RAGSEG_OFFLINE=1 never downloads: point RAGSEG_WEIGHTS at a local copy on offline machines). The official
# downloads work as they are: a SAM 2 checkpoint sam2.1_hiera_*.pt / sam2_hiera_*.pt and torch hub's
# dinov2_vit*_pretrain.pth in that folder are used instead of the safetensors files (nothing is downloaded
# for the model they provide).
# Weights that are missing, fail to download or do not load: the same pipeline runs on the repository's
# tiny random-weight test models and says so: the masks and Dice are then meaningless, only the machinery
# is shown.
#
# For CI and tests: RAGSEG_BIN=PATH runs that ragseg binary (e.g. the one tools/test.sh built) instead of
# installing the packages and building one; RAGSEG_QUICKSTART_OUT=DIR writes there instead of out/quickstart.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
OUT=${RAGSEG_QUICKSTART_OUT:-out/quickstart}

if [ -n "${RAGSEG_BIN:-}" ]; then
    RAGSEG=$RAGSEG_BIN
    echo "== using $RAGSEG (RAGSEG_BIN): no packages installed, no build"
else
    bash tools/install-deps.sh
    swift build -c release --product ragseg
    RAGSEG=.build/release/ragseg
fi

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
# The weights in folder $1: the official downloads as they are when present, else the Hugging Face files.
first_file() { for f in "$@"; do [ -f "$f" ] && { echo "$f"; return 0; }; done; return 1; }
sam2_weights() { first_file "$1"/sam2.1_hiera_*.pt "$1"/sam2_hiera_*.pt "$1/sam2.safetensors"; }
dinov2_weights() {
    first_file "$1"/dinov2_vit*_pretrain.pth && return 0
    [ -f "$1/dinov2/model.safetensors" ] && [ -f "$1/dinov2/config.json" ] && echo "$1/dinov2"
}
complete() { sam2_weights "$1" >/dev/null && dinov2_weights "$1" >/dev/null; }

# curl, and ca-certificates for https, for the download only (a fresh Debian has neither).
download_tools() {
    local missing=()
    command -v curl >/dev/null 2>&1 || missing+=(curl)
    case ${HF_ENDPOINT:-https:} in
        https:*) if command -v dpkg-query >/dev/null 2>&1; then installed ca-certificates || missing+=(ca-certificates); fi ;;
    esac
    [ ${#missing[@]} -eq 0 ] && return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "   cannot download: ${missing[*]} missing and no apt-get to install it"
        return 1
    fi
    local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "== installing ${missing[*]} for the download"
    $sudo apt-get update && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
}

WEIGHTS=${RAGSEG_WEIGHTS:-weights}
WEIGHTS=${WEIGHTS%/}
if ! complete "$WEIGHTS"; then
    if [ -n "${RAGSEG_OFFLINE:-}" ]; then
        echo "== RAGSEG_OFFLINE is set and $WEIGHTS/ lacks dinov2/model.safetensors + dinov2/config.json (or dinov2_vit*_pretrain.pth) or sam2.safetensors (or sam2.1_hiera_*.pt): no download"
    else
        echo "== downloading DINOv2-S/14 and SAM 2.1 tiny from ${HF_ENDPOINT:-https://huggingface.co} into $WEIGHTS/ (RAGSEG_OFFLINE=1 skips this)"
        missing=()
        dinov2_weights "$WEIGHTS" >/dev/null || missing+=(dinov2)
        sam2_weights "$WEIGHTS" >/dev/null || missing+=(sam2)
        if download_tools && bash tools/fetch_weights.sh "$WEIGHTS" "${missing[@]}"; then :; else
            echo "== the download failed (the reason is above)"
        fi
    fi
fi

[ -n "$OUT" ] && [ "$OUT" != / ] || { echo "RAGSEG_QUICKSTART_OUT must name a folder" >&2; exit 2; }
rm -rf "$OUT"
mkdir -p "$OUT"
# Every 6th case shows no object (like the slices of a scan that miss the organ): the bank stores their
# empty-mask memories, and held-out case 023 is one of them (its Dice is 1 only if nothing is found).
$RAGSEG sample-data "$OUT/data" --cases 24 --size 160 --empty-every 6
# 20 cases build the bank, 4 are held out.
mkdir -p "$OUT/heldout/images" "$OUT/heldout/masks"
for i in 020 021 022 023; do
    mv "$OUT/data/images/case_$i.png" "$OUT/heldout/images/"; mv "$OUT/data/masks/case_$i.png" "$OUT/heldout/masks/"
done

# Creating the bank loads both models and hashes their weights: that is the check that the weights work.
REAL=""
if complete "$WEIGHTS"; then
    DINOV2=$(dinov2_weights "$WEIGHTS"); SAM2=$(sam2_weights "$WEIGHTS")
    echo "== building the support bank with the weights in $WEIGHTS/ (this also checks that they load)"
    if created=$($RAGSEG index create "$OUT/bank" --dinov2 "$DINOV2" --sam2 "$SAM2" 2>&1); then
        echo "$created"
        REAL=1
    else
        echo "$created"
        echo "== THE WEIGHTS IN $WEIGHTS/ DO NOT LOAD (the error is above). Replace them, or delete the bad file(s) and run again to download them."
        rm -rf "$OUT/bank"
    fi
fi
if [ -n "$REAL" ]; then
    K=4
else
    DINOV2=Tests/DINOv2Tests/Fixtures/plain; SAM2=Tests/SAM2Tests/Fixtures/memory/weights.safetensors; K=3
    cat <<MSG
== NO REAL WEIGHTS: running on the tiny random-weight TEST models ($DINOV2, $SAM2).
   The pipeline below is the real one, but these models know nothing: the masks and Dice scores are
   NOT meaningful. Put real weights in weights/ or \$RAGSEG_WEIGHTS (see the top of tools/quickstart.sh).
MSG
    echo "== building the support bank"
    $RAGSEG index create "$OUT/bank" --dinov2 "$DINOV2" --sam2 "$SAM2"
fi
$RAGSEG index add "$OUT/bank" --images "$OUT/data/images" --masks "$OUT/data/masks" > /dev/null   # weights recorded at create
$RAGSEG index info "$OUT/bank"
$RAGSEG index verify "$OUT/bank"

echo "== segmenting the held-out images (k = $K)"
$RAGSEG segment --index "$OUT/bank" --k "$K" --overlay \
    --out "$OUT/masks" "$OUT"/heldout/images/*.png
echo "== Dice of the held-out images"
$RAGSEG eval --index "$OUT/bank" --k "$K" \
    --images "$OUT/heldout/images" --masks "$OUT/heldout/masks" --csv "$OUT/eval.csv"
echo "== masks and overlays in $OUT/masks/, per-case scores in $OUT/eval.csv"
echo "== volumes: a small synthetic CT-like NIfTI dataset in nnU-Net layout (imagesTr/, labelsTr/, dataset.json)"
$RAGSEG sample-data --3d "$OUT/volumes" --cases 4 --size 64 --slices 16
# A bank of their slices: every slice with a label, one in 10 without (dataset.json names channel 0 "CT", so
# the bank records the abdomen window 400/40 and axial slices).
echo "== a volume bank: the labelled axial slices of the volumes (CT abdomen window, from dataset.json)"
$RAGSEG index create "$OUT/volume-bank" --dinov2 "$DINOV2" --sam2 "$SAM2" --dataset "$OUT/volumes"
$RAGSEG index add "$OUT/volume-bank" --dataset "$OUT/volumes" > /dev/null
$RAGSEG index info "$OUT/volume-bank"
echo "== segmenting a volume: slice by slice with retrieval, written back as a label volume with the input's geometry"
$RAGSEG segment --index "$OUT/volume-bank" --k "$K" --out "$OUT/volume-masks" "$OUT/volumes/imagesTr/case_000_0000.nii.gz"
echo "== 3-D Dice, IoU and HD95 (mm) per volume, each volume's own slices left out of its retrieval"
$RAGSEG eval --index "$OUT/volume-bank" --k "$K" --dataset "$OUT/volumes" --leave-one-out --csv "$OUT/volume-eval.csv"
echo "== label volume in $OUT/volume-masks/, per-volume scores in $OUT/volume-eval.csv"
if [ -z "$REAL" ]; then
    echo "== reminder: NO REAL WEIGHTS were used; the Dice scores above are NOT meaningful (see the message above)"
fi

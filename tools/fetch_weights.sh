#!/usr/bin/env bash
# Downloads the quick start's model weights from Hugging Face into DEST:
#   DEST/dinov2/config.json + DEST/dinov2/model.safetensors   facebook/dinov2-small
#   DEST/sam2.safetensors                                      facebook/sam2.1-hiera-tiny (model.safetensors)
#
#   bash tools/fetch_weights.sh DEST [dinov2] [sam2]      (which models; default both)
#
# HF_ENDPOINT picks the server (default https://huggingface.co; the variable huggingface_hub reads for
# mirrors). Each file is written to FILE.part and renamed to FILE only when the whole transfer succeeded with
# HTTP 200, so a failed or interrupted download never leaves a file that looks complete. Files already in
# DEST are kept (delete them to download again). The first failure stops the script with a non-zero exit and
# a message naming the URL and the HTTP status or curl error. Needs curl (and ca-certificates for https).
set -euo pipefail

if [ $# -lt 1 ] || [ -z "$1" ]; then
    echo "usage: bash tools/fetch_weights.sh DEST [dinov2] [sam2]" >&2
    exit 2
fi
DEST=$1
shift
PARTS=" ${*:-dinov2 sam2} "
for part in $PARTS; do
    case $part in
        dinov2 | sam2) ;;
        *) echo "fetch_weights: unknown model '$part' (dinov2, sam2)" >&2; exit 2 ;;
    esac
done
ENDPOINT=${HF_ENDPOINT:-https://huggingface.co}
ENDPOINT=${ENDPOINT%/}

if ! command -v curl >/dev/null 2>&1; then
    echo "fetch_weights: curl is not installed (Debian: apt-get install curl ca-certificates)" >&2
    exit 1
fi

# fetch REPO FILE TARGET: $ENDPOINT/REPO/resolve/main/FILE -> TARGET (via TARGET.part).
fetch() {
    local url="$ENDPOINT/$1/resolve/main/$2" target=$3
    if [ -f "$target" ]; then
        echo "   $target already there, kept"
        return 0
    fi
    mkdir -p "$(dirname "$target")"
    rm -f "$target.part"
    echo "   $url -> $target"
    local code rc=0
    # No -f: the status is checked below so the message can name it. --retry covers timeouts and HTTP
    # 408/429/5xx; a transfer cut short (curl error 18) fails at once.
    code=$(curl -sSL --retry 2 --connect-timeout 30 -o "$target.part" -w '%{http_code}' "$url") || rc=$?
    if [ "$rc" -ne 0 ]; then
        rm -f "$target.part"
        local status=""; [ -n "$code" ] && [ "$code" != 000 ] && status=" after HTTP status $code"
        echo "fetch_weights: download failed: $url: curl error $rc$status (the curl message is above)" >&2
        return 1
    fi
    if [ "$code" != 200 ]; then
        rm -f "$target.part"
        echo "fetch_weights: download failed: $url: HTTP status $code" >&2
        return 1
    fi
    mv -f "$target.part" "$target"
}

if [[ $PARTS == *" dinov2 "* ]]; then
    fetch facebook/dinov2-small config.json "$DEST/dinov2/config.json"
    fetch facebook/dinov2-small model.safetensors "$DEST/dinov2/model.safetensors"
fi
if [[ $PARTS == *" sam2 "* ]]; then
    fetch facebook/sam2.1-hiera-tiny model.safetensors "$DEST/sam2.safetensors"
fi
echo "   weights complete in $DEST"

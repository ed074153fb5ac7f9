#!/usr/bin/env bash
# Lists Swift source lines longer than 120 columns (characters, not bytes) in Sources/ and Tests/
# (test fixtures excluded) and exits 1 if there is any, 0 otherwise.
# Usage: bash tools/lint.sh [--format]
#   --format  also fail when `swift format lint` (with the repository's .swift-format) finds something,
#             i.e. when tools/format.sh would change a file or cannot fit a comment.
set -euo pipefail
cd "$(dirname "$0")/.."
limit=120
check_format=0
for arg in "$@"; do
    case "$arg" in
        --format) check_format=1 ;;
        *) echo "usage: bash tools/lint.sh [--format]" >&2; exit 2 ;;
    esac
done

status=0
# A UTF-8 locale makes grep count characters, so '·' or '²' count as one column.
long=$(find Sources Tests -name '*.swift' -not -path '*/Fixtures/*' -print0 | sort -z |
    xargs -0 env LC_ALL=C.UTF-8 grep -n -H ".\{$((limit + 1)),\}" || true)
if [ -n "$long" ]; then
    count=$(printf '%s\n' "$long" | wc -l)
    printf '%s\n' "$long"
    echo "lint: $count line(s) over $limit columns (tools/format.sh wraps code; split long strings and comments by hand)" >&2
    status=1
fi

if [ "$check_format" = 1 ]; then
    if swift format --version >/dev/null 2>&1; then
        formatter=(swift format)
    else
        formatter=(swift-format)
    fi
    if ! "${formatter[@]}" lint --configuration .swift-format --strict --recursive --parallel Sources Tests; then
        echo "lint: swift format lint found problems (layout: run bash tools/format.sh; comments: shorten or split by hand)" >&2
        status=1
    fi
fi
exit $status

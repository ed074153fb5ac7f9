#!/usr/bin/env bash
# Runs the whole test suite (what `.ci/run` and the README's quick start call).
# Release build: the tests exercise real model math on tiny fixtures; -enable-testing keeps @testable imports.
# Extra arguments go to `swift test` (e.g. `--filter DINOv2Tests`).
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release -Xswiftc -enable-testing --build-tests
log=$(mktemp)
# Every temporary file of the run (the suites', and those of the ragseg processes they start) goes in one folder
# that is removed at the end: about 110 MB per run of banks, volumes and model copies, which otherwise stayed
# in /tmp run after run. RAGSEG_KEEP_TEST_FILES=1 keeps it, and prints where, to look into a failure.
scratch=$(mktemp -d "${TMPDIR:-/tmp}/ragseg-test-run.XXXXXX")
cleanup() {
    rm -f "$log"
    if [ -n "${RAGSEG_KEEP_TEST_FILES:-}" ]; then echo "test files kept in $scratch"; else rm -rf "$scratch"; fi
}
trap cleanup EXIT
status=0
TMPDIR=$scratch swift test -c release -Xswiftc -enable-testing --skip-build --disable-swift-testing "$@" 2>&1 |
    tee "$log" || status=$?
# XCTest's last summary line reads "Executed N tests, with M failures ..."; restate it plainly.
# With skipped tests (XCTSkip) it reads "Executed N tests, with S tests skipped and M failures ...".
summary=$(grep -E "Executed [0-9]+ tests?, with ([0-9]+ tests? skipped and )?[0-9]+ failures?" "$log" | tail -n 1 || true)
if [ -n "$summary" ]; then
    total=$(sed -E 's/.*Executed ([0-9]+) tests?.*/\1/' <<<"$summary")
    failed=$(sed -E 's/.* ([0-9]+) failures?.*/\1/' <<<"$summary")
    skipped=0
    if grep -qE "skipped" <<<"$summary"; then skipped=$(sed -E 's/.*with ([0-9]+) tests? skipped.*/\1/' <<<"$summary"); fi
    echo "tests: $((total - failed - skipped)) passed, $failed failed, $skipped skipped"
fi
exit $status

#!/usr/bin/env bash
# deploy/slurm/build-bank.sbatch for real on a one-node Slurm (tools/slurm_localhost.sh): a small synthetic
# dataset (`ragseg sample-data`), a template bank with the repository's tiny test models, a job array of
# RAGSEG_SHARDS (default 4) shard builds and the dependent merge job; prints what a user sees (sbatch,
# squeue, the jobs' output, `index info`/`verify` of the result) and checks that the merged bank holds the same
# cases and search results as one `index add` of the dataset. CI runs it (.ci/run); needs root or sudo.
#
#   RAGSEG_BIN=.build/release/ragseg bash tools/slurm_build_demo.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
RAGSEG=$(realpath "${RAGSEG_BIN:-.build/release/ragseg}")
OUT=$(realpath -m "${1:-out/slurm-demo}")
SHARDS=${RAGSEG_SHARDS:-4}
[ -n "$OUT" ] && [ "$OUT" != / ] || exit 2
step() { echo; echo "\$ $*"; "$@"; }

bash tools/slurm_localhost.sh start
rm -rf "$OUT"
mkdir -p "$OUT"
cd "$OUT"   # the jobs' output files land here
step "$RAGSEG" sample-data data --cases 40 --size 96 --empty-every 6
step "$RAGSEG" index create "$OUT/template" --dinov2 "$repo/Tests/DINOv2Tests/Fixtures/plain" \
    --sam2 "$repo/Tests/SAM2Tests/Fixtures/memory/weights.safetensors"
# One CPU per task, so that two tasks run at once on a 2-core machine.
export RAGSEG_BIN=$RAGSEG RAGSEG_TEMPLATE=$OUT/template RAGSEG_WORK=$OUT/work RAGSEG_OUT=$OUT/bank \
    RAGSEG_SHARDS=$SHARDS RAGSEG_INPUT="--images $OUT/data/images --masks $OUT/data/masks" \
    RAGSEG_SBATCH="--cpus-per-task=1 --mem=2G" RAGSEG_LOCAL=$OUT/node-local
mkdir -p "$RAGSEG_LOCAL"
echo
echo "\$ RAGSEG_TEMPLATE=$RAGSEG_TEMPLATE RAGSEG_INPUT=\"$RAGSEG_INPUT\" RAGSEG_WORK=$RAGSEG_WORK \\"
echo "  RAGSEG_OUT=$RAGSEG_OUT RAGSEG_SHARDS=$SHARDS RAGSEG_SBATCH=\"$RAGSEG_SBATCH\" bash deploy/slurm/build-bank.sbatch"
submitted=$(bash "$repo/deploy/slurm/build-bank.sbatch")
echo "$submitted"
merge=$(sed -E 's/.*merge job ([0-9]+).*/\1/' <<<"$submitted")
start=$(date +%s)
while squeue -h -j "$merge" 2>/dev/null | grep -q .; do
    echo
    echo "\$ squeue   # $(($(date +%s) - start)) s"
    squeue -o "%.10i %.14j %.8T %.10M %R"
    sleep 2
    [ $(($(date +%s) - start)) -lt 900 ] || { echo "the jobs did not finish in 15 minutes" >&2; exit 1; }
done
echo
echo "\$ scontrol show job $merge | grep -E 'JobState|Dependency'"
scontrol show job "$merge" | grep -E "JobState|Dependency" || true
for f in ragseg-bank-*.out ragseg-merge-*.out; do
    echo
    echo "\$ cat $f"
    cat "$f"
done
step "$RAGSEG" index info "$OUT/bank"
step "$RAGSEG" index verify "$OUT/bank"

# The same dataset in one process: the merged bank must hold as many cases and give the same neighbours.
"$RAGSEG" index create "$OUT/single" --template "$OUT/template" >/dev/null
"$RAGSEG" index add "$OUT/single" --images "$OUT/data/images" --masks "$OUT/data/masks" --quiet >/dev/null
merged_cases=$("$RAGSEG" index info "$OUT/bank" | awk '/^cases/ {print $2}')
single_cases=$("$RAGSEG" index info "$OUT/single" | awk '/^cases/ {print $2}')
echo
echo "merged bank: $merged_cases cases; one-process build: $single_cases cases"
[ "$merged_cases" = "$single_cases" ] && [ "$merged_cases" -gt 0 ] || { echo "MISMATCH" >&2; exit 1; }
# Same neighbours (rank, score, image; the ids differ) for a few images.
for i in 000 007 013 031; do
    a=$("$RAGSEG" index search "$OUT/bank" "data/images/case_$i.png" --k 5 | cut -f1,3-)
    b=$("$RAGSEG" index search "$OUT/single" "data/images/case_$i.png" --k 5 | cut -f1,3-)
    [ "$a" = "$b" ] || { echo "search results differ for case_$i:"; echo "$a"; echo "$b"; exit 1; } >&2
done
echo "index search: the same 5 neighbours and scores in both banks for 4 images"
echo "slurm demo: OK"

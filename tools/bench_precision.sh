#!/usr/bin/env bash
# bf16 against fp32 against PyTorch, in one run on this machine, with the targets of the bf16 work (docs/bf16.md):
#   RAGSeg bf16 total <= 0.5x PyTorch fp32 and <= 0.6x PyTorch's bf16 autocast, at k = 1, 4, 8;
#   RAGSeg bf16 >= 1.8x faster than RAGSeg fp32;  RAGSeg fp32 <= 0.65x PyTorch fp32;
#   bf16's logits error no larger than autocast's.
# Runs PyTorch's query benchmark in both modes, then PAIRS back-to-back fp32/bf16 pairs of `ragseg-bench query`,
# `query --pairs 10` (fp32/bf16 queries alternating in one process), `bench sam2` in both precisions and the two
# accuracy comparisons, and prints one table naming the CPU. Raw outputs stay in OUT.
#
#   PYTHON=/path/to/venv/bin/python bash tools/bench_precision.sh     # PyTorch (tools/requirements.txt) needed
#
# Environment: PYTHON (a python with torch and the sam2 package), PAIRS (3), TARGETS (accuracy targets, 3),
# OUT (/tmp/ragseg-precision), BENCH (.build/release/ragseg-bench, built if missing). RAGSeg runs with
# OPENBLAS_CORETYPE unset (OpenBLAS picks its kernels for this CPU); PyTorch with OMP_WAIT_POLICY=PASSIVE.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
PAIRS=${PAIRS:-3}
TARGETS=${TARGETS:-3}
OUT=${OUT:-/tmp/ragseg-precision}
BENCH=${BENCH:-.build/release/ragseg-bench}
mkdir -p "$OUT"

if ! "$PYTHON" -c "import torch, sam2" 2>/dev/null; then
    echo "bench_precision: $PYTHON cannot import torch and sam2 (set PYTHON to a venv made from tools/requirements.txt)" >&2
    exit 2
fi
if [ ! -x "$BENCH" ]; then swift build -c release --product ragseg-bench; fi
weights="$OUT/tiny_sam2.safetensors"
ragseg() { env -u OPENBLAS_CORETYPE "$BENCH" "$@"; }
torch() { OMP_WAIT_POLICY=PASSIVE "$PYTHON" tools/bench_query_torch.py "$@"; }

echo "PyTorch: fp32 queries (writes the random SAM 2.1 tiny weights both sides use) ..." >&2
torch --ks 1,4,8 --threads 2 --out "$OUT/torch_fp32.json" --write-weights "$weights" > "$OUT/torch_fp32.txt" 2>&1
echo "PyTorch: bf16 autocast queries ..." >&2
torch --ks 1,4,8 --threads 2 --autocast bf16 --out "$OUT/torch_bf16.json" > "$OUT/torch_bf16.txt" 2>&1
for r in $(seq "$PAIRS"); do
    for p in fp32 bf16; do
        echo "RAGSeg: pair $r, $p queries ..." >&2
        ragseg query --precision "$p" --sam2 "$weights" --ks 1 4 8 --threads 2 --repeats 2 \
            --reference "$OUT/torch_$p.json" --scratch "$OUT" > "$OUT/query_${p}_$r.txt" 2>&1
    done
done
echo "RAGSeg: alternating pairs in one process ..." >&2
ragseg query --precision bf16 --sam2 "$weights" --ks 1 4 8 --threads 2 --repeats 1 --cases 200 --pairs 10 \
    --scratch "$OUT" > "$OUT/pairs.txt" 2>&1
for p in fp32 bf16; do
    echo "RAGSeg: image encoder, $p ..." >&2
    ragseg sam2 --precision "$p" --sizes tiny --threads 2 --repeats 3 > "$OUT/sam2_$p.txt" 2>&1
done
echo "Accuracy: RAGSeg, then PyTorch ..." >&2
ragseg accuracy --sam2 "$weights" --targets "$TARGETS" > "$OUT/accuracy_ragseg.txt" 2>&1
torch --ks 1,4 --threads 2 --accuracy "$TARGETS" --accuracy-only > "$OUT/accuracy_torch.txt" 2>&1

cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
family=$(lscpu | sed -n 's/^CPU family: *//p' | head -1)
"$PYTHON" - "$OUT" "$PAIRS" "$cpu (family $family)" <<'EOF'
import json, re, statistics, sys

out, pairs, cpu = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ks = ["1", "4", "8"]
torch = {m: json.load(open(f"{out}/torch_{m}.json"))["k"] for m in ("fp32", "bf16")}

def totals(path):
    """k -> wall seconds of the 'total' row of a ragseg-bench query output."""
    result, k = {}, None
    for line in open(path):
        if m := re.match(r"k = (\d+)", line):
            k = m.group(1)
        elif line.startswith("total (end to end)") and k:
            result[k] = float(line.split()[4]) / 1000
    return result

runs = {p: [totals(f"{out}/query_{p}_{r}.txt") for r in range(1, pairs + 1)] for p in ("fp32", "bf16")}
median = lambda xs: statistics.median(xs)
rows = []
def check(name, values, limit, above=False):
    ok = all(v >= limit if above else v <= limit for v in values)
    rows.append((name, " / ".join(f"{v:.2f}" for v in values), ("≥ " if above else "≤ ") + f"{limit}", "met" if ok else "NOT met"))

fp32 = [median([run[k] for run in runs["fp32"]]) for k in ks]
bf16 = [median([run[k] for run in runs["bf16"]]) for k in ks]
pair_ratio = [median([f[k] / b[k] for f, b in zip(runs["fp32"], runs["bf16"])]) for k in ks]
alternating = []
for line in open(f"{out}/pairs.txt"):
    if m := re.match(r"\s*k = (\d+): median ([\d.]+)x", line):
        alternating.append(float(m.group(2)))
check("bf16 / PyTorch fp32", [b / torch["fp32"][k]["total"] for b, k in zip(bf16, ks)], 0.5)
check("bf16 / PyTorch autocast", [b / torch["bf16"][k]["total"] for b, k in zip(bf16, ks)], 0.6)
check("fp32 / PyTorch fp32", [f / torch["fp32"][k]["total"] for f, k in zip(fp32, ks)], 0.65)
check(f"bf16 speed-up, median of {pairs} process pairs", pair_ratio, 1.8, above=True)
check("bf16 speed-up, --pairs 10 median", alternating, 1.8, above=True)

def worst(path):
    errors = {"1": [], "4": []}
    for line in open(path):
        if m := re.search(r"k=(\d).*max rel err ([\d.e+-]+)", line):
            errors[m.group(1)].append(float(m.group(2)))
    return [max(errors[k]) for k in ("1", "4")]
ours, theirs = worst(f"{out}/accuracy_ragseg.txt"), worst(f"{out}/accuracy_torch.txt")
rows.append(("logits max rel err k = 1 / 4: bf16 vs autocast",
             " / ".join(f"{a:.2e} vs {b:.2e}" for a, b in zip(ours, theirs)), "≤ autocast",
             "met" if all(a <= b for a, b in zip(ours, theirs)) else "NOT met"))

print(f"\nCPU: {cpu}, 2 threads; RAGSeg with OPENBLAS_CORETYPE unset; {pairs} fp32/bf16 process pairs")
print(f"query totals, k = 1 / 4 / 8 (s): RAGSeg fp32 " + " / ".join(f"{v:.2f}" for v in fp32)
      + ", RAGSeg bf16 " + " / ".join(f"{v:.2f}" for v in bf16)
      + ", PyTorch fp32 " + " / ".join(f"{torch['fp32'][k]['total']:.2f}" for k in ks)
      + ", PyTorch autocast " + " / ".join(f"{torch['bf16'][k]['total']:.2f}" for k in ks))
for p in ("fp32", "bf16"):
    for line in open(f"{out}/sam2_{p}.txt"):
        if line.startswith("threads") or line.startswith("tiny"):
            print(f"bench sam2 {p}: {' '.join(line.split())}")
width = max(len(r[0]) for r in rows)
print()
for name, value, target, verdict in rows:
    print(f"{name.ljust(width)}  {value.ljust(30)}  {target.ljust(11)}  {verdict}")
EOF

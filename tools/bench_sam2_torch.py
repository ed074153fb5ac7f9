#!/usr/bin/env python3
"""Time the official SAM 2 image encoder (PyTorch, CPU, fp32) per 1024x1024 image: trunk + FPN neck +
conv_s0/conv_s1 (the reference's forward_image), random weights, real configs. Reports wall seconds
and process CPU seconds (all threads; a load-robust proxy on a shared machine).

Needs (not CI): torch, numpy, safetensors, the official `sam2` package (tools/requirements.txt).

  python tools/bench_sam2_torch.py --sizes tiny,base_plus --threads 2 --out torch_sam2.json
  ragseg-bench sam2 --sizes tiny base_plus --threads 2 --reference torch_sam2.json
"""
import argparse
import json
import os
import sys
import time

# Unless set, OpenMP threads sleep when idle (PASSIVE): on the shared 2-core machine torch's default spin
# policy made 2-thread runs slower or no faster (see bench_query_torch.py). Must precede loading torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_sam2_fixtures import REAL, Model, randomize  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="tiny,base_plus")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--out", help="write {size: seconds} JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = {}
    for size in args.sizes.split(","):
        gen = torch.Generator().manual_seed(0)
        model = Model(REAL[size], d_model=256).eval()
        randomize(model, gen)
        x = torch.randn(1, 3, 1024, 1024, generator=gen)

        def forward():
            with torch.inference_mode():
                enc = model.image_encoder(x)
                fpn = enc["backbone_fpn"]
                model.sam_mask_decoder.conv_s0(fpn[0])
                model.sam_mask_decoder.conv_s1(fpn[1])

        for _ in range(args.warmup):
            forward()
        start, cpu_start = time.perf_counter(), time.process_time()
        for _ in range(max(1, args.repeats)):
            forward()
        seconds = (time.perf_counter() - start) / max(1, args.repeats)
        cpu = (time.process_time() - cpu_start) / max(1, args.repeats)
        results[size] = seconds
        results[size + ":cpu"] = cpu
        print(f"{size:10s} torch {torch.__version__} threads {args.threads}: {seconds:.2f} s/image (process CPU {cpu:.2f} s)", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""PyTorch side of `ragseg-bench dinov2`: time transformers' Dinov2Model on CPU, random weights.

Needs torch and transformers >= 5 (tools/requirements.txt); CI never runs it. Prints one JSON object per
line: {"model": "S", "batch": 1, "size": 224, "seconds_per_image": ..., "runs": n}. With --cpu-time the
passes are timed by process CPU time (meant for --threads 1: a load-independent measure of the work done). Timing method (same as
the Swift side): one warm-up pass, then passes until --min-seconds have elapsed (at least 2); the best pass
is reported, which is the least disturbed by other processes on a shared machine.
Exit status 3 (with a message on stderr) when torch or transformers cannot be imported.
"""
import argparse
import json
import sys
import time

try:
    import torch
    from transformers import Dinov2Config, Dinov2Model
except Exception as e:  # noqa: BLE001 - any import failure means "no PyTorch side"
    print(f"PyTorch/transformers unavailable: {e}", file=sys.stderr)
    sys.exit(3)

SIZES = {"S": (384, 6), "B": (768, 12), "L": (1024, 16)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="S,B")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--min-seconds", type=float, default=3.0)
    ap.add_argument("--cpu-time", action="store_true",
                    help="time passes by process CPU time instead of wall time (use with --threads 1)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for name in args.models.split(","):
        hidden, heads = SIZES[name]
        config = Dinov2Config(hidden_size=hidden, num_hidden_layers=12, num_attention_heads=heads, mlp_ratio=4,
                              image_size=518, patch_size=14)
        model = Dinov2Model(config).eval()
        for batch in [int(b) for b in args.batches.split(",")]:
            x = torch.randn(batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
            with torch.inference_mode():
                model(pixel_values=x)
                times = []
                start = time.perf_counter()
                clock = time.process_time if args.cpu_time else time.perf_counter
                while len(times) < 2 or time.perf_counter() - start < args.min_seconds:
                    t0 = clock()
                    model(pixel_values=x)
                    times.append(clock() - t0)
            print(json.dumps({"model": name, "batch": batch, "size": args.size,
                              "seconds_per_image": min(times) / batch, "clock": "cpu" if args.cpu_time else "wall", "runs": len(times),
                              "attn": model.config._attn_implementation}), flush=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Time the official SAM 2 few-shot pipeline (PyTorch, CPU, fp32) per stage, as RAGSeg runs it: k support
frames given as GT masks (add_new_mask -> track_step with mask_inputs: image encoder, then memory encoder;
the pointer comes from a mask-prompted decoder run) and one 1024x1024 target (track_step on frame k:
memory-bank assembly + memory attention, prompt-free multimask decoding, then the bilinear upsample to
the original size). Real sam2.1 tiny configuration, random weights (timing does not depend on values).

Needs (not CI): torch, numpy, safetensors, hydra-core, iopath and the official `sam2` package
(tools/requirements.txt).

  python tools/bench_segment_torch.py --ks 1,2,4,8 --threads 2 --out torch_segment.json \
      --write-weights /tmp/sam2.1_tiny_random.safetensors
  ragseg-bench segment --sam2 /tmp/sam2.1_tiny_random.safetensors --ks 1 2 4 8 --threads 2 \
      --reference torch_segment.json

--write-weights saves the randomized model's state dict (official keys) so the Swift side runs the same
weights. Stages (seconds): imageEncode (target forward_image), supportEncode (per support: forward_image +
mask-as-output + memory encoder), memoryAttention (_prepare_memory_conditioned_features: bank assembly +
memory attention), decode (rest of track_step + upsample to 1024x1024). Total = k supports + target.
Each stage also gets process CPU seconds ("stage:cpu", all threads: a load-robust proxy on a shared
machine); the JSON also holds the whole run's CPU seconds and the peak RSS.
"""
import argparse
import json
import os
import resource
import sys
import time

# Unless set, OpenMP threads sleep when idle (PASSIVE): on the shared 2-core machine torch's default spin
# policy made 2-thread runs slower or no faster (see bench_query_torch.py). Must precede loading torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def build_tiny():
    import sam2  # noqa: F401  (initializes hydra's config module)
    from hydra import compose
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from make_sam2_memory_fixtures import VIDEO_PREDICTOR_OVERRIDES

    cfg = compose(config_name="configs/sam2.1/sam2.1_hiera_t.yaml", overrides=VIDEO_PREDICTOR_OVERRIDES)
    OmegaConf.resolve(cfg)
    return instantiate(cfg.model, _recursive_=True).eval()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ks", default="1,2,4,8")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", help="write the per-stage seconds as JSON here")
    ap.add_argument("--write-weights", help="save the random model (official keys) as safetensors here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ks = [int(k) for k in args.ks.split(",")]
    from make_sam2_memory_fixtures import randomize

    model = build_tiny()
    gen = torch.Generator().manual_seed(0)
    randomize(model, gen)
    if args.write_weights:
        from safetensors.torch import save_file
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        save_file(state, args.write_weights)
        print(f"wrote {args.write_weights} ({len(state)} tensors)", flush=True)

    S = model.image_size
    yy, xx = torch.meshgrid(torch.arange(S), torch.arange(S), indexing="ij")

    def frame(seed):
        g = torch.Generator().manual_seed(seed)
        return torch.randn(1, 3, S, S, generator=g)

    def encode(img):
        out = model.forward_image(img)
        _, feats, pos, sizes = model._prepare_backbone_features(out)
        return feats, pos, sizes

    timing = {"attention": 0.0, "attention_cpu": 0.0}
    original = model._prepare_memory_conditioned_features

    def timed_prepare(*a, **kw):
        t, c = time.perf_counter(), time.process_time()
        r = original(*a, **kw)
        timing["attention"] += time.perf_counter() - t
        timing["attention_cpu"] += time.process_time() - c
        return r

    model._prepare_memory_conditioned_features = timed_prepare
    results = {"threads": args.threads, "torch": torch.__version__, "k": {}}
    wall0, cpu0 = time.perf_counter(), time.process_time()
    with torch.inference_mode():
        # Warm-up (first calls allocate and pick kernels).
        encode(frame(99))
        supports, support_seconds, support_cpu = {}, [], []
        for j in range(max(ks)):
            t, c = time.perf_counter(), time.process_time()
            feats, pos, sizes = encode(frame(j))
            r = (S // 4 + 40 * j) % (S // 2) + S // 8
            mask = (((yy - S // 2) ** 2 + (xx - S // 2) ** 2) < r * r).float()[None, None]
            out = model.track_step(frame_idx=j, is_init_cond_frame=True, current_vision_feats=feats,
                                   current_vision_pos_embeds=pos, feat_sizes=sizes, point_inputs=None,
                                   mask_inputs=mask, output_dict={"cond_frame_outputs": {}, "non_cond_frame_outputs": {}},
                                   num_frames=max(ks) + 1, run_mem_encoder=True)
            supports[j] = out
            support_seconds.append(time.perf_counter() - t)
            support_cpu.append(time.process_time() - c)
        t, c = time.perf_counter(), time.process_time()
        target = encode(frame(1000))
        image_seconds, image_cpu = time.perf_counter() - t, time.process_time() - c
        for k in ks:
            cond = {j: supports[j] for j in range(k)}
            best = None
            for _ in range(2):
                timing["attention"] = timing["attention_cpu"] = 0.0
                t, c = time.perf_counter(), time.process_time()
                out = model.track_step(frame_idx=k, is_init_cond_frame=False, current_vision_feats=target[0],
                                       current_vision_pos_embeds=target[1], feat_sizes=target[2], point_inputs=None,
                                       mask_inputs=None, output_dict={"cond_frame_outputs": cond, "non_cond_frame_outputs": {}},
                                       num_frames=k + 1, run_mem_encoder=False)
                F.interpolate(out["pred_masks"], size=(S, S), mode="bilinear", align_corners=False)
                total, total_cpu = time.perf_counter() - t, time.process_time() - c
                run = (timing["attention"], total - timing["attention"],
                       timing["attention_cpu"], total_cpu - timing["attention_cpu"])
                best = run if best is None or run[0] + run[1] < best[0] + best[1] else best
            stages = {"imageEncode": image_seconds, "supportEncode": sum(support_seconds[:k]),
                      "memoryAttention": best[0], "decode": best[1]}
            stages["total"] = sum(stages.values())
            cpu = {"imageEncode:cpu": image_cpu, "supportEncode:cpu": sum(support_cpu[:k]),
                   "memoryAttention:cpu": best[2], "decode:cpu": best[3]}
            cpu["total:cpu"] = sum(cpu.values())
            stages.update(cpu)
            results["k"][str(k)] = stages
            print(f"k={k}: " + ", ".join(f"{n} {v:.3f}" for n, v in stages.items()), flush=True)
    results["supportEncodeEach"] = support_seconds
    results["wallSeconds"] = time.perf_counter() - wall0
    results["cpuSeconds"] = time.process_time() - cpu0
    results["peakRSSMiB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process CPU {results['cpuSeconds']:.1f} s over {results['wallSeconds']:.1f} s wall; peak RSS {results['peakRSSMiB']:.0f} MiB")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()

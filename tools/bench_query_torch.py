#!/usr/bin/env python3
"""PyTorch side of `ragseg-bench query`: one retrieval-augmented query through the official models (CPU, fp32),
timed per stage, for k = 1, 4, 8 supports whose SAM 2 memories are already computed.

What is timed, per query (one new target image, a uint8 gray SIZE x SIZE array like a decoded PNG):
  embed   transformers Dinov2Model ViT-S/14 (random weights): gray -> RGB, /255, antialiased bicubic resize to
          224x224 (F.interpolate, as RAGSeg preprocesses), ImageNet normalization, forward, final-norm CLS
          (pooler_output), L2 normalization.
  search  brute-force cosine top-k in torch: one matrix-vector product with N random L2-normalized 384-d
          embeddings (N = --cases) + torch.topk.
  encode  the official sam2.1 tiny image encoder (random weights, the same model bench_segment_torch.py
          builds and --write-weights saves): gray -> RGB, /255 (resized to 1024 if SIZE differs), ImageNet
          normalization, forward_image + _prepare_backbone_features.
  attend  _prepare_memory_conditioned_features inside SAM2Base.track_step on the target as frame k with
          the k supports as conditioning frames: memory-bank assembly + memory attention.
  decode  the rest of that track_step (prompt-free multimask SAM heads, object pointer) + the bilinear
          resize of the chosen low-res logits to SIZE x SIZE (what the video predictor returns).
  total   the sum: the official pipeline runs these one after the other.
Not timed: the k supports' memories. The reference method (and the official video predictor) would
re-encode the k support images and masks for every query; RAGSeg stores them once. To compare like with
like, the supports here are encoded once before timing (image encoder + memory encoder via track_step
with the GT mask, as bench_segment_torch.py does) and kept in RAM, so there is no "load" stage: RAGSeg's
load (reading the k memories from LMDB) is extra work on its side, counted in its total.
Each stage also gets process CPU seconds ("stage:cpu", all threads: steadier on a shared machine).
Each k runs --repeats queries (a new target image each); the one with the smallest total is reported.

OpenMP: unless OMP_WAIT_POLICY is set, this script sets it to PASSIVE before torch loads. On the shared
2-core development machine torch's default (spin, then sleep) made every parallel op of a 2-thread run
wait for a scheduler slice: ViT-S/14 took 1.9 s instead of 0.14 s (1 thread: 0.13 s). PASSIVE gives PyTorch
its best time there; the JSON records the policy used.

Needs (not CI): torch, transformers >= 5, numpy, safetensors, hydra-core, iopath and the official `sam2`
package (tools/requirements.txt).

  python tools/bench_query_torch.py --ks 1,4,8 --cases 1000 --threads 2 --out /tmp/torch_query.json \\
      --write-weights /tmp/tiny_sam2.safetensors
  env -u OPENBLAS_CORETYPE .build/release/ragseg-bench query --sam2 /tmp/tiny_sam2.safetensors \\
      --ks 1 4 8 --cases 1000 --threads 2 --reference /tmp/torch_query.json --server
"""
import argparse
import json
import os
import resource
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads its OpenMP runtime (see above)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def target_image(seed, size):
    """A gray 'scan': smooth background, a bright textured ellipse, noise (uint8, like a decoded PNG)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    cx, cy = size * (0.3 + 0.4 * rng.random()), size * (0.3 + 0.4 * rng.random())
    rx, ry = size * (0.1 + 0.15 * rng.random()), size * (0.1 + 0.15 * rng.random())
    img = 60 + 25 * np.sin(x / 37) * np.cos(y / 53)
    img = np.where(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1, 170.0, img)
    img = img + rng.normal(0, 6, img.shape)
    return torch.from_numpy(np.clip(img, 0, 255).astype(np.uint8))


def rgb01(gray_u8):
    return (gray_u8.float() / 255)[None, None].expand(1, 3, -1, -1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ks", default="1,4,8")
    ap.add_argument("--cases", type=int, default=1000, help="embeddings searched (the bank size)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="queries per k; the one with the smallest total is reported")
    ap.add_argument("--size", type=int, default=1024, help="target image side (gray)")
    ap.add_argument("--out", help="write the per-stage seconds as JSON here (for ragseg-bench query --reference)")
    ap.add_argument("--write-weights", help="save the random sam2.1 tiny model (official keys) as safetensors here")
    ap.add_argument("--accuracy", type=int, default=0,
                    help="targets on which to compare bf16 autocast with fp32 (k = 1 and 4), before the timing")
    ap.add_argument("--accuracy-only", action="store_true", help="stop after --accuracy")
    ap.add_argument("--autocast", choices=["none", "bf16"], default="none",
                    help="run the timed queries under torch.autocast('cpu', dtype=torch.bfloat16), as the official "
                         "SAM 2 README runs the model (the supports' memories stay fp32-encoded, like a bank)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ks = [int(k) for k in args.ks.split(",")]
    if min(ks) < 1 or max(ks) > args.cases:
        sys.exit(f"--ks must lie in 1...--cases ({args.cases})")

    from bench_segment_torch import build_tiny
    from make_sam2_memory_fixtures import randomize
    from transformers import Dinov2Config, Dinov2Model

    sam = build_tiny()
    randomize(sam, torch.Generator().manual_seed(0))
    if args.write_weights:
        from safetensors.torch import save_file
        state = {k: v.contiguous() for k, v in sam.state_dict().items()}
        save_file(state, args.write_weights)
        print(f"wrote {args.write_weights} ({len(state)} tensors)", flush=True)
    torch.manual_seed(0)
    dino = Dinov2Model(Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, mlp_ratio=4,
                                    image_size=518, patch_size=14)).eval()
    bank = F.normalize(torch.randn(args.cases, 384, generator=torch.Generator().manual_seed(1)), dim=1)
    S = sam.image_size

    def embed(img):
        x = F.interpolate(rgb01(img), size=(224, 224), mode="bicubic", antialias=True, align_corners=False)
        return F.normalize(dino(pixel_values=(x - MEAN) / STD).pooler_output, dim=1)[0]

    def search(q, k):
        return torch.topk(bank @ q, k).indices

    def encode(img):
        x = rgb01(img)
        if x.shape[-1] != S or x.shape[-2] != S:
            x = F.interpolate(x, size=(S, S), mode="bilinear", antialias=True, align_corners=False)
        _, feats, pos, sizes = sam._prepare_backbone_features(sam.forward_image((x - MEAN) / STD))
        return feats, pos, sizes

    timing = {"attend": 0.0, "attend:cpu": 0.0}
    original = sam._prepare_memory_conditioned_features

    def timed_prepare(*a, **kw):
        t, c = time.perf_counter(), time.process_time()
        r = original(*a, **kw)
        timing["attend"] += time.perf_counter() - t
        timing["attend:cpu"] += time.process_time() - c
        return r

    sam._prepare_memory_conditioned_features = timed_prepare

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.autocast == "bf16")

    results = {"autocast": args.autocast, "threads": args.threads, "torch": torch.__version__, "cases": args.cases, "size": args.size,
               "repeats": args.repeats, "ompWaitPolicy": os.environ["OMP_WAIT_POLICY"], "k": {}}
    wall0, cpu0 = time.perf_counter(), time.process_time()
    with torch.inference_mode():
        # Supports, not timed: what RAGSeg has stored in its bank (centred discs as GT masks).
        yy, xx = torch.meshgrid(torch.arange(S), torch.arange(S), indexing="ij")
        supports = {}
        for j in range(max(ks)):
            feats, pos, sizes = encode(target_image(100 + j, S))
            r = (S // 4 + 40 * j) % (S // 2) + S // 8
            mask = (((yy - S // 2) ** 2 + (xx - S // 2) ** 2) < r * r).float()[None, None]
            supports[j] = sam.track_step(frame_idx=j, is_init_cond_frame=True, current_vision_feats=feats,
                                         current_vision_pos_embeds=pos, feat_sizes=sizes, point_inputs=None,
                                         mask_inputs=mask, output_dict={"cond_frame_outputs": {}, "non_cond_frame_outputs": {}},
                                         num_frames=max(ks) + 1, run_mem_encoder=True)
        print(f"{max(ks)} support memories encoded (not timed)", flush=True)

        def clock():
            return time.perf_counter(), time.process_time()

        def query(img, k):
            s = {}
            t = clock()

            def lap(name):
                nonlocal t
                now = clock()
                s[name], s[name + ":cpu"] = now[0] - t[0], now[1] - t[1]
                t = clock()

            with autocast():
                return timed_query(img, k, s, lap)

        def timed_query(img, k, s, lap):
            q = embed(img)
            lap("embed")
            search(q, k)
            lap("search")
            target = encode(img)
            lap("encode")
            timing["attend"] = timing["attend:cpu"] = 0.0
            out = sam.track_step(frame_idx=k, is_init_cond_frame=False, current_vision_feats=target[0],
                                 current_vision_pos_embeds=target[1], feat_sizes=target[2], point_inputs=None,
                                 mask_inputs=None,
                                 output_dict={"cond_frame_outputs": {j: supports[j] for j in range(k)},
                                              "non_cond_frame_outputs": {}},
                                 num_frames=k + 1, run_mem_encoder=False)
            F.interpolate(out["pred_masks"], size=(img.shape[0], img.shape[1]), mode="bilinear", align_corners=False)
            lap("attend+decode")
            s["attend"], s["attend:cpu"] = timing["attend"], timing["attend:cpu"]
            s["decode"] = s.pop("attend+decode") - s["attend"]
            s["decode:cpu"] = s.pop("attend+decode:cpu") - s["attend:cpu"]
            stages = ["embed", "search", "encode", "attend", "decode"]
            s["total"] = sum(s[n] for n in stages)
            s["total:cpu"] = sum(s[n + ":cpu"] for n in stages)
            return s

        if args.accuracy:
            results["accuracy"] = accuracy(args, ks, encode, sam, supports, autocast)
            if args.accuracy_only:
                write(args, results)
                return

        query(target_image(99, args.size), max(ks))  # warm-up (first calls allocate and pick kernels)
        seed = 1000
        for k in ks:
            runs = []
            for _ in range(args.repeats):
                runs.append(query(target_image(seed, args.size), k))
                seed += 1
            best = min(runs, key=lambda r: r["total"])
            best["totals"] = [r["total"] for r in runs]
            results["k"][str(k)] = best
            print(f"k={k}: " + ", ".join(f"{n} {best[n]:.3f}" for n in ["embed", "search", "encode", "attend", "decode", "total"])
                  + f" s (totals {', '.join(f'{x:.2f}' for x in best['totals'])})", flush=True)
    results["wallSeconds"] = time.perf_counter() - wall0
    results["cpuSeconds"] = time.process_time() - cpu0
    results["peakRSSMiB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process CPU {results['cpuSeconds']:.1f} s over {results['wallSeconds']:.1f} s wall; "
          f"peak RSS {results['peakRSSMiB']:.0f} MiB")
    write(args, results)


def write(args, results):
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)


def accuracy(args, ks, encode, sam, supports, autocast):
    """bf16 autocast against fp32 on the same targets and supports (memories encoded once, in fp32), as
    `ragseg-bench accuracy` measures RAGSeg: the decoder's candidate mask that the fp32 run's IoU chooses,
    before object-score gating (random weights usually score "no object", which gates every logit to -1024);
    max relative error of its low-res logits (max |a - b| / max |a|) and the fraction of mask pixels
    (logit > 0 at the target's size) that differ."""
    captured = {}

    def hook(module, inputs, output):
        captured["masks"], captured["iou"] = output[0].float(), output[1].float()

    handle = sam.sam_mask_decoder.register_forward_hook(hook)
    rows = []
    for t in range(args.accuracy):
        img = target_image(3000 + t, args.size)
        for k in [k for k in (1, 4) if k <= max(ks)]:
            outs = []
            for enabled in (False, True):
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled):
                    target = encode(img)
                    out = sam.track_step(frame_idx=k, is_init_cond_frame=False, current_vision_feats=target[0],
                                         current_vision_pos_embeds=target[1], feat_sizes=target[2],
                                         point_inputs=None, mask_inputs=None,
                                         output_dict={"cond_frame_outputs": {j: supports[j] for j in range(k)},
                                                      "non_cond_frame_outputs": {}},
                                         num_frames=k + 1, run_mem_encoder=False)
                outs.append((captured["masks"][0], captured["iou"][0], float(out["object_score_logits"].float().max())))
            chosen = int(torch.argmax(outs[0][1]))
            a, b = outs[0][0][chosen], outs[1][0][chosen]
            fa, fb = (F.interpolate(m[None, None], size=(img.shape[0], img.shape[1]), mode="bilinear",
                                    align_corners=False)[0, 0] for m in (a, b))
            rel = float((a - b).abs().max() / a.abs().max().clamp_min(1e-30))
            differ = float(((fa > 0) != (fb > 0)).float().mean())
            sa, sb = outs[0][2], outs[1][2]
            rows.append({"target": t, "k": k, "maxRelativeError": rel, "maskPixelsDiffering": differ,
                         "foregroundFraction": float((fa > 0).float().mean()), "objectScore": [sa, sb]})
            print(f"accuracy target {t} k={k}: low-res logits max rel err {rel:.2e}, mask pixels differing "
                  f"{100 * differ:.3f}% (fp32 foreground {100 * rows[-1]['foregroundFraction']:.1f}%, "
                  f"object score {sa:.2f} / {sb:.2f})", flush=True)
    handle.remove()
    return rows


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Full-size reference for `ragseg segment --logits` (issue 5): the REAL sam2.1 tiny configuration
(Hiera tiny trunk, 1024 input, hidden 256, memory 64) with random weights, run by the official
SAM2VideoPredictor exactly as RAGSeg uses it (supports = frames 0..k-1 via add_new_mask, target =
frame k, propagate_in_video) for k = 1..8. Too large to commit; nothing in CI depends on it.

Needs (not CI): torch, numpy, safetensors, hydra-core, iopath, pillow and the official `sam2` package
(tools/requirements.txt).

  python tools/make_segment_reference.py DIR          # writes DIR/{weights.safetensors, *.png, ref/*.npy}
  bash tools/compare_segment_reference.sh DIR .build/release/ragseg

Writes: weights.safetensors (official keys, F16 values: the random weights are fp16-rounded so F16 is
lossless); support{j}.png (8-bit RGB 1024x1024), support{j}_mask.png (0/255; support 5 is empty, the
no-object path), target.png; ref/k{k}_low_res.npy (the target's chosen 256x256 logits, what
`ragseg segment --logits` writes) and ref/k{k}_final.npy (logits at 1024x1024). Images are already at
the model size so the predictor's PIL resize and RAGSeg's antialiased bilinear resize both are identity;
the predictor is handed the normalized pixels directly (v / 255, ImageNet mean/std, fp32), which is
what SAM2Preprocess computes from the PNGs.
"""
import os
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_segment_torch import build_tiny  # noqa: E402
from make_sam2_memory_fixtures import randomize  # noqa: E402

S = 1024
KS = range(1, 9)


def masks():
    yy, xx = np.mgrid[0:S, 0:S]
    out = []
    for j in range(8):
        cy, cx, r = 300 + 60 * j, 350 + 45 * j, 120 + 25 * (j % 3)
        m = ((yy - cy) ** 2 + (xx - cx) ** 2) <= r * r
        if j % 2 == 1:
            m |= (yy >= 100 + 20 * j) & (yy < 400 + 20 * j) & (xx >= 600) & (xx < 700)
        if j == 5:
            m[:] = False
        out.append(m)
    return out


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out_dir = os.path.abspath(sys.argv[1])
    os.makedirs(os.path.join(out_dir, "ref"), exist_ok=True)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1234)
    model = build_tiny()
    randomize(model, gen)

    noise = F.avg_pool2d(torch.randn((9, 3, S, S), generator=gen), 5, stride=1, padding=2)
    pixels = (noise * 300 + 128).round().clamp(0, 255).to(torch.uint8)   # frames 0..7 supports, 8 target
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    images = (pixels.float() / 255 - mean) / std
    gts = masks()
    for j in range(8):
        Image.fromarray(pixels[j].permute(1, 2, 0).numpy()).save(os.path.join(out_dir, f"support{j}.png"))
        Image.fromarray(gts[j].astype(np.uint8) * 255).save(os.path.join(out_dir, f"support{j}_mask.png"))
    Image.fromarray(pixels[8].permute(1, 2, 0).numpy()).save(os.path.join(out_dir, "target.png"))

    def run_case(k):
        with tempfile.TemporaryDirectory() as d:
            for f in range(k + 1):
                Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(os.path.join(d, f"{f:05d}.jpg"))
            state = model.init_state(d)
        state["images"] = torch.cat([images[:k], images[8:9]], 0)
        state["num_frames"] = k + 1
        state["cached_features"] = {}
        state["video_height"], state["video_width"] = S, S
        for f in range(k):
            model.add_new_mask(state, frame_idx=f, obj_id=1, mask=torch.from_numpy(gts[f]))
        final = None
        for fidx, _, video_res in model.propagate_in_video(state, start_frame_idx=k):
            if fidx == k:
                final = video_res[0, 0].clone()
        out = state["output_dict_per_obj"][0]["non_cond_frame_outputs"][k]
        return out["pred_masks"][0, 0].clone(), final, float(out["object_score_logits"].item())

    # Random weights give the target an arbitrary object score; shift the score head's bias so the
    # k = 1 target is clearly present (otherwise every logit is -1024 and the comparison proves little).
    head = model.sam_mask_decoder.pred_obj_score_head.layers[-1]
    with torch.no_grad():
        head.bias.zero_()
        _, _, score = run_case(1)
        head.bias.fill_(float(torch.tensor(1.0 - score).half().float()))
    sd = {k: v.detach().float().contiguous().half() for k, v in model.state_dict().items()}
    save_file(sd, os.path.join(out_dir, "weights.safetensors"))
    with torch.no_grad():
        for k in KS:
            low, final, score = run_case(k)
            np.save(os.path.join(out_dir, "ref", f"k{k}_low_res.npy"), low.float().numpy())
            np.save(os.path.join(out_dir, "ref", f"k{k}_final.npy"), final.float().numpy())
            print(f"k={k}: object score {score:+.4f}, foreground {(final > 0).sum().item()} px", flush=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Convert an official SAM 2 / SAM 2.1 checkpoint (`sam2{,.1}_hiera_*.pt`) to safetensors, keys unchanged.

Needs (not CI): torch, safetensors (tools/requirements.txt). The official file is a pickle holding
{"model": state_dict}. `ragseg` reads it directly and `ragseg weights convert` does this same conversion
without Python; this script is the PyTorch-side reference for it. The output keeps the official key layout
(e.g. `image_encoder.trunk.blocks.0.attn.qkv.weight`) and fp32.

  python tools/convert_sam2_checkpoint.py sam2.1_hiera_tiny.pt sam2.1_hiera_tiny.safetensors
"""
import argparse
import sys

import torch
from safetensors.torch import save_file


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", help="official .pt file")
    ap.add_argument("output", help="safetensors file to write")
    args = ap.parse_args()
    ckpt = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    state = ckpt["model"] if isinstance(ckpt, dict) and "model" in ckpt else ckpt
    if not isinstance(state, dict) or "image_encoder.trunk.patch_embed.proj.weight" not in state:
        sys.exit(f"{args.checkpoint}: not an official SAM 2 checkpoint (no image_encoder.trunk.patch_embed.proj.weight)")
    tensors = {}
    for key, value in state.items():
        if not torch.is_tensor(value):
            sys.exit(f"{args.checkpoint}: entry {key} is not a tensor")
        # clone: safetensors refuses tensors that share storage; float32 is what the reference runs in.
        tensors[key] = value.detach().to(torch.float32).contiguous().clone()
    save_file(tensors, args.output, metadata={"source": args.checkpoint, "layout": "official"})
    print(f"wrote {args.output}: {len(tensors)} tensors, {sum(t.numel() for t in tensors.values()):,} values")


if __name__ == "__main__":
    main()

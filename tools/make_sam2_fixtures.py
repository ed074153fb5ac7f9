#!/usr/bin/env python3
"""Reference fixtures for the SAM 2 image encoder (Hiera trunk + FPN neck + conv_s0/conv_s1).

Needs (not CI): torch, numpy, safetensors, the official `sam2` package (PyPI `sam2`, built with
SAM2_BUILD_CUDA=0), hydra-core/iopath (pulled in by sam2). See tools/requirements.txt.

Two modes:

  python tools/make_sam2_fixtures.py
      Builds a *shrunken* encoder with the real classes (sam2.modeling.backbones.hieradet.Hiera,
      image_encoder.FpnNeck / ImageEncoder, position_encoding.PositionEmbeddingSine) that keeps the
      structure of the published models: windowed and global blocks, q-pool at every stage
      transition, window sizes that lag by one block, windows that need zero padding (8x8 map with
      window 6 -> padded to 12, pooled 4x4 with window 3 -> padded to 6, the analogue of the real
      64 -> 70 and 32 -> 35), a bicubic-resized background pos_embed plus a tiled window pos_embed,
      all four FPN levels with nearest top-down on levels 2 and 3, scalp 1. conv_s0/conv_s1 (which
      live in the official mask decoder) are plain 1x1 Conv2d under their official key names.
      All weights are random and non-trivial (norms, pos embeds included), seed fixed.
      Writes Tests/SAM2Tests/Fixtures/encoder/: the input, patch-embed+PE, every block output,
      the four stage outputs, the FPN levels, their sine PEs, conv_s0/conv_s1 outputs, and the same
      weights as safetensors in the official key layout and in the Hugging Face layout.
      Also Tests/SAM2Tests/Fixtures/preprocess/: small PNGs (8-bit gray, 16-bit gray, 8-bit RGB)
      and their preprocessed tensors (float antialiased bilinear resize, as the official
      SAM2ImagePredictor does via torchvision Resize on a float tensor), at a small target size.

  python tools/make_sam2_fixtures.py --real tiny --out /tmp/sam2_tiny_ref [--version 2.1] [--seed 0]
      Builds the real config (tiny, small, base_plus or large, SAM 2.0 or 2.1 trunk/neck) with random
      weights, runs it on a random 1024x1024 image and writes weights.safetensors (official keys),
      input.npy (3x1024x1024 normalized) and the reference outputs under the names that
      `ragseg debug image-features` writes. tools/README.md says how to compare.
"""
import argparse
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

from sam2.modeling.backbones.hieradet import Hiera
from sam2.modeling.backbones.image_encoder import FpnNeck, ImageEncoder
from sam2.modeling.position_encoding import PositionEmbeddingSine

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Published trunk configs (the YAMLs of sam2/configs/sam2{,.1}/; trunk and neck are the same in 2.0 and 2.1).
REAL = {
    "tiny": dict(embed_dim=96, num_heads=1, stages=[1, 2, 7, 2], global_att_blocks=[5, 7, 9],
                 window_pos_embed_bkg_spatial_size=[7, 7]),
    "small": dict(embed_dim=96, num_heads=1, stages=[1, 2, 11, 2], global_att_blocks=[7, 10, 13],
                  window_pos_embed_bkg_spatial_size=[7, 7]),
    "base_plus": dict(embed_dim=112, num_heads=2),
    "large": dict(embed_dim=144, num_heads=2, stages=[2, 6, 36, 4], global_att_blocks=[23, 33, 43],
                  window_spec=[8, 4, 16, 8], window_pos_embed_bkg_spatial_size=[7, 7]),
}


class Decoder(nn.Module):
    """Holds conv_s0/conv_s1 under the official key names (sam_mask_decoder.conv_s0/1)."""

    def __init__(self, d_model):
        super().__init__()
        self.conv_s0 = nn.Conv2d(d_model, d_model // 8, kernel_size=1, stride=1)
        self.conv_s1 = nn.Conv2d(d_model, d_model // 4, kernel_size=1, stride=1)


class Model(nn.Module):
    def __init__(self, trunk_kwargs, d_model):
        super().__init__()
        trunk = Hiera(**trunk_kwargs)
        channels = trunk.channel_list  # coarse -> fine, e.g. [768, 384, 192, 96]
        neck = FpnNeck(
            position_encoding=PositionEmbeddingSine(num_pos_feats=d_model, normalize=True, scale=None,
                                                    temperature=10000),
            d_model=d_model, backbone_channel_list=channels,
            fpn_top_down_levels=[2, 3], fpn_interp_model="nearest")
        self.image_encoder = ImageEncoder(trunk=trunk, neck=neck, scalp=1)
        self.sam_mask_decoder = Decoder(d_model)


def randomize(model, gen):
    """Non-trivial random weights: default inits leave norms at 1/0 and pos embeds at 0."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "pos_embed" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            else:
                fan_in = p[0].numel() if p.dim() > 1 else p.numel()
                p.copy_(torch.randn(p.shape, generator=gen) / np.sqrt(fan_in))


def hf_key(k):
    """Official key -> Hugging Face key (the trunk/neck/conv_s subset of the rename rules, docs/sam2.md#rename-rules)."""
    k = k.replace("sam_mask_decoder", "mask_decoder")
    k = k.replace("image_encoder.neck", "vision_encoder.neck")
    k = k.replace("image_encoder", "vision_encoder.backbone")
    k = k.replace("patch_embed.proj", "patch_embed.projection")
    k = k.replace(".norm", ".layer_norm")
    k = k.replace("trunk.", "")
    k = k.replace("mlp.layers.0.", "mlp.proj_in.").replace("mlp.layers.1.", "mlp.proj_out.")
    if k.startswith("vision_encoder.neck.convs."):
        k = k.replace(".conv.", ".")
    return k


def run(model, x):
    """Runs the trunk block by block (collecting every block output) and the neck; returns a dict of arrays."""
    out = {}
    trunk = model.image_encoder.trunk
    with torch.no_grad():
        h = trunk.patch_embed(x)
        h = h + trunk._get_pos_embed(h.shape[1:3])
        out["patch_embed"] = h[0]  # H W C (channels last, as the trunk keeps it)
        stages = []
        for i, blk in enumerate(trunk.blocks):
            h = blk(h)
            out[f"block{i:02d}"] = h[0]
            if i in trunk.stage_ends:
                stages.append(h.permute(0, 3, 1, 2))
        # The official forward must agree with our block-by-block walk.
        official = trunk(x)
        for a, b in zip(stages, official):
            assert torch.equal(a, b)
        for j, s in enumerate(stages):
            out[f"stage{j}"] = s[0]
        feats, pos = model.image_encoder.neck(stages)
        for j in range(len(feats)):
            out[f"fpn{j}"] = feats[j][0]
            out[f"pos{j}"] = pos[j][0]
        enc = model.image_encoder(x)
        assert torch.equal(enc["vision_features"], feats[2])
        out["conv_s0"] = model.sam_mask_decoder.conv_s0(feats[0])[0]
        out["conv_s1"] = model.sam_mask_decoder.conv_s1(feats[1])[0]
    return {k: v.contiguous().numpy().astype(np.float32) for k, v in out.items()}


def save_weights(model, directory):
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(sd, os.path.join(directory, "weights_official.safetensors"))
    save_file({hf_key(k): v for k, v in sd.items()}, os.path.join(directory, "weights_hf.safetensors"))


def small_fixtures(seed):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    # 128x128 input -> 32x32 tokens. Stages [1,2,3,2], dims 8,16,32,64, heads 1,2,4,8 (head dim 8).
    # window_spec [8,4,6,3]: block 0 w8 on 32x32; block 1 (q-pool) w8 -> 16x16; block 2 w4;
    # block 3 (q-pool) w4 -> 8x8; block 4 w6 on 8x8 (padded to 12); block 5 global; block 6
    # (q-pool) w6 on 8x8 padded to 12, pooled windows of 3 on 4x4 padded to 6; block 7 w3 on 4x4 (padded to 6).
    trunk = dict(embed_dim=8, num_heads=1, stages=[1, 2, 3, 2], global_att_blocks=[5],
                 window_spec=[8, 4, 6, 3], window_pos_embed_bkg_spatial_size=[5, 5])
    model = Model(trunk, d_model=32).eval()
    randomize(model, gen)
    x = torch.randn(1, 3, 128, 128, generator=gen)
    d = os.path.join(ROOT, "Tests/SAM2Tests/Fixtures/encoder")
    os.makedirs(d, exist_ok=True)
    np.save(os.path.join(d, "input.npy"), x[0].numpy())
    for k, v in run(model, x).items():
        np.save(os.path.join(d, f"{k}.npy"), v)
    save_weights(model, d)


def png_fixtures(seed):
    """Preprocessing: PNG -> [0,1] float -> antialiased bilinear resize -> ImageNet normalize."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    d = os.path.join(ROOT, "Tests/SAM2Tests/Fixtures/preprocess")
    os.makedirs(d, exist_ok=True)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)

    def reference(chw01, size):
        t = torch.from_numpy(chw01.astype(np.float32))[None]
        t = F.interpolate(t, size=size, mode="bilinear", align_corners=False, antialias=True)[0]
        return ((t - mean) / std).numpy()

    # Smooth-ish content so the filter matters; sizes chosen so both down- and up-sampling occur.
    yy, xx = np.mgrid[0:45, 0:70]
    gray8 = (127 + 100 * np.sin(xx / 5.0) * np.cos(yy / 7.0) + rng.integers(-20, 21, (45, 70))).clip(0, 255).astype(np.uint8)
    Image.fromarray(gray8, mode="L").save(os.path.join(d, "gray8.png"))
    np.save(os.path.join(d, "gray8_32x48.npy"), reference(np.repeat(gray8[None] / 255.0, 3, 0), (32, 48)))
    np.save(os.path.join(d, "gray8_64x64.npy"), reference(np.repeat(gray8[None] / 255.0, 3, 0), (64, 64)))

    gray16 = (30000 + 25000 * np.sin(xx / 9.0 + yy / 4.0) + rng.integers(-3000, 3001, (45, 70))).clip(0, 65535).astype(np.uint16)
    Image.fromarray(gray16).save(os.path.join(d, "gray16.png"))
    back = np.array(Image.open(os.path.join(d, "gray16.png")))
    assert back.dtype in (np.uint16, np.int32) and np.array_equal(back.astype(np.uint16), gray16), "16-bit PNG round trip"
    np.save(os.path.join(d, "gray16_32x48.npy"), reference(np.repeat(gray16[None] / 65535.0, 3, 0), (32, 48)))

    rgb = rng.integers(0, 256, (30, 20, 3)).astype(np.uint8)
    Image.fromarray(rgb, mode="RGB").save(os.path.join(d, "rgb8.png"))
    np.save(os.path.join(d, "rgb8_64x64.npy"), reference(rgb.transpose(2, 0, 1) / 255.0, (64, 64)))


def real_fixtures(size, version, seed, out_dir):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = Model(REAL[size], d_model=256).eval()
    randomize(model, gen)
    x = torch.randn(1, 3, 1024, 1024, generator=gen)
    os.makedirs(out_dir, exist_ok=True)
    np.save(os.path.join(out_dir, "input.npy"), x[0].numpy())
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              os.path.join(out_dir, "weights.safetensors"))
    r = run(model, x)
    # Names as `ragseg debug image-features` writes them.
    names = {"conv_s0": "feat_s0", "conv_s1": "feat_s1", "fpn2": "vision_features", "pos2": "vision_pos_enc",
             "fpn0": "fpn0", "fpn1": "fpn1", "stage0": "stage0", "stage1": "stage1", "stage2": "stage2",
             "stage3": "stage3"}
    for k, name in names.items():
        np.save(os.path.join(out_dir, f"{name}.npy"), r[k])
    print(f"wrote {out_dir} (sam{version} {size}, seed {seed})")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", choices=sorted(REAL), help="run a published config at 1024x1024 instead")
    ap.add_argument("--version", default="2.1", choices=["2.0", "2.1"],
                    help="only labels the output: trunk and neck are identical in 2.0 and 2.1")
    ap.add_argument("--out", help="output directory for --real")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(2)
    if args.real:
        if not args.out:
            sys.exit("--real needs --out DIR")
        real_fixtures(args.real, args.version, args.seed, args.out)
    else:
        small_fixtures(args.seed)
        png_fixtures(args.seed)


if __name__ == "__main__":
    main()

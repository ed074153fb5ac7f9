#!/usr/bin/env python3
"""Reference fixtures for the Swift DINOv2 encoder (Tests/DINOv2Tests/Fixtures), and full-size random models.

Needs (tools/requirements.txt): torch, transformers >= 5 (Dinov2Model / Dinov2WithRegistersModel),
safetensors, numpy. Optional: the official facebookresearch/dinov2 source (--official-src DIR, the folder
that contains the `dinov2` package) to cross-check the torch-hub key layout we write. CI never runs this.

The reference is Hugging Face transformers (what users download as `facebook/dinov2-*`):
  plain models    -> Dinov2Model, position table resampled by size, bicubic, no antialias (docs/dinov2.md#position-table-resampling, variant C)
  register models -> Dinov2WithRegistersModel, by size, bicubic, antialias (variant D)

Modes
  python tools/make_dinov2_fixtures.py                       # writes the committed test fixtures
  python tools/make_dinov2_fixtures.py --full S --out DIR    # real ViT-S/14 config, random weights
      [--registers] [--height 224 --width 224] [--batch 1]
  Full mode writes DIR/model.safetensors (F32, hub key names) + DIR/config.json, DIR/input.npy (normalized
  float32 [N,3,H,W]), DIR/tokens.npy ([T,D] final-norm tokens of image 0) and DIR/cls.npy ([N,D]).
  Compare (--tokens needs a single image, i.e. --batch 1; CLS rows work for any batch):
      mkdir -p /tmp/ours
      ragseg embed --dinov2 DIR/model.safetensors DIR/input.npy --tokens --out /tmp/ours/tokens.npy
      ragseg embed --dinov2 DIR/model.safetensors DIR/input.npy --out /tmp/ours/cls.npy
      python tools/compare_npy.py /tmp/ours DIR        # relative error per common .npy, pass at 1e-4
Fixture contents (all deterministic, seed 0):
  plain/    model.safetensors (F16 storage, hub names) + config.json: D=128, 2 heads (head dim 64),
            2 layers, MLP ratio 2, position table 10x10 (image_size 140).
  reg/      same size, 4 registers, SwiGLU FFN (like the giant), MLP ratio 1; model.safetensors + config.json
  reg_official.safetensors  the reg weights in the torch-hub key layout (qkv fused, ls*.gamma, w12/w3), no config
  input_224x224.u8.npy, input_112x168.u8.npy   uint8 [3,H,W]; the network input is (u - 128) / 64 exactly
  {plain,reg}_tokens_{224x224,112x168}.npy     last_hidden_state [T, D] (float32)
  preprocess_*.png + preprocess_*_56.npy       PNG -> RGB float -> 56x56 bicubic antialias -> ImageNet norm
Weights are drawn at random, then rounded to float16 so the F16 files hold exactly the reference's values.
Sizes: 10x10 table -> 16x16 grid (224) is an upsample; 112x168 -> 8x12 grid downsamples rows and upsamples
columns, so both directions of the resampler (and the antialias filter widening) are exercised.
"""
import argparse
import json
import os
import struct
import sys
import tempfile
import zlib

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file

from transformers import Dinov2Config, Dinov2Model, Dinov2WithRegistersConfig, Dinov2WithRegistersModel

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Published sizes (docs/dinov2.md#published-sizes): hidden, depth, heads, swiglu.
FULL_CONFIGS = {
    "S": dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, use_swiglu_ffn=False),
    "B": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, use_swiglu_ffn=False),
    "L": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, use_swiglu_ffn=False),
    "g": dict(hidden_size=1536, num_hidden_layers=40, num_attention_heads=24, use_swiglu_ffn=True),
}


def build_model(cfg_kwargs, registers, generator, round_f16):
    """A real transformers DINOv2 module whose every parameter is random and away from its init constant."""
    if registers:
        config = Dinov2WithRegistersConfig(num_register_tokens=4, **cfg_kwargs)
        model = Dinov2WithRegistersModel(config)
    else:
        config = Dinov2Config(**cfg_kwargs)
        model = Dinov2Model(config)
    model.eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            shape = p.shape
            if name.endswith("lambda1"):  # LayerScale: positive-ish, spread, never the init 1.0
                v = 0.6 + 0.3 * torch.randn(shape, generator=generator)
            elif ("norm" in name) and name.endswith("weight"):
                v = 1.0 + 0.3 * torch.randn(shape, generator=generator)
            elif name.endswith("bias"):
                v = 0.1 * torch.randn(shape, generator=generator)
            elif p.dim() >= 2 and "embeddings." in name and "patch_embeddings" not in name:
                # cls / register / mask tokens and the position table
                v = 0.5 * torch.randn(shape, generator=generator)
            else:  # linear / conv weights: unit-variance outputs
                fan_in = int(np.prod(shape[1:]))
                v = torch.randn(shape, generator=generator) / np.sqrt(fan_in)
            if round_f16:
                v = v.half().float()
            p.copy_(v)
    return model


def hub_state(model):
    """The tensors exactly as save_pretrained writes them (transformers 5 maps names back to the hub's)."""
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        with open(os.path.join(tmp, "config.json")) as f:
            config = json.load(f)
        with safe_open(os.path.join(tmp, "model.safetensors"), "pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    # The hub files use the names written by convert_dinov2_to_hf.py; make sure we are writing those.
    assert any(".attention.attention.query.weight" in k for k in tensors), sorted(tensors)
    assert "embeddings.position_embeddings" in tensors and "layernorm.weight" in tensors
    return tensors, config


def official_state(hub, depth):
    """Re-key hub tensors into the torch-hub (facebookresearch/dinov2) layout, block_chunks = 0."""
    out = {
        "cls_token": hub["embeddings.cls_token"],
        "pos_embed": hub["embeddings.position_embeddings"],
        "mask_token": hub["embeddings.mask_token"],
        "patch_embed.proj.weight": hub["embeddings.patch_embeddings.projection.weight"],
        "patch_embed.proj.bias": hub["embeddings.patch_embeddings.projection.bias"],
        "norm.weight": hub["layernorm.weight"],
        "norm.bias": hub["layernorm.bias"],
    }
    if "embeddings.register_tokens" in hub:
        out["register_tokens"] = hub["embeddings.register_tokens"]
    for i in range(depth):
        h, o = f"encoder.layer.{i}.", f"blocks.{i}."
        for part in ("weight", "bias"):
            out[o + f"attn.qkv.{part}"] = torch.cat(
                [hub[h + f"attention.attention.{n}.{part}"] for n in ("query", "key", "value")], 0)
            out[o + f"attn.proj.{part}"] = hub[h + f"attention.output.dense.{part}"]
            out[o + f"norm1.{part}"] = hub[h + f"norm1.{part}"]
            out[o + f"norm2.{part}"] = hub[h + f"norm2.{part}"]
            if h + "mlp.fc1.weight" in hub:
                out[o + f"mlp.fc1.{part}"] = hub[h + f"mlp.fc1.{part}"]
                out[o + f"mlp.fc2.{part}"] = hub[h + f"mlp.fc2.{part}"]
            else:
                out[o + f"mlp.w12.{part}"] = hub[h + f"mlp.weights_in.{part}"]
                out[o + f"mlp.w3.{part}"] = hub[h + f"mlp.weights_out.{part}"]
        out[o + "ls1.gamma"] = hub[h + "layer_scale1.lambda1"]
        out[o + "ls2.gamma"] = hub[h + "layer_scale2.lambda1"]
    return out


def check_official(official_src, official, cfg, registers, x, expected):
    """Load our official-layout tensors into facebookresearch/dinov2's own module (strict) and compare."""
    sys.path.insert(0, official_src)
    from dinov2.models.vision_transformer import DinoVisionTransformer
    vit = DinoVisionTransformer(
        img_size=cfg["image_size"], patch_size=14, embed_dim=cfg["hidden_size"], depth=cfg["num_hidden_layers"],
        num_heads=cfg["num_attention_heads"], mlp_ratio=cfg["mlp_ratio"], init_values=1.0, block_chunks=0,
        ffn_layer="swiglufused" if cfg["use_swiglu_ffn"] else "mlp", num_register_tokens=4 if registers else 0,
        interpolate_antialias=registers, interpolate_offset=0.0 if registers else 0.1)
    vit.load_state_dict({k: v.float() for k, v in official.items()}, strict=True)
    vit.eval()
    with torch.no_grad():
        ours = vit.forward_features(x)
    toks = torch.cat([ours["x_norm_clstoken"][:, None], ours["x_norm_regtokens"], ours["x_norm_patchtokens"]], 1)
    diff = (toks - expected).abs().max().item()
    print(f"  official DinoVisionTransformer vs transformers: max |diff| {diff:.2e}")
    # Variant B == D for register models; plain models differ on purpose (A vs C) so only registers are checked.
    assert diff < 1e-4, diff


def forward(model, x):
    with torch.no_grad():
        return model(pixel_values=x).last_hidden_state


# ---------------------------------------------------------------------------------------------- PNG writer
def write_png(path, pixels, bit_depth):
    """Minimal PNG encoder (filter 0) so 16-bit RGB can be written without extra packages."""
    h, w, c = pixels.shape
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    dtype = ">u2" if bit_depth == 16 else "u1"
    raw = b"".join(b"\x00" + pixels[y].astype(dtype).tobytes() for y in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def preprocess_reference(pixels, bit_depth, size):
    """Retrieval preprocessing: to RGB float in [0,1] (gray replicated, alpha dropped), resize to size x size with
    PyTorch's antialiased bicubic on float (torchvision's tensor Resize), no clamping, then ImageNet mean/std."""
    h, w, c = pixels.shape
    rgb = pixels[..., :3] if c >= 3 else np.repeat(pixels[..., :1], 3, axis=2)
    x = torch.from_numpy(rgb.astype(np.float32)).permute(2, 0, 1)[None] / float(2 ** bit_depth - 1)
    x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False, antialias=True)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return ((x - mean) / std)[0]


def smooth_image(rng, h, w, c, maxval):
    """A smooth-ish random picture (sum of a few gradients and blobs) plus noise, in [0, maxval]."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.zeros((h, w, c))
    for ch in range(c):
        a, b, p = rng.uniform(-1, 1, 3)
        out[..., ch] = 0.5 + 0.3 * np.sin(a * xx / 3 + b * yy / 4 + p * 6) + 0.1 * rng.standard_normal((h, w))
    return np.clip(np.rint(out * maxval), 0, maxval).astype(np.uint16 if maxval > 255 else np.uint8)


# ---------------------------------------------------------------------------------------------- modes
def make_fixtures(out_dir, official_src):
    os.makedirs(out_dir, exist_ok=True)
    gen = torch.Generator().manual_seed(0)
    base = dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=2, image_size=140, patch_size=14,
                layer_norm_eps=1e-6)
    specs = {
        "plain": (dict(base, mlp_ratio=2, use_swiglu_ffn=False), False),
        "reg": (dict(base, mlp_ratio=1, use_swiglu_ffn=True), True),
    }
    sizes = [(224, 224), (112, 168)]
    inputs = {}
    for (h, w) in sizes:
        u8 = torch.randint(0, 256, (3, h, w), generator=gen, dtype=torch.int64).to(torch.uint8)
        np.save(os.path.join(out_dir, f"input_{h}x{w}.u8.npy"), u8.numpy())
        inputs[(h, w)] = ((u8.float() - 128.0) / 64.0)[None]  # exact in float32
    for name, (cfg, registers) in specs.items():
        model = build_model(cfg, registers, gen, round_f16=True)
        tensors, config = hub_state(model)
        d = os.path.join(out_dir, name)
        os.makedirs(d, exist_ok=True)
        save_file({k: v.half().contiguous() for k, v in tensors.items()}, os.path.join(d, "model.safetensors"),
                  metadata={"format": "pt"})
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(config, f, indent=2, sort_keys=True)
        for (h, w), x in inputs.items():
            y = forward(model, x)[0]
            np.save(os.path.join(out_dir, f"{name}_tokens_{h}x{w}.npy"), y.numpy().astype(np.float32))
            print(f"{name} {h}x{w}: tokens {tuple(y.shape)}, max |y| {y.abs().max():.3f}")
        if registers:
            official = official_state(tensors, cfg["num_hidden_layers"])
            save_file({k: v.half().contiguous() for k, v in official.items()},
                      os.path.join(out_dir, "reg_official.safetensors"), metadata={"format": "pt"})
            if official_src:
                for (h, w), x in inputs.items():
                    check_official(official_src, official, cfg, True, x, forward(model, x))
    # Preprocessing fixtures.
    rng = np.random.default_rng(0)
    cases = [("gray8", smooth_image(rng, 50, 70, 1, 255), 8),
             ("rgb16", smooth_image(rng, 30, 40, 3, 65535), 16),
             ("rgba8", smooth_image(rng, 64, 48, 4, 255), 8)]
    for name, pixels, depth in cases:
        write_png(os.path.join(out_dir, f"preprocess_{name}.png"), pixels, depth)
        ref = preprocess_reference(pixels, depth, 56)
        np.save(os.path.join(out_dir, f"preprocess_{name}_56.npy"), ref.numpy().astype(np.float32))
    total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(out_dir) for f in fs)
    print(f"fixtures in {out_dir}: {total / 1e6:.2f} MB")


def make_full(variant, registers, out_dir, height, width, batch):
    os.makedirs(out_dir, exist_ok=True)
    gen = torch.Generator().manual_seed(1)
    cfg = dict(FULL_CONFIGS[variant], mlp_ratio=4, image_size=518, patch_size=14, layer_norm_eps=1e-6)
    model = build_model(cfg, registers, gen, round_f16=False)
    tensors, config = hub_state(model)
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out_dir, "model.safetensors"),
              metadata={"format": "pt"})
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
    x = torch.randn(batch, 3, height, width, generator=gen)
    y = forward(model, x)
    np.save(os.path.join(out_dir, "input.npy"), x.numpy())
    np.save(os.path.join(out_dir, "tokens.npy"), y[0].numpy())
    np.save(os.path.join(out_dir, "cls.npy"), y[:, 0].numpy())
    print(f"ViT-{variant}/14{' reg4' if registers else ''} {height}x{width}: wrote {out_dir}")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(here, "..", "Tests", "DINOv2Tests", "Fixtures"))
    ap.add_argument("--official-src", default=None, help="folder containing the official `dinov2` package")
    ap.add_argument("--full", choices=sorted(FULL_CONFIGS), default=None)
    ap.add_argument("--registers", action="store_true")
    ap.add_argument("--height", type=int, default=224)
    ap.add_argument("--width", type=int, default=224)
    ap.add_argument("--batch", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(2)
    if args.full:
        make_full(args.full, args.registers, args.out, args.height, args.width, args.batch)
    else:
        make_fixtures(args.out, args.official_src)


if __name__ == "__main__":
    main()

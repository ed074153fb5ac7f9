#!/usr/bin/env python3
"""Fixtures for reading PyTorch checkpoints (`.pt` / `.pth`) in Swift, written by torch.save itself.

Needs (not CI): torch, safetensors (tools/requirements.txt). Deterministic: reruns give the same tensors
(torch.save's archive also holds a random serialization id, so the bytes of torch-written files differ).

  python tools/make_pt_fixtures.py
  python tools/make_pt_fixtures.py --full DIR     # real-size files for a by-hand check (tools/README.md)

Writes
  Tests/SAM2Tests/Fixtures/memory/weights.pt (+ .pt.json)
        the memory-path test model of weights.safetensors in the official SAM 2 layout: {"model": state_dict},
        the state dict an OrderedDict carrying `_metadata` as nn.Module.state_dict() makes it
  Tests/DINOv2Tests/Fixtures/reg_official.pth
        reg_official.safetensors as torch hub's DINOv2 files are: a bare state dict with hub key names
  Tests/RAGSegIOTests/Fixtures/torch/
    mixed.pt            f32/f16/bf16/f64/i64/bool tensors, a transposed view, a view at a storage offset, two
                        tensors sharing one storage, a scalar, an empty tensor, an nn.Parameter, a non-tensor entry
    mixed_expected.safetensors  the same tensors, contiguous fp32 (what the Swift reader must give bit for bit)
    zip64.pt            mixed.pt's members rewritten with zip64 records (checked to load in torch)
    compressed.pt       mixed.pt's members with data.pkl deflated (torch.load reads it; we refuse it clearly)
    legacy.pt           the pre-1.6 format (_use_new_zipfile_serialization=False)
    truncated.pt        the first half of mixed.pt
    hostile_*.pt        hand-assembled pickles in a valid archive: see HOSTILE below
--full DIR writes, instead, real-size files in the published layouts (random weights): sam2.1_hiera_tiny.pt
(the official SAM 2.1 tiny model built by the `sam2` package, saved as {"model": state_dict}) with
sam2.1_hiera_tiny.safetensors (tools/convert_sam2_checkpoint.py's output for it), and dinov2_vits14_pretrain.pth
(a transformers ViT-S/14 re-keyed to torch hub's layout, bare state dict) with input.npy and the reference
tokens.npy (final-norm tokens of the 224x224 input, from transformers).

The code-execution files are checked to be refused by torch.load(weights_only=True) as well (the others are
damaged rather than malicious: torch fails on most, and happily builds the 5000-deep list).
"""
import collections
import io
import os
import struct
import sys
import zipfile
import zlib

import torch
from safetensors.torch import load_file, save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
TESTS = os.path.join(ROOT, "Tests")
OUT = os.path.join(TESTS, "RAGSegIOTests", "Fixtures", "torch")
# What the os.system payload would create if anything ever ran it; the Swift test checks it never appears.
PWNED = "/tmp/ragseg-pickle-fixture-was-executed"


def state_dict(tensors):
    """An OrderedDict with `_metadata`, exactly the type nn.Module.state_dict() returns."""
    sd = collections.OrderedDict(tensors)
    sd._metadata = collections.OrderedDict({"": {"version": 1}})
    return sd


def model_fixtures():
    sam2 = os.path.join(TESTS, "SAM2Tests", "Fixtures", "memory", "weights.safetensors")
    tensors = load_file(sam2)
    torch.save({"model": state_dict(sorted(tensors.items()))}, sam2[: -len(".safetensors")] + ".pt")
    with open(sam2 + ".json", "rb") as f:
        sidecar = f.read()
    with open(sam2[: -len(".safetensors")] + ".pt.json", "wb") as f:
        f.write(sidecar)
    dinov2 = os.path.join(TESTS, "DINOv2Tests", "Fixtures", "reg_official.safetensors")
    tensors = load_file(dinov2)
    torch.save(state_dict(sorted(tensors.items())), dinov2[: -len(".safetensors")] + ".pth")


def mixed_tensors():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(2, 3, generator=g)
    shared = torch.randn(10, generator=g)
    tensors = collections.OrderedDict()
    tensors["f32"] = base
    tensors["f16"] = torch.randn(4, generator=g).half()
    tensors["bf16"] = torch.randn(2, 2, generator=g).bfloat16()
    tensors["f64"] = torch.randn(3, generator=g).double()
    tensors["i64"] = torch.tensor([-3, 0, 7, 1 << 40])
    tensors["bool"] = torch.tensor([True, False, True])
    tensors["transposed"] = base.t()  # shares f32's storage, strides (1, 3)
    tensors["row1"] = base[1]  # storage offset 3
    tensors["shared_a"] = shared[2:6].view(2, 2)
    tensors["shared_b"] = shared[::3]  # stride 3 over the same storage
    tensors["scalar"] = torch.tensor(2.5)
    tensors["empty"] = torch.zeros(0, 5)
    tensors["param"] = torch.nn.Parameter(torch.randn(3, generator=g))
    return tensors


def archive_members(path):
    with zipfile.ZipFile(path) as z:
        return [(i.filename, z.read(i.filename)) for i in z.infolist()]


def write_zip(path, members, zip64=False, deflate=()):
    """A zip laid out as torch writes it (STORED, data 64-byte aligned via an 'FB' padding extra field),
    optionally with zip64 records for every entry and the end, or some members deflated."""
    out = io.BytesIO()
    central = []
    for name, data in members:
        raw_name = name.encode()
        crc = zlib.crc32(data)
        method = 8 if name in deflate else 0
        stored = data
        if method == 8:
            c = zlib.compressobj(9, zlib.DEFLATED, -15)
            stored = c.compress(data) + c.flush()
        offset = out.tell()
        if zip64:
            sizes = (0xFFFFFFFF, 0xFFFFFFFF)
            extra = struct.pack("<HHQQ", 1, 16, len(data), len(stored))
        else:
            sizes = (len(stored), len(data))
            extra = b""
        start = offset + 30 + len(raw_name) + len(extra) + 4
        pad = (-start) % 64
        extra += struct.pack("<HH", 0x4246, pad) + b"Z" * pad
        out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 45 if zip64 else 20, 0, method, 0, 0x21, crc,
                              sizes[0], sizes[1], len(raw_name), len(extra)))
        out.write(raw_name + extra + stored)
        central.append((raw_name, crc, method, len(stored), len(data), offset))
    cd_offset = out.tell()
    for raw_name, crc, method, csize, usize, offset in central:
        if zip64:
            extra = struct.pack("<HHQQQ", 1, 24, usize, csize, offset)
            fields = (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF)
        else:
            extra = b""
            fields = (csize, usize, offset)
        out.write(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45 if zip64 else 20, 0, method, 0, 0x21, crc,
                              fields[0], fields[1], len(raw_name), len(extra), 0, 0, 0, 0, fields[2]))
        out.write(raw_name + extra)
    cd_size = out.tell() - cd_offset
    if zip64:
        end64 = out.tell()
        out.write(struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, len(central), len(central), cd_size,
                              cd_offset))
        out.write(struct.pack("<IIQI", 0x07064B50, 0, end64, 1))
        out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0))
    else:
        out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(central), len(central), cd_size, cd_offset, 0))
    with open(path, "wb") as f:
        f.write(out.getvalue())


# Pickle opcodes (CPython Lib/pickletools.py).
def short_str(s):
    b = s.encode()
    return b"\x8c" + bytes([len(b)]) + b


def uni(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def glob(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def storage_pid(key, numel, kind="FloatStorage"):
    return b"(" + uni("storage") + glob("torch", kind) + uni(key) + uni("cpu") + b"J" + struct.pack("<i", numel) + b"tQ"


def rebuild(key, numel, offset, size, stride, numel_long=None):
    """_rebuild_tensor_v2 of a storage; numel_long overrides the persistent id's count with an 8-byte LONG1."""
    pid = storage_pid(key, numel)
    if numel_long is not None:
        pid = (b"(" + uni("storage") + glob("torch", "FloatStorage") + uni(key) + uni("cpu")
               + b"\x8a\x08" + struct.pack("<q", numel_long) + b"tQ")
    ints = lambda xs: b"(" + b"".join(b"J" + struct.pack("<i", x) for x in xs) + b"t"
    return (glob("torch._utils", "_rebuild_tensor_v2") + b"(" + pid + b"J" + struct.pack("<i", offset)
            + ints(size) + ints(stride) + b"\x89" + glob("collections", "OrderedDict") + b")Rt" + b"R")


def one_tensor_dict(tensor):
    return b"\x80\x02}" + uni("w") + tensor + b"s."


SIX_FLOATS = struct.pack("<6f", 1, 2, 3, 4, 5, 6)

# name: (data.pkl bytes, extra archive members, what it shows)
HOSTILE = {
    "hostile_os_system": (b"\x80\x02" + glob("os", "system") + b"(" + uni(f"touch {PWNED}") + b"tR.", {},
                          "GLOBAL os.system + REDUCE: the classic code-execution pickle"),
    "hostile_builtins_eval": (b"\x80\x04" + short_str("builtins") + short_str("eval") + b"\x93(" +
                              uni(f"__import__('os').system('touch {PWNED}')") + b"tR.", {},
                              "STACK_GLOBAL builtins.eval + REDUCE"),
    "hostile_reduce_string": (b"\x80\x02" + uni("os.system") + b"(" + uni("true") + b"tR.", {},
                              "REDUCE whose callable is a string, not an allowed global"),
    "hostile_unknown_torch_global": (b"\x80\x02" + glob("torch", "load") + b"(" + uni("x.pt") + b"tR.", {},
                                     "a torch global outside the weights-only list (torch.load)"),
    "hostile_storage_offset": (one_tensor_dict(rebuild("0", 6, 5, [2, 3], [3, 1])), {"data/0": SIX_FLOATS},
                               "storage offset 5 with size 2x3: runs past the 6-element storage"),
    "hostile_numel": (one_tensor_dict(rebuild("0", 1 << 30, 0, [1 << 15, 1 << 15], [1 << 15, 1])),
                      {"data/0": SIX_FLOATS}, "storage declares 2^30 floats, the archive holds 24 bytes"),
    "hostile_numel_overflow": (one_tensor_dict(rebuild("0", 0, 0, [6], [1], numel_long=1 << 62)),
                               {"data/0": SIX_FLOATS}, "numel 2^62: numel x 4 overflows 64 bits"),
    "hostile_missing_storage": (one_tensor_dict(rebuild("7", 6, 0, [6], [1])), {"data/0": SIX_FLOATS},
                                "persistent id names a storage the archive does not hold"),
    "hostile_deep": (b"\x80\x02" + b"]" * 5000 + b"a" * 4999 + b".", {},
                     "5000 nested lists (would overflow a recursive reader)"),
    "hostile_memo": (b"\x80\x02]j" + struct.pack("<I", 0xFFFFFFF0) + b".", {},
                     "LONG_BINGET of memo entry 4294967280, never stored"),
    "hostile_long_string": (b"\x80\x04\x8d" + struct.pack("<Q", 1 << 40) + b"abc.", {},
                            "BINUNICODE8 declaring 1 TiB in a tiny file"),
}

CODE_EXECUTION = {"hostile_os_system", "hostile_builtins_eval", "hostile_reduce_string", "hostile_unknown_torch_global"}


def write_hostile(name, pickle, extra):
    members = [("archive/data.pkl", pickle), ("archive/byteorder", b"little")]
    members += [("archive/" + k, v) for k, v in extra.items()]
    members.append(("archive/version", b"3\n"))
    path = os.path.join(OUT, name + ".pt")
    write_zip(path, members)
    try:
        torch.load(path, weights_only=True)
    except Exception:
        pass
    else:
        if name in CODE_EXECUTION:
            sys.exit(f"{path}: torch.load(weights_only=True) accepted a code-execution pickle")
    assert not os.path.exists(PWNED), "a hostile fixture was executed by torch?"


def make_full(out_dir):
    import subprocess

    import numpy as np
    from sam2.build_sam import build_sam2

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import make_dinov2_fixtures as dino

    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(0)
    sam2 = build_sam2("configs/sam2.1/sam2.1_hiera_t.yaml", ckpt_path=None, device="cpu", mode="eval")
    pt = os.path.join(out_dir, "sam2.1_hiera_tiny.pt")
    torch.save({"model": sam2.state_dict()}, pt)
    subprocess.run([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                 "convert_sam2_checkpoint.py"), pt, pt[:-3] + ".safetensors"],
                   check=True)
    gen = torch.Generator().manual_seed(1)
    cfg = dict(dino.FULL_CONFIGS["S"], mlp_ratio=4, image_size=518, patch_size=14, layer_norm_eps=1e-6)
    model = dino.build_model(cfg, False, gen, round_f16=False)
    hub, _ = dino.hub_state(model)
    official = dino.official_state(hub, cfg["num_hidden_layers"])
    torch.save(state_dict(sorted(official.items())), os.path.join(out_dir, "dinov2_vits14_pretrain.pth"))
    x = torch.randn(1, 3, 224, 224, generator=gen)
    np.save(os.path.join(out_dir, "input.npy"), x[0].numpy())
    np.save(os.path.join(out_dir, "tokens.npy"), dino.forward(model, x)[0].numpy())
    print(f"wrote {out_dir}")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--full":
        return make_full(sys.argv[2])
    os.makedirs(OUT, exist_ok=True)
    model_fixtures()
    tensors = mixed_tensors()
    sd = collections.OrderedDict(tensors)
    sd["not_a_tensor"] = 42
    mixed = os.path.join(OUT, "mixed.pt")
    torch.save(sd, mixed)
    expected = {k: v.detach().to(torch.float32).contiguous().clone() for k, v in tensors.items()}
    save_file(expected, os.path.join(OUT, "mixed_expected.safetensors"))
    members = archive_members(mixed)
    write_zip(os.path.join(OUT, "zip64.pt"), members, zip64=True)
    write_zip(os.path.join(OUT, "compressed.pt"), members, deflate={members[0][0]})
    for name in ("zip64.pt", "compressed.pt"):
        loaded = torch.load(os.path.join(OUT, name), weights_only=True)
        assert all(torch.equal(loaded[k], v) for k, v in tensors.items()), name
    torch.save(sd, os.path.join(OUT, "legacy.pt"), _use_new_zipfile_serialization=False)
    with open(mixed, "rb") as f:
        data = f.read()
    with open(os.path.join(OUT, "truncated.pt"), "wb") as f:
        f.write(data[: len(data) // 2])
    for name, (pickle, extra, _) in HOSTILE.items():
        write_hostile(name, pickle, extra)
    print(f"wrote {OUT} ({len(HOSTILE)} hostile files) and the SAM 2 / DINOv2 .pt/.pth fixtures")


if __name__ == "__main__":
    main()

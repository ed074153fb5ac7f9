#!/usr/bin/env python3
"""Reference fixtures for Tests/TensorCoreTests (parity of every TensorCore op against PyTorch, fp32).

Needs: torch (CPU), numpy — see tools/requirements.txt. Not needed by CI: the outputs are committed.
Run:   /tmp/refenv/bin/python tools/make_tensorcore_fixtures.py
Writes Tests/TensorCoreTests/Fixtures/<case>_<name>.npy (little-endian float32, C order).
Deterministic: fixed seed, single thread.
"""
import os
import numpy as np
import torch
import torch.nn.functional as F

torch.manual_seed(0)
torch.set_num_threads(1)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "TensorCoreTests", "Fixtures")
os.makedirs(OUT, exist_ok=True)
for f in os.listdir(OUT):
    if f.endswith(".npy"):
        os.remove(os.path.join(OUT, f))


def save(case, **arrays):
    for name, t in arrays.items():
        a = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
        np.save(os.path.join(OUT, f"{case}_{name}.npy"), np.ascontiguousarray(a.astype("<f4")))


def r(*shape):
    return torch.randn(*shape, dtype=torch.float32)


# GEMM family
x, w, b = r(2, 5, 12), r(7, 12), r(7)
save("linear", x=x, w=w, b=b, out=F.linear(x, w, b))
a, bm = r(9, 6), r(11, 6)  # a [9,6]; used as aᵀ·? and ·bᵀ
save("matmul", a=a, b=bm, out_nt=a @ bm.T)
a2, b2 = r(6, 9), r(6, 4)
save("matmul_tn", a=a2, b=b2, out=a2.T @ b2)
a3, b3 = r(5, 7), r(4, 5)
save("matmul_tt", a=a3, b=b3, out=a3.T @ b3.T)

# Convolutions
def conv(case, x, o, k, stride=1, padding=0, groups=1):
    w, b = r(o, x.shape[-3] // groups, k, k) * 0.2, r(o)
    save(case, x=x, w=w, b=b, out=F.conv2d(x, w, b, stride=stride, padding=padding, groups=groups))

conv("conv_s2p1", r(2, 4, 11, 10), 6, 3, stride=2, padding=1)
conv("conv_groups", r(1, 6, 9, 9), 4, 3, padding=1, groups=2)
conv("conv_depthwise7", r(1, 8, 12, 13), 8, 7, padding=3, groups=8)
conv("conv_1x1", r(2, 5, 6, 7), 3, 1)
conv("conv_patch", r(1, 3, 32, 36), 8, 7, stride=4, padding=3)
x = r(2, 6, 5, 4)
w, b = r(6, 3, 2, 2), r(3)
save("convT", x=x, w=w, b=b, out=F.conv_transpose2d(x, w, b, stride=2))

# Norms and pointwise
x, w, b = r(3, 4, 40) * 3 + 1, r(40), r(40)
save("layernorm", x=x, w=w, b=b, out=F.layer_norm(x, (40,), w, b, eps=1e-6))
x, w, b = r(2, 12, 5, 6) * 2 + 0.5, r(12), r(12)
u = x.mean(1, keepdim=True)
s = (x - u).pow(2).mean(1, keepdim=True)
save("layernorm2d", x=x, w=w, b=b, out=w[:, None, None] * ((x - u) / torch.sqrt(s + 1e-6)) + b[:, None, None])
x = r(4, 300) * 4
save("act", x=x, gelu=F.gelu(x), relu=F.relu(x), silu=F.silu(x), sigmoid=torch.sigmoid(x))
x = r(3, 5, 70) * 5
save("softmax", x=x, out=torch.softmax(x, -1))

# Attention: batch 2, 3 heads, Nq = 600 (blocks of 256 -> 3 blocks, ragged last), Nk = 170, dq 8, dv 5
B, H, Nq, Nk, dq, dv = 2, 3, 600, 170, 8, 5
q, k, v = r(B, Nq, H * dq), r(B, Nk, H * dq), r(B, Nk, H * dv)
def heads(t, d):
    return t.view(t.shape[0], t.shape[1], H, d).transpose(1, 2)
o = F.scaled_dot_product_attention(heads(q, dq), heads(k, dq), heads(v, dv))
save("attention", q=q, k=k, v=v, out=o.transpose(1, 2).reshape(B, Nq, H * dv))

# Elementwise binary ops
a, b = r(3, 7, 5), r(3, 7, 5)
save("binary", a=a, b=b, add=a + b, mul=a * b, scaled=a * -1.75)

# Layout
x = r(2, 3, 4, 5)
save("layout", x=x, perm0231=x.permute(0, 2, 3, 1), perm3120=x.permute(3, 1, 2, 0), perm1023=x.permute(1, 0, 2, 3),
     slice_ax2=x[:, :, 1:3, :], slice_ax3=x[..., 2:5])
y, z = r(2, 2, 4, 5), r(2, 3, 4, 1)
save("concat", y=y, z=z, cat_ax1=torch.cat([x, y], 1), cat_ax3=torch.cat([x, z], 3))

# Pooling
x = r(2, 3, 8, 11)
save("maxpool", x=x, out=F.max_pool2d(x, 2, 2))
x = r(10, 7, 6)  # [H, W, C]
save("maxpool_cl", x=x, out=F.max_pool2d(x.permute(2, 0, 1), 2, 2).permute(1, 2, 0))

# Resampling (align_corners=False everywhere)
def interp(case, x, **kw):
    save(case, x=x, out=F.interpolate(x, align_corners=None if kw.get("mode") == "nearest" else False, **kw))

interp("nearest_up", r(1, 2, 5, 7), size=(13, 9), mode="nearest")
interp("nearest_down", r(1, 2, 17, 20), size=(6, 7), mode="nearest")
interp("nearest_x2", r(2, 3, 4, 5), scale_factor=2.0, mode="nearest")
interp("nearest_sf", r(1, 2, 9, 10), scale_factor=(1.7, 0.45), mode="nearest")
interp("bilinear_sf", r(1, 2, 9, 10), scale_factor=(1.7, 0.45), mode="bilinear")
interp("bilinear_up", r(1, 2, 7, 9), size=(16, 20), mode="bilinear")
interp("bilinear_down", r(1, 2, 20, 24), size=(7, 5), mode="bilinear")
interp("bilinear_aa_down64", r(1, 2, 64, 64), size=(16, 16), mode="bilinear", antialias=True)
interp("bilinear_aa_down37", r(1, 2, 37, 37), size=(10, 10), mode="bilinear", antialias=True)
interp("bilinear_aa_up", r(1, 2, 7, 9), size=(16, 20), mode="bilinear", antialias=True)
interp("bicubic_up", r(1, 3, 7, 7), size=(16, 16), mode="bicubic")
interp("bicubic_down", r(1, 3, 37, 37), size=(16, 16), mode="bicubic")
interp("bicubic_nonsquare", r(1, 3, 37, 37), size=(24, 20), mode="bicubic")
sf = (16 + 0.1) / 37
interp("bicubic_scalefactor", r(1, 3, 37, 37), scale_factor=(sf, sf), mode="bicubic")
interp("bicubic_aa_down", r(1, 3, 37, 37), size=(16, 16), mode="bicubic", antialias=True)
interp("bicubic_aa_up", r(1, 2, 37, 37), size=(64, 64), mode="bicubic", antialias=True)

# bf16 / f16 rounding. Exact ties: take random bf16 values and add exactly half a bf16 ulp (bit 15).
base = (r(200) * 10).to(torch.bfloat16).to(torch.float32)
bits = base.numpy().view(np.uint32)
ties = (bits | np.uint32(0x8000)).view(np.float32)              # exactly halfway: round to even
above = (bits | np.uint32(0x8001)).view(np.float32)             # just above halfway: round up
below = (bits | np.uint32(0x7FFF)).view(np.float32)             # just below halfway: round down
special = np.array([0.0, -0.0, 1.0, -1.0, 3.4e38, -3.4e38, 1e-40, -1e-40, 65504.0, 1e-8], dtype=np.float32)
x = torch.from_numpy(np.concatenate([ties, above, below, r(300).numpy() * 100, special]))
save("bf16", x=x, out=x.to(torch.bfloat16).to(torch.float32))
h16 = r(200).to(torch.float16).to(torch.float32).numpy()
h16bits = h16.view(np.uint32)
# Halfway between neighbouring halfs for normal values: add half a half-ulp (mantissa bit 12 of fp32).
halfties = (h16bits | np.uint32(0x1000)).view(np.float32)
x = torch.from_numpy(np.concatenate([halfties, r(300).numpy() * 1000, np.array([70000.0, -70000.0, 6e-8, 1e-5], np.float32)]))
save("f16", x=x, out=x.to(torch.float16).to(torch.float32))

total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
print(f"wrote {len(os.listdir(OUT))} files, {total / 1e6:.2f} MB to {OUT}")

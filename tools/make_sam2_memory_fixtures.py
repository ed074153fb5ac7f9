#!/usr/bin/env python3
"""Reference fixtures for the SAM 2 memory path (issue 5): Tests/SAM2Tests/Fixtures/memory/.

Needs: torch, numpy, safetensors, hydra-core, iopath, pillow, transformers (only for the HF key-name
check) and the official `sam2` package
(see tools/requirements.txt). Never needed by CI: the tests only read the committed output.
Run:  /tmp/refenv/bin/python tools/make_sam2_memory_fixtures.py

What it does (docs/sam2.md#reference-runs): builds the official SAM2VideoPredictor from the sam2.1 tiny
YAML with a SHRUNKEN but structurally identical configuration (image 128 -> 8x8 features, d_model 64,
mem_dim 16 so a pointer still splits into 4 tokens, small Hiera trunk, smaller MLPs), gives every
parameter random non-trivial values (norm weights, layer scales, temporal encodings, no-object
embeddings are moved off their init constants) rounded to fp16 so the weights file can be stored as
F16 without loss, and drives the predictor exactly as RAGSeg uses it: k support frames with
add_new_mask (frames 0..k-1), the target at frame k, propagate_in_video, for k = 1, 2, 3 (the k = 3
case has an empty support mask). Hooks record every memory-path tensor. `refine_*`: clicks/boxes on the
target after propagation (add_new_points_or_box on frame k; see the comment at that section). The Swift tests start from
the image-encoder outputs recorded here (conv_s0(L0), conv_s1(L1), L2), so they do not depend on the
image encoder.
"""
import json
import os
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
OUT = os.path.join(ROOT, "Tests", "SAM2Tests", "Fixtures", "memory")

IMAGE = 128          # image_size -> 8x8 top-level features (backbone stride 16)
D = 64               # d_model (hidden_dim); 256 in the published models
MEM = 16             # mem_dim; 64 in the published models (D / MEM = 4 pointer tokens, as published)
DECODER_MLP = 96     # two-way transformer MLP; 2048 published
MEMORY_FFN = 128     # memory-attention FFN; 2048 published
VIDEO_H, VIDEO_W = 45, 70   # non-square "original size" for the final resize

# `--full-size DIR`: the same fixtures at the published memory-path sizes (image 1024, hidden 256,
# memory 64, MLPs 2048; only the Hiera trunk stays tiny). Far too large to commit (~100 MB); used by the
# opt-in test MemoryPathFullSizeTests (SAM2_MEMORY_FULLSIZE_FIXTURES=DIR).
FULL = len(sys.argv) == 3 and sys.argv[1] == "--full-size"
if FULL:
    IMAGE, D, MEM, DECODER_MLP, MEMORY_FFN = 1024, 256, 64, 2048, 2048
    VIDEO_H, VIDEO_W = 600, 900
    OUT = os.path.abspath(sys.argv[2])
FEAT = IMAGE // 16



# What build_sam2_video_predictor does to a config: the video predictor class and its apply_postprocessing
# overrides (fill_hole_area needs CUDA; 0 here). Shared with bench_segment_torch.py.
VIDEO_PREDICTOR_OVERRIDES = [
    "++model._target_=sam2.sam2_video_predictor.SAM2VideoPredictor",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability=true",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_delta=0.05",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh=0.98",
    "++model.binarize_mask_from_pts_for_mem_enc=true",
    "++model.fill_hole_area=0",
]

def build_model(config="configs/sam2.1/sam2.1_hiera_t.yaml"):
    import sam2  # noqa: F401  (initializes hydra's config module)
    import sam2.modeling.sam2_base as sam2_base
    from hydra import compose
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    # The two-way transformer's MLP width (2048) is hard-coded in SAM2Base; shrink it, keep the structure.
    original = sam2_base.TwoWayTransformer

    def small_two_way(**kw):
        kw["mlp_dim"] = DECODER_MLP
        return original(**kw)

    sam2_base.TwoWayTransformer = small_two_way
    m = "++model."
    overrides = VIDEO_PREDICTOR_OVERRIDES + [
        m + f"image_size={IMAGE}",
        m + "image_encoder.trunk.embed_dim=8",
        m + "image_encoder.trunk.num_heads=1",
        m + "image_encoder.trunk.stages=[1,1,2,1]",
        m + "image_encoder.trunk.global_att_blocks=[3]",
        m + f"image_encoder.neck.d_model={D}",
        m + f"image_encoder.neck.position_encoding.num_pos_feats={D}",
        m + "image_encoder.neck.backbone_channel_list=[64,32,16,8]",
        m + f"memory_attention.d_model={D}",
        m + f"memory_attention.layer.d_model={D}",
        m + f"memory_attention.layer.dim_feedforward={MEMORY_FFN}",
        m + f"memory_attention.layer.self_attention.embedding_dim={D}",
        m + f"memory_attention.layer.self_attention.feat_sizes=[{FEAT},{FEAT}]",
        m + f"memory_attention.layer.cross_attention.embedding_dim={D}",
        m + f"memory_attention.layer.cross_attention.feat_sizes=[{FEAT},{FEAT}]",
        m + f"memory_attention.layer.cross_attention.kv_in_dim={MEM}",
        m + f"memory_encoder.out_dim={MEM}",
        m + f"memory_encoder.in_dim={D}",
        m + f"memory_encoder.position_encoding.num_pos_feats={MEM}",
        m + f"memory_encoder.mask_downsampler.embed_dim={D}",
        m + f"memory_encoder.fuser.layer.dim={D}",
    ]
    cfg = compose(config_name=config, overrides=overrides)
    OmegaConf.resolve(cfg)
    model = instantiate(cfg.model, _recursive_=True)
    sam2_base.TwoWayTransformer = original
    return model.eval()


def randomize(model, gen):
    """Moves every parameter off its init constant, then rounds it to fp16 (lossless F16 storage)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            leaf = name.split(".")[-1]
            if p.dim() == 1 and ("norm" in name or "output_upscaling.1" in name or "mask_downscaling.1" in name
                                 or "mask_downscaling.4" in name or "encoder.1." in name or "encoder.4." in name
                                 or "encoder.7." in name or "encoder.10." in name) and leaf == "weight":
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=gen))
            elif leaf == "bias":
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            elif leaf == "gamma":
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
            elif name in ("maskmem_tpos_enc", "no_obj_ptr", "no_obj_embed_spatial", "no_mem_embed", "no_mem_pos_enc"):
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
            elif p.dim() >= 2:
                fan_in = p[0].numel() if p.dim() > 1 else p.numel()
                if "tokens" in name or "embed" in name:
                    p.copy_(torch.randn(p.shape, generator=gen))
                else:
                    p.copy_(torch.randn(p.shape, generator=gen) / np.sqrt(fan_in))
            else:
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
        g = model.sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix
        g.copy_(torch.randn(g.shape, generator=gen))
        for p in list(model.parameters()) + [g]:
            p.copy_(p.half().float())


def hf_name(key):
    """Official state-dict name -> Hugging Face `Sam2VideoModel` name (docs/sam2.md#rename-rules), memory path only.
    Returns (name, row): row >= 0 when the official tensor is one row of a stacked HF tensor."""
    import re
    exact = {"maskmem_tpos_enc": "memory_temporal_positional_encoding", "no_obj_ptr": "no_object_pointer",
             "no_obj_embed_spatial": "occlusion_spatial_embedding_parameter", "no_mem_embed": "no_memory_embedding",
             "no_mem_pos_enc": "no_memory_positional_encoding",
             "sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix": "prompt_encoder.shared_embedding.positional_embedding"}
    if key in exact:
        return exact[key], -1
    m = re.fullmatch(r"sam_prompt_encoder\.point_embeddings\.(\d)\.weight", key)
    if m:
        return "prompt_encoder.point_embed.weight", int(m.group(1))
    k = key
    three = {"0": "proj_in", "1": "layers.0", "2": "proj_out"}
    k = re.sub(r"^(obj_ptr_proj|sam_mask_decoder\.(?:iou_prediction_head|pred_obj_score_head|output_hypernetworks_mlps\.\d))\.layers\.(\d)",
               lambda m: m.group(1) + "." + three[m.group(2)], k)
    k = re.sub(r"(transformer\.layers\.\d\.mlp)\.layers\.(\d)", lambda m: m.group(1) + "." + ["proj_in", "proj_out"][int(m.group(2))], k)
    k = re.sub(r"mask_downsampler\.encoder\.(\d+)",
               lambda m: "mask_downsampler." + ("final_conv" if m.group(1) == "12" else
                                                f"layers.{int(m.group(1)) // 3}." + ["conv", "layer_norm"][int(m.group(1)) % 3]), k)
    k = re.sub(r"mask_downscaling\.(\d)", lambda m: "mask_embed." + {"0": "conv1", "1": "layer_norm1", "3": "conv2",
                                                                      "4": "layer_norm2", "6": "conv3"}[m.group(1)], k)
    k = re.sub(r"output_upscaling\.(\d)", lambda m: {"0": "upscale_conv1", "1": "upscale_layer_norm", "3": "upscale_conv2"}[m.group(1)], k)
    for a, b in [("obj_ptr_tpos_proj", "temporal_positional_encoding_projection_layer"), ("obj_ptr_proj", "object_pointer_proj"),
                 ("sam_prompt_encoder", "prompt_encoder"), ("sam_mask_decoder", "mask_decoder"),
                 ("memory_encoder.out_proj", "memory_encoder.projection"), ("out_proj", "o_proj"),
                 ("pix_feat_proj", "feature_projection"), ("fuser", "memory_fuser"), ("dwconv", "depthwise_conv"),
                 ("pwconv", "pointwise_conv"), ("gamma", "scale"), ("norm_final_attn", "layer_norm_final_attn")]:
        k = k.replace(a, b)
    k = re.sub(r"\.norm(\d?)\.", r".layer_norm\1.", k)
    return k, -1


def check_hf_names(names):
    """The mapping must produce exactly the non-vision keys of transformers' Sam2VideoModel."""
    from transformers import Sam2VideoConfig, Sam2VideoModel
    with torch.device("meta"):
        hf = Sam2VideoModel(Sam2VideoConfig())
    want = {k for k in hf.state_dict() if not k.startswith("vision_encoder.")}
    want.discard("shared_image_embedding.positional_embedding")  # tied to prompt_encoder.shared_embedding
    got = {hf_name(k)[0] for k in names}
    assert got == want, f"HF names: missing {sorted(want - got)}, unexpected {sorted(got - want)}"


def support_masks():
    yy, xx = np.mgrid[0:IMAGE, 0:IMAGE] * 128 / IMAGE   # shapes drawn in 128-pixel units
    disk = ((yy - 50) ** 2 + (xx - 70) ** 2) <= 30 ** 2
    rect = (yy >= 20) & (yy < 90) & (xx >= 10) & (xx < 45)
    bar = (yy >= 40) & (yy < 110) & (xx >= 90) & (xx < 90 + 3 * 128 / IMAGE)   # 3 px wide: the round trip moves it
    return [disk, rect | bar, np.zeros((IMAGE, IMAGE), bool)]


class Recorder:
    """Wraps model methods to record the memory-path tensors of the frame being processed."""

    def __init__(self, model):
        self.model = model
        self.events = []
        self._wrap(model, "_encode_new_memory", self._encode_new_memory)
        self._wrap(model, "_forward_sam_heads", self._forward_sam_heads)
        self._wrap(model.memory_attention, "forward", self._memory_attention)
        self._wrap(model.sam_mask_decoder, "predict_masks", self._predict_masks)
        self._wrap(model, "_prepare_memory_conditioned_features", self._prepare)

    def _wrap(self, obj, name, hook):
        original = getattr(obj, name)

        def wrapper(*args, **kwargs):
            return hook(original, *args, **kwargs)

        setattr(obj, name, wrapper)

    def _encode_new_memory(self, original, current_vision_feats, feat_sizes, pred_masks_high_res,
                           object_score_logits, is_mask_from_pts):
        raw = {}
        enc = self.model.memory_encoder
        enc_forward = enc.forward

        def capture(pix_feat, masks, skip_mask_sigmoid=False):
            out = enc_forward(pix_feat, masks, skip_mask_sigmoid=skip_mask_sigmoid)
            raw["mask_for_mem"] = masks.clone()
            raw["encoder_out"] = out["vision_features"].clone()
            raw["encoder_pos"] = out["vision_pos_enc"][-1].clone()
            return out

        enc.forward = capture
        try:
            features, pos = original(current_vision_feats, feat_sizes, pred_masks_high_res,
                                     object_score_logits, is_mask_from_pts)
        finally:
            del enc.forward
        self.events.append(("memory", dict(vision=current_vision_feats[-1].clone(), high_res=pred_masks_high_res.clone(),
                                           score=object_score_logits.clone(), features=features.clone(),
                                           pos=pos[-1].clone(), **raw)))
        return features, pos

    def _forward_sam_heads(self, original, backbone_features, point_inputs=None, mask_inputs=None,
                           high_res_features=None, multimask_output=False):
        out = original(backbone_features, point_inputs=point_inputs, mask_inputs=mask_inputs,
                       high_res_features=high_res_features, multimask_output=multimask_output)
        self.events.append(("heads", dict(backbone=backbone_features.clone(),
                                          mask_inputs=None if mask_inputs is None else mask_inputs.clone(),
                                          multimask=multimask_output, out=[o.clone() for o in out])))
        return out

    def _predict_masks(self, original, *args, **kwargs):
        out = original(*args, **kwargs)
        self.events.append(("decoder", [o.clone() for o in out]))
        return out

    def _memory_attention(self, original, curr, memory, curr_pos=None, memory_pos=None, num_obj_ptr_tokens=0):
        out = original(curr=curr, memory=memory, curr_pos=curr_pos, memory_pos=memory_pos,
                       num_obj_ptr_tokens=num_obj_ptr_tokens)
        self.events.append(("attention", dict(curr=curr[0].clone(), curr_pos=curr_pos[0].clone(),
                                              memory=memory.clone(), memory_pos=memory_pos.clone(),
                                              num_obj_ptr_tokens=num_obj_ptr_tokens, out=out.clone())))
        return out

    def _prepare(self, original, *args, **kwargs):
        out = original(*args, **kwargs)
        self.events.append(("conditioned", out.clone()))
        return out


def chw(t):
    """(HW, 1, C) sequence -> C x H x W."""
    return t[:, 0, :].permute(1, 0).reshape(-1, FEAT, FEAT)


def main():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1234)
    model = build_model()
    randomize(model, gen)

    # Four random images: supports use images 0..k-1, the target is always image 3.
    # 8-bit RGB pixels with some spatial structure, normalized the way SAM2Preprocess does for an image
    # already at the model size (v / 255, then ImageNet mean/std in fp32), so the Swift end-to-end test
    # can start from the pixels.
    noise = F.avg_pool2d(torch.randn((4, 3, IMAGE, IMAGE), generator=gen), 3, stride=1, padding=1)
    pixels = (noise * 150 + 128).round().clamp(0, 255).to(torch.uint8)          # [4, 3, S, S]
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    images = (pixels.float() / 255 - mean) / std
    masks = support_masks()

    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(os.path.join(OUT, f))

    def save(name, t):
        if isinstance(t, torch.Tensor):
            t = t.detach().cpu()
            a = t.numpy() if t.dtype in (torch.uint8, torch.int64) else t.float().numpy()
        else:
            a = np.asarray(t)
        if a.dtype == np.float64:
            a = a.astype(np.float32)
        np.save(os.path.join(OUT, name + ".npy"), np.ascontiguousarray(a))

    # Image-encoder outputs the memory path consumes, per image (what forward_image hands on).
    with torch.no_grad():
        feats = []
        for i in range(4):
            bo = model.forward_image(images[i:i + 1])
            fpn = bo["backbone_fpn"]
            feats.append(dict(s0=fpn[0][0], s1=fpn[1][0], l2=fpn[2][0], pe=bo["vision_pos_enc"][2][0]))
            save(f"image{i}_high_res0", fpn[0][0])
            save(f"image{i}_high_res1", fpn[1][0])
            save(f"image{i}_vision", fpn[2][0])
            if i != 2:  # pixels of the images the k = 2 end-to-end test uses (0, 1 and the target 3), [S, S, 3]
                np.save(os.path.join(OUT, f"image{i}_pixels.npy"), pixels[i].permute(1, 2, 0).contiguous().numpy())
        save("vision_pos", feats[0]["pe"])
    for j, mk in enumerate(masks[:3]):
        np.save(os.path.join(OUT, f"support_mask{j}.npy"), mk.astype(np.uint8))

    # Object-score bias: choose it so the k = 1..3 targets get scores of both signs (gating exercised).
    def run_case(k, model=model):
        from sam2.sam2_video_predictor import SAM2VideoPredictor  # noqa: F401
        with tempfile.TemporaryDirectory() as d:
            from PIL import Image
            for f in range(k + 1):
                Image.fromarray(np.zeros((IMAGE, IMAGE, 3), np.uint8)).save(os.path.join(d, f"{f:05d}.jpg"))
            state = model.init_state(d)
        frames = torch.cat([images[[j % 3 for j in range(k)]], images[3:4]], 0)  # supports cycle over images 0..2
        state["images"] = frames
        state["cached_features"] = {}
        state["video_height"], state["video_width"] = VIDEO_H, VIDEO_W
        rec = Recorder(model)
        for f in range(k):
            model.add_new_mask(state, frame_idx=f, obj_id=1, mask=torch.from_numpy(masks[f % 3]))
        final = None
        for fidx, _, video_res in model.propagate_in_video(state, start_frame_idx=k):
            if fidx == k:
                final = video_res[0, 0].clone()
        for obj in ("_encode_new_memory", "_forward_sam_heads", "_prepare_memory_conditioned_features"):
            del model.__dict__[obj]
        del model.memory_attention.forward
        del model.sam_mask_decoder.predict_masks
        return state, rec.events, final

    head = model.sam_mask_decoder.pred_obj_score_head.layers[-1]
    with torch.no_grad():
        head.bias.zero_()
        scores = []
        for k in (1, 2, 3):
            _, ev, _ = run_case(k)
            target_heads = [e for e in ev if e[0] == "heads" and e[1]["multimask"]]
            scores.append(float(target_heads[-1][1]["out"][6].item()))
        s = sorted(scores)
        # put the bias between the two largest scores: k of the largest stays positive, the others negative
        bias = -(s[1] + s[2]) / 2
        if FULL:  # scores there barely depend on k: make them all clearly positive (full decoder path checked)
            bias = 0.5 - s[0]
        head.bias.fill_(float(torch.tensor(bias).half().float()))
        print("target scores with bias 0:", scores, "bias", head.bias.item())

    sd = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
    # The image encoder is kept (small) for the end-to-end test from pixels; the stage tests start from
    # its recorded outputs instead.
    save_file({k: v.half() for k, v in sd.items()},
              os.path.join(OUT, "weights.safetensors"))
    # Sidecar describing the shrunken trunk (not a published size, so not inferable from the shapes);
    # ragseg reads <weights>.json (SAM2ModelDescription). Windows and background size are tiny's defaults.
    trunk = model.image_encoder.trunk
    with open(os.path.join(OUT, "weights.safetensors.json"), "w") as f:
        f.write(json.dumps({"imageEncoder": {
            "name": "memory-path fixture", "embedDim": 8, "numHeads": 1, "stages": [1, 1, 2, 1],
            "globalAttentionBlocks": [3], "windowSpec": list(trunk.window_spec),
            "positionEmbeddingBackgroundSize": list(trunk.window_pos_embed_bkg_spatial_size),
            "qPoolStages": 3, "neckDim": D, "fpnTopDownLevels": [2, 3], "scalp": 1, "imageSize": IMAGE}}, indent=2) + "\n")
    # Official -> Hugging Face names of those tensors (validated against transformers' Sam2VideoModel), so the
    # Swift test can write the same weights in the HF layout and check that loading them gives the same model.
    names = [k for k in sd if not k.startswith("image_encoder.") and not k.startswith("sam_mask_decoder.conv_s")]
    check_hf_names(names + ["sam_mask_decoder.conv_s0.weight", "sam_mask_decoder.conv_s0.bias",
                            "sam_mask_decoder.conv_s1.weight", "sam_mask_decoder.conv_s1.bias"])
    with open(os.path.join(OUT, "hf_names.tsv"), "w") as f:
        for k in names:
            n, row = hf_name(k)
            f.write(f"{k}\t{n}\t{row}\n")

    for k in (1, 2, 3):
        with torch.no_grad():
            state, ev, final = run_case(k)
        p = f"k{k}_"
        out = state["output_dict_per_obj"][0]
        # Supports: memory events are emitted in the preflight consolidation for frames 0..k-1, in order.
        mem_events = [e[1] for e in ev if e[0] == "memory"]
        for j in range(k):
            m = mem_events[j]
            assert torch.equal(chw(m["vision"]), feats[j]["l2"]), "support features mismatch"
            cond = out["cond_frame_outputs"][j]
            save(p + f"support{j}_mask_for_mem", (m["mask_for_mem"][0, 0] > 0).to(torch.uint8))
            save(p + f"support{j}_memory_fp32", m["features"][0])        # after no_obj_embed_spatial, before bf16
            save(p + f"support{j}_memory_bf16", cond["maskmem_features"][0].float())
            save(p + f"support{j}_pointer", cond["obj_ptr"][0])
            if k == 1:
                save("memory_pos", m["pos"][0])
        # Support decoder runs (mask prompt, single-mask): the heads events with mask_inputs.
        sup_heads = [e[1] for e in ev if e[0] == "heads" and e[1]["mask_inputs"] is not None]
        assert len(sup_heads) == k
        for j in range(k):
            h = sup_heads[j]
            save(p + f"support{j}_mask_prompt", h["mask_inputs"][0, 0])     # mask_downsample(GT), 32x32
            save(p + f"support{j}_decoder_score", h["out"][6][0])
            save(p + f"support{j}_decoder_pointer", h["out"][5][0])        # after score gating, before GT gating
            save(p + f"support{j}_decoder_mask", h["out"][3][0, 0])      # single mask (dynamic stability), gated
            save(p + f"support{j}_decoder_iou", h["out"][2][0])
        att = [e[1] for e in ev if e[0] == "attention"]
        assert len(att) == 1
        a = att[0]
        assert torch.equal(chw(a["curr"]), feats[3]["l2"]), "target features mismatch"
        save(p + "memory", a["memory"][:, 0, :])
        save(p + "memory_pos", a["memory_pos"][:, 0, :])
        save(p + "num_obj_ptr_tokens", np.array([a["num_obj_ptr_tokens"]], np.int64))
        save(p + "attention_out", chw(a["out"]))
        # Target decoder run (multimask): last "decoder" event + last multimask heads event.
        dec = [e[1] for e in ev if e[0] == "decoder"][-1]
        save(p + "decoder_masks", dec[0][0])          # all 4 low-res masks, before gating
        save(p + "decoder_iou", dec[1][0])            # all 4 IoUs
        save(p + "decoder_score", dec[3][0])
        # The official single-mask rule (dynamic multimask via stability) applied to these 4 masks.
        sm, si = model.sam_mask_decoder._dynamic_multimask_via_stability(dec[0], dec[1])
        save(p + "stability_mask", sm[0, 0])
        save(p + "stability_iou", si[0])
        th = [e[1] for e in ev if e[0] == "heads" and e[1]["multimask"]][-1]["out"]
        low_res_multimasks, _, ious, low_res_masks, _, obj_ptr, score = th
        save(p + "target_masks", low_res_multimasks[0])    # 3 masks after object-score gating
        save(p + "target_iou", ious[0])
        save(p + "target_low_res", low_res_masks[0, 0])
        save(p + "target_pointer", obj_ptr[0])
        save(p + "target_score", score[0])
        save(p + "final", final)
        print(f"k={k}: target score {score.item():+.4f}, support scores",
              [round(float(h['out'][6].item()), 4) for h in sup_heads])

    # Prompted decoding of the k = 2 target's conditioned features (interactive refinement), through the
    # official _forward_sam_heads: points (a box is two points labelled 2 and 3, as the video predictor
    # passes it), mask prompts at the prompt size and at image size (antialiased resize), multimask or not.
    with torch.no_grad():
        cond = torch.from_numpy(np.load(os.path.join(OUT, "k2_attention_out.npy")))[None]
        hr = [feats[3]["s0"][None], feats[3]["s1"][None]]
        u = IMAGE / 128
        cases = {
            "one_point": ([[40, 50]], [1], None, True),
            "points_box": ([[10, 12], [100, 90], [40, 50], [90, 20]], [2, 3, 1, 0], None, False),
            "point_mask": ([[40, 50]], [1], torch.randn((1, 1, IMAGE // 4, IMAGE // 4), generator=gen), False),
            "big_mask": ([], [], (torch.rand((1, 1, IMAGE, IMAGE), generator=gen) > 0.6).float(), True),
        }
        for name, (pts, labels, mask, multi) in cases.items():
            point_inputs = None
            if pts:
                point_inputs = {"point_coords": torch.tensor([pts], dtype=torch.float32) * u,
                                "point_labels": torch.tensor([labels], dtype=torch.int32)}
                save(f"heads_{name}_points", point_inputs["point_coords"][0])
                save(f"heads_{name}_labels", point_inputs["point_labels"][0].to(torch.int64))
            if mask is not None:
                save(f"heads_{name}_mask", mask[0, 0])
            raw = []
            predict = model.sam_mask_decoder.predict_masks
            model.sam_mask_decoder.predict_masks = lambda *a, **kw: raw.append(predict(*a, **kw)) or raw[-1]
            out = model._forward_sam_heads(cond, point_inputs=point_inputs, mask_inputs=mask,
                                           high_res_features=hr, multimask_output=multi)
            del model.sam_mask_decoder.predict_masks
            save(f"heads_{name}_raw_masks", raw[0][0][0])   # all 4 masks before selection and gating
            save(f"heads_{name}_masks", out[0][0])
            save(f"heads_{name}_iou", out[2][0])
            save(f"heads_{name}_low_res", out[3][0, 0])
            save(f"heads_{name}_pointer", out[5][0])
            save(f"heads_{name}_score", out[6][0])
            print(f"heads {name}: score {out[6].item():+.4f}, ious {[round(v, 4) for v in out[2][0].tolist()]}")

    # k = 20 > 15 supports (images/masks 0..2 repeated): the pointer distances are normalized by
    # min(k + 1, 16) - 1 = 15, so they exceed 1 (docs/sam2.md#storage).
    with torch.no_grad():
        state, ev, final = run_case(20)
    a = [e[1] for e in ev if e[0] == "attention"][0]
    assert a["num_obj_ptr_tokens"] == 80
    save("k20_memory_pos", a["memory_pos"][:, 0, :])
    save("k20_attention_out", chw(a["out"]))
    th = [e[1] for e in ev if e[0] == "heads" and e[1]["multimask"]][-1]["out"]
    save("k20_target_score", th[6][0])
    save("k20_final", final)
    print(f"k=20: target score {th[6].item():+.4f}")

    # SAM 2.0 behaviour (sam2/sam2_hiera_t.yaml: no pointer temporal PE, no no_obj_embed_spatial) with the
    # same weights minus those two tensors: the Swift test loads weights.safetensors with the 2.0 flags.
    sam20 = build_model("configs/sam2/sam2_hiera_t.yaml")
    sd20 = {k: v for k, v in model.state_dict().items() if k not in ("no_obj_embed_spatial",) and not k.startswith("obj_ptr_tpos_proj")}
    sam20.load_state_dict(sd20, strict=True)
    for k in (2, 3):
        with torch.no_grad():
            state, ev, final = run_case(k, model=sam20)
        a = [e[1] for e in ev if e[0] == "attention"][0]
        save(f"sam2_0_k{k}_memory_pos", a["memory_pos"][:, 0, :])
        save(f"sam2_0_k{k}_attention_out", chw(a["out"]))
        save(f"sam2_0_k{k}_final", final)
        if k == 3:
            save("sam2_0_k3_support2_memory_bf16", state["output_dict_per_obj"][0]["cond_frame_outputs"][2]["maskmem_features"][0].float())
        th = [e[1] for e in ev if e[0] == "heads" and e[1]["multimask"]][-1]["out"]
        print(f"SAM 2.0 k={k}: target score {th[6].item():+.4f}")

    # GT masks given at other sizes: add_new_mask resizes them (antialiased bilinear, >= 0.5).
    with torch.no_grad():
        for name, (h, w) in {"up": (45, 70), "down": (300, 200)}.items():
            yy, xx = np.mgrid[0:h, 0:w]
            src = (((yy - 0.4 * h) / (0.3 * h)) ** 2 + ((xx - 0.55 * w) / (0.25 * w)) ** 2 <= 1) | ((xx % 17) == 3)
            with tempfile.TemporaryDirectory() as d:
                from PIL import Image
                Image.fromarray(np.zeros((IMAGE, IMAGE, 3), np.uint8)).save(os.path.join(d, "00000.jpg"))
                state = model.init_state(d)
            model.add_new_mask(state, frame_idx=0, obj_id=1, mask=torch.from_numpy(src))
            resized = state["mask_inputs_per_obj"][0][0][0, 0]
            np.save(os.path.join(OUT, f"resize_{name}_source.npy"), src.astype(np.uint8))
            np.save(os.path.join(OUT, f"resize_{name}_result.npy"), resized.numpy().astype(np.uint8))

    # Prompt encoder with points, a box and a mask (for interactive refinement).
    with torch.no_grad():
        pe = model.sam_prompt_encoder
        pts = torch.tensor([[[10.0, 20.0], [100.5, 3.0], [64.0, 64.0], [0.0, 127.0]]]) * (IMAGE / 128)
        labels = torch.tensor([[1, 0, -1, 3]])
        box = torch.tensor([[12.0, 30.0, 90.0, 101.0]]) * (IMAGE / 128)
        mask = torch.randn((1, 1, IMAGE // 4, IMAGE // 4), generator=gen)
        sparse, dense = pe(points=(pts, labels), boxes=box, masks=mask)
        save("prompt_points", pts[0])
        save("prompt_labels", labels[0].to(torch.int64))
        save("prompt_box", box[0])
        save("prompt_mask", mask[0, 0])
        save("prompt_sparse", sparse[0])
        save("prompt_dense", dense[0])
        sparse2, _ = pe(points=(pts[:, :2], labels[:, :2]), boxes=None, masks=None)
        save("prompt_sparse_points_only", sparse2[0])
        save("dense_pe", pe.get_dense_pe()[0])

    # Clicks on the target after the supports (issue 7), through the official SAM2VideoPredictor API, k = 2.
    # add_new_points_or_box treats a frame that propagate_in_video has not visited as an *initial
    # conditioning frame* (is_init_cond_frame = frame_idx not in frames_tracked_per_obj, filled only by
    # propagate_in_video): the clicked target would then be segmented WITHOUT the support memories
    # (directly_add_no_mem_embed: vision features + no_mem_embed, plain SAM). Checked below ("unpropagated").
    # Prompts on top of the memories are the predictor's *refinement* flow: propagate first (the target
    # gets the prompt-free RAGSeg result), then add_new_points_or_box on the target frame. That frame is
    # tracked, so it is memory-conditioned on exactly the same supports as before; the previous low-res
    # logits (clamped to +-32) are the mask prompt; points are (x, y) in original pixels, scaled by
    # image_size / (video_W, video_H); a box becomes two leading points labelled 2, 3; multimask output
    # iff there is exactly one point in all (box corners count). Outputs at the original (video) size.
    refine_cases = {
        "point": (2, np.array([[20.5, 39.75]]), np.array([1]), None),
        "box": (2, None, None, np.array([12.0, 9.5, 52.75, 36.0])),
        "box_negative": (2, np.array([[8.0, 8.0]]), np.array([0]), np.array([5.0, 5.0, 30.25, 30.0])),
        "point_no_object": (2, np.array([[31.5, 17.25]]), np.array([1]), None),   # object score < 0: gated
        # k = 1: the prompt-free target has no object (logits -1024), so the mask prompt is the clamp, -32.
        "k1_box": (1, None, None, np.array([12.0, 9.5, 52.75, 36.0])),
    }
    sx, sy = VIDEO_W / 70, VIDEO_H / 45   # the coordinates are drawn for 70x45 (full size: scaled)
    with torch.no_grad():
        for name, (k, pts, labels, box) in refine_cases.items():
            if pts is not None:
                pts = pts * np.array([sx, sy])
            if box is not None:
                box = box * np.array([sx, sy, sx, sy])
            state, _, _ = run_case(k)
            rec = Recorder(model)
            _, _, video_res = model.add_new_points_or_box(
                state, frame_idx=k, obj_id=1,
                points=None if pts is None else torch.tensor(pts, dtype=torch.float32),
                labels=None if labels is None else torch.tensor(labels, dtype=torch.int32),
                box=None if box is None else torch.tensor(box, dtype=torch.float32))
            for obj in ("_encode_new_memory", "_forward_sam_heads", "_prepare_memory_conditioned_features"):
                del model.__dict__[obj]
            del model.memory_attention.forward
            del model.sam_mask_decoder.predict_masks
            att = [e[1] for e in rec.events if e[0] == "attention"]
            assert len(att) == 1, "the refined target is memory-conditioned"
            prompt_free = torch.from_numpy(np.load(os.path.join(OUT, f"k{k}_attention_out.npy")))
            assert torch.equal(chw(att[0]["out"]), prompt_free), "same conditioning as the prompt-free pass"
            heads = [e[1] for e in rec.events if e[0] == "heads"]
            assert len(heads) == 1
            h = heads[0]
            dec = [e[1] for e in rec.events if e[0] == "decoder"][-1]
            temp_dict = state["temp_output_dict_per_obj"][0]
            temp = temp_dict["non_cond_frame_outputs"].get(k) or temp_dict["cond_frame_outputs"][k]
            p = f"refine_{name}_"
            if pts is not None:
                save(p + "points", torch.tensor(pts, dtype=torch.float32))
                save(p + "labels", torch.tensor(labels, dtype=torch.int64))
            if box is not None:
                save(p + "box", torch.tensor(box, dtype=torch.float32))
            save(p + "multimask", np.array([int(h["multimask"])], np.int64))
            save(p + "mask_input", h["mask_inputs"][0, 0])    # the prompt-free logits, clamped to +-32
            save(p + "raw_masks", dec[0][0])                    # all 4 decoder masks, before selection/gating
            save(p + "iou", h["out"][2][0])
            save(p + "low_res", temp["pred_masks"][0, 0])
            save(p + "pointer", temp["obj_ptr"][0])
            save(p + "score", temp["object_score_logits"][0])
            save(p + "final", video_res[0, 0])
            print(f"refine {name} (k={k}): multimask {h['multimask']}, score {h['out'][6].item():+.4f}, "
                  f"foreground {(video_res[0, 0] > 0).sum().item()} px")

        # The same click without propagating first: an initial conditioning frame, no memory attention at all.
        with tempfile.TemporaryDirectory() as d:
            from PIL import Image
            for f in range(3):
                Image.fromarray(np.zeros((IMAGE, IMAGE, 3), np.uint8)).save(os.path.join(d, f"{f:05d}.jpg"))
            state = model.init_state(d)
        state["images"] = torch.cat([images[0:2], images[3:4]], 0)
        state["cached_features"] = {}
        state["video_height"], state["video_width"] = VIDEO_H, VIDEO_W
        for f in range(2):
            model.add_new_mask(state, frame_idx=f, obj_id=1, mask=torch.from_numpy(masks[f]))
        rec = Recorder(model)
        pts = refine_cases["point"][1] * np.array([sx, sy])
        model.add_new_points_or_box(state, frame_idx=2, obj_id=1, points=torch.tensor(pts, dtype=torch.float32),
                                    labels=torch.tensor([1], dtype=torch.int32))
        for obj in ("_encode_new_memory", "_forward_sam_heads", "_prepare_memory_conditioned_features"):
            del model.__dict__[obj]
        del model.memory_attention.forward
        del model.sam_mask_decoder.predict_masks
        assert not [e for e in rec.events if e[0] == "attention"], "unpropagated click: no memory attention"
        cond = [e[1] for e in rec.events if e[0] == "conditioned"][-1]
        assert torch.allclose(cond[0], feats[3]["l2"] + model.no_mem_embed.view(-1, 1, 1)), "vision + no_mem_embed"
        print("unpropagated click: initial conditioning frame, features + no_mem_embed, supports unused")

    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"wrote {len(os.listdir(OUT))} files, {total / 1e6:.2f} MB to {OUT}")


if __name__ == "__main__":
    sys.exit(main())

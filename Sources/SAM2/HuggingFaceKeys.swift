// The one table between the two published SAM 2 key layouts (docs/sam2.md, checkpoint key layouts):
//  - official: the `model` dict of `sam2{,.1}_hiera_*.pt`, keys unchanged (tools/convert_sam2_checkpoint.py);
//  - Hugging Face: `facebook/sam2{,.1}-hiera-*` (transformers' `Sam2VideoModel`: `vision_encoder.backbone.…`,
//    `memory_attention.…`, `mask_decoder.…`).
// Model code asks for official names; the Hugging Face name is derived here, by the renames transformers'
// converter applies. Shapes are identical in both layouts except the four point embeddings, which Hugging
// Face stacks into one tensor (a row each).

extension SAM2Weights {
    /// Where the tensor with official name `key` lives in the Hugging Face layout: a name, and a row when
    /// Hugging Face stacks several official tensors into one.
    public static func huggingFaceName(_ key: String) -> (name: String, row: Int?) {
        key.hasPrefix("image_encoder.") ? (imageEncoderName(key), nil) : headsName(key)
    }

    /// The image encoder (trunk, neck): the converter's substring renames, in its order.
    static func imageEncoderName(_ key: String) -> String {
        var k = key
        for (from, to) in [
            ("image_encoder.neck", "vision_encoder.neck"), ("image_encoder", "vision_encoder.backbone"),
            ("patch_embed.proj", "patch_embed.projection"), (".norm", ".layer_norm"), ("trunk.", ""),
            ("mlp.layers.0.", "mlp.proj_in."), ("mlp.layers.1.", "mlp.proj_out."),
        ] {
            k = k.replacingOccurrences(of: from, with: to)
        }
        if k.hasPrefix("vision_encoder.neck.convs.") {
            k = k.replacingOccurrences(of: ".conv.", with: ".")
        }
        return k
    }

    /// Whole-name renames of top-level parameters.
    static let topLevelNames = [
        "maskmem_tpos_enc": "memory_temporal_positional_encoding", "no_obj_ptr": "no_object_pointer",
        "no_obj_embed_spatial": "occlusion_spatial_embedding_parameter", "no_mem_embed": "no_memory_embedding",
        "no_mem_pos_enc": "no_memory_positional_encoding",
        "sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix":
            "prompt_encoder.shared_embedding.positional_embedding",
    ]

    /// Module renames, one path component at a time.
    static let componentNames = [
        "obj_ptr_tpos_proj": "temporal_positional_encoding_projection_layer", "obj_ptr_proj": "object_pointer_proj",
        "sam_prompt_encoder": "prompt_encoder", "sam_mask_decoder": "mask_decoder", "out_proj": "o_proj",
        "pix_feat_proj": "feature_projection", "fuser": "memory_fuser", "dwconv": "depthwise_conv",
        "pwconv1": "pointwise_conv1", "pwconv2": "pointwise_conv2", "gamma": "scale",
        "norm_final_attn": "layer_norm_final_attn", "norm": "layer_norm", "norm1": "layer_norm1",
        "norm2": "layer_norm2", "norm3": "layer_norm3", "norm4": "layer_norm4",
    ]

    /// Everything after the image encoder: memory encoder and attention, prompt encoder, mask decoder
    /// (including conv_s0/conv_s1), pointer heads.
    static func headsName(_ key: String) -> (name: String, row: Int?) {
        if let name = topLevelNames[key] { return (name, nil) }
        var parts = key.split(separator: ".").map(String.init)
        if parts.count == 4, parts[0] == "sam_prompt_encoder", parts[1] == "point_embeddings", let row = Int(parts[2]) {
            return ("prompt_encoder.point_embed.weight", row)
        }
        // Positional renames that depend on the parent module.
        for i in parts.indices.dropLast() {
            let parent = i > 0 ? parts[i - 1] : ""
            let grand = i > 1 ? parts[i - 2] : ""
            // 3-layer MLP heads: layers.{0,1,2} -> proj_in, layers.0, proj_out.
            let threeLayer =
                ["obj_ptr_proj", "iou_prediction_head", "pred_obj_score_head"].contains(parent)
                || grand == "output_hypernetworks_mlps"
            if parts[i] == "layers", threeLayer, let n = Int(parts[i + 1]) {
                let name = ["proj_in", "layers.0", "proj_out"][n]
                parts.replaceSubrange(i...(i + 1), with: [name])
                break
            }
            if parts[i] == "layers", parent == "mlp", let n = Int(parts[i + 1]) {  // two-way transformer MLP
                parts.replaceSubrange(i...(i + 1), with: [["proj_in", "proj_out"][n]])
                break
            }
            if parts[i] == "encoder", parent == "mask_downsampler", let n = Int(parts[i + 1]) {
                parts.replaceSubrange(
                    i...(i + 1),
                    with: n == 12 ? ["final_conv"] : ["layers", "\(n / 3)", n % 3 == 0 ? "conv" : "layer_norm"])
                break
            }
            if parts[i] == "mask_downscaling", let n = Int(parts[i + 1]) {
                let names = [0: "conv1", 1: "layer_norm1", 3: "conv2", 4: "layer_norm2", 6: "conv3"]
                parts.replaceSubrange(i...(i + 1), with: ["mask_embed", names[n] ?? "\(n)"])
                break
            }
            if parts[i] == "output_upscaling", let n = Int(parts[i + 1]) {
                let names = [0: "upscale_conv1", 1: "upscale_layer_norm", 3: "upscale_conv2"]
                parts.replaceSubrange(i...(i + 1), with: [names[n] ?? "\(n)"])
                break
            }
        }
        parts = parts.map { componentNames[$0] ?? $0 }
        if parts.count >= 2, parts[0] == "memory_encoder", parts[1] == "o_proj" { parts[1] = "projection" }
        return (parts.joined(separator: "."), nil)
    }
}

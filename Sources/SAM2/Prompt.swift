// Optional user prompts on top of the support memories (issue 7): clicks and a box on the target, in the
// target image's own pixel coordinates, refining the memory-conditioned prediction.
//
// What the official SAM2VideoPredictor (sam2 1.1.0) does, and therefore what this reproduces:
// - Supports are frames 0..k-1 given with add_new_mask; the target is frame k. Calling
//   add_new_points_or_box(frame_idx=k) BEFORE propagate_in_video makes the target an *initial
//   conditioning frame* (is_init_cond_frame = frame_idx not in frames_tracked_per_obj, and only
//   propagate_in_video fills that): _prepare_memory_conditioned_features then skips the memories
//   (directly_add_no_mem_embed: features + no_mem_embed) — plain SAM on the target, supports unused.
// - The refinement flow keeps the memories: propagate_in_video first (frame k gets the prompt-free
//   result, as RAGSeg computes it), then add_new_points_or_box(frame_idx=k). The frame is now tracked
//   (is_init_cond_frame = false), so it is conditioned on exactly the same support memories and pointers
//   (the bank holds the k conditioning frames; no other frame was tracked). This is what RAGSeg does.
// - Points: (x, y) in original pixels, normalized by (video_W, video_H) and scaled by image_size
//   (x / W * S in fp32; normalize_coords=True). A box becomes two points labelled 2 (x0, y0) and 3
//   (x1, y1) placed BEFORE the clicks; the prompt encoder then appends one padding point (boxes=None).
// - Mask input: the frame's previous low-resolution logits (pred_masks, −1024 where the object score
//   gated them), clamped to ±32 (prev_sam_mask_logits), fed as the dense mask prompt at 4g x 4g.
// - Multimask: _use_multimask = multimask_output_in_sam and (init or multimask_output_for_tracking)
//   and min_pt ≤ #points ≤ max_pt; every published config has true, true, 0, 1 — so multimask output
//   (argmax IoU of masks 1-3) iff there is exactly one point in all (box corners count), otherwise the
//   single mask with dynamic multimask via stability.
// - Output: the chosen low-res logits after object-score gating, bilinearly resized to the original
//   size (consolidated at video resolution); its object pointer would be the frame's new pointer.
import Foundation
import TensorCore

/// A clear error about a prompt (names the value and the problem).
public struct SAM2PromptError: Error, CustomStringConvertible, Sendable, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Clicks and an optional box on a target image, in that image's pixel coordinates (x = column,
/// y = row, as the official predictor takes them). Labels: 1 positive (on the object), 0 negative.
public struct SAM2Prompt: Sendable, Equatable {
    public var points: [SAM2Point]
    public var box: SAM2Box?

    public init(points: [SAM2Point] = [], box: SAM2Box? = nil) {
        self.points = points
        self.box = box
    }

    public var isEmpty: Bool { points.isEmpty && box == nil }

    /// Points the heads receive for a target of `width` x `height` at model input size `imageSize`:
    /// box corners (labels 2, 3) first, then the clicks, each scaled by imageSize / (width, height).
    public func modelPoints(imageSize: Int, width: Int, height: Int) -> [SAM2Point] {
        let all = (box.map { SAM2Point.corners(of: $0) } ?? []) + points
        let s = Float(imageSize), w = Float(width), h = Float(height)
        return all.map { SAM2Point(x: $0.x / w * s, y: $0.y / h * s, label: $0.label) }
    }

    /// Multimask output iff exactly one point reaches the heads (box corners count), as in every
    /// published SAM 2 / 2.1 configuration (multimask_min_pt_num 0, multimask_max_pt_num 1).
    public var usesMultimask: Bool { points.count + (box == nil ? 0 : 2) <= 1 }

    /// Checks labels and that every coordinate lies in the image: clicks 0 ≤ x < width, 0 ≤ y < height;
    /// the box 0 ≤ x0 < x1 ≤ width, 0 ≤ y0 < y1 ≤ height (its far corner may sit on the border).
    public func validate(width: Int, height: Int) throws {
        let w = Float(width), h = Float(height)
        for p in points {
            guard p.label == 0 || p.label == 1 else {
                throw SAM2PromptError(
                    """
                    point \(Self.format(p.x)),\(Self.format(p.y)) has label \(p.label); use 1 (positive) or 0 (negative)
                    """
                )
            }
            guard p.x.isFinite, p.y.isFinite, p.x >= 0, p.x < w, p.y >= 0, p.y < h else {
                throw SAM2PromptError(
                    """
                    point \(Self.format(p.x)),\(Self.format(p.y)) lies outside the \(width)x\(height) image (x in \
                    0..<\(width), y in 0..<\(height))
                    """
                )
            }
        }
        if let b = box {
            let text = "box \([b.x0, b.y0, b.x1, b.y1].map(Self.format).joined(separator: ","))"
            guard [b.x0, b.y0, b.x1, b.y1].allSatisfy(\.isFinite), b.x0 >= 0, b.y0 >= 0, b.x1 <= w, b.y1 <= h else {
                throw SAM2PromptError(
                    "\(text) lies outside the \(width)x\(height) image (x in 0...\(width), y in 0...\(height))")
            }
            guard b.x0 < b.x1, b.y0 < b.y1 else {
                throw SAM2PromptError(
                    "\(text) is empty or reversed; give x0,y0,x1,y1 with x0 < x1 and y0 < y1 (top-left, bottom-right)")
            }
        }
    }

    static func format(_ v: Float) -> String {
        v == v.rounded() && abs(v) < 1e7 ? String(Int(v)) : "\(v)"
    }

    // MARK: Parsing (the command line's --point/--box and the server's point=/box= share it)

    /// "x,y" or "x,y,label" (label 1 positive, the default, or 0 negative).
    public static func parsePoint(_ text: String) throws -> SAM2Point {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false)
        guard parts.count == 2 || parts.count == 3 else {
            throw SAM2PromptError("point '\(text)' must be x,y or x,y,label")
        }
        let x = try number(parts[0], "x", in: "point '\(text)'"), y = try number(parts[1], "y", in: "point '\(text)'")
        var label = 1
        if parts.count == 3 {
            guard let l = Int(parts[2].trimmingCharacters(in: .whitespaces)), l == 0 || l == 1 else {
                throw SAM2PromptError("point '\(text)': label '\(parts[2])' must be 1 (positive) or 0 (negative)")
            }
            label = l
        }
        return SAM2Point(x: x, y: y, label: label)
    }

    /// "x0,y0,x1,y1": top-left and bottom-right corners.
    public static func parseBox(_ text: String) throws -> SAM2Box {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false)
        guard parts.count == 4 else { throw SAM2PromptError("box '\(text)' must be x0,y0,x1,y1") }
        let names = ["x0", "y0", "x1", "y1"]
        let v = try (0..<4).map { try number(parts[$0], names[$0], in: "box '\(text)'") }
        return SAM2Box(x0: v[0], y0: v[1], x1: v[2], y1: v[3])
    }

    /// Parses repeated point values and at most one box.
    public static func parse(points: [String], boxes: [String]) throws -> SAM2Prompt {
        guard boxes.count <= 1 else { throw SAM2PromptError("at most one box may be given, got \(boxes.count)") }
        return SAM2Prompt(points: try points.map(parsePoint), box: try boxes.first.map(parseBox))
    }

    static func number(_ s: Substring, _ name: String, in what: String) throws -> Float {
        let t = s.trimmingCharacters(in: .whitespaces)
        guard let v = Float(t), v.isFinite else {
            throw SAM2PromptError("\(what): \(name) '\(s)' is not a number")
        }
        return v
    }
}

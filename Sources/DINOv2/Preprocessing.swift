import RAGSegIO
import TensorCore

/// Image -> network input for retrieval embeddings.
///
/// Frozen choice: RGB float in [0, 1] (gray replicated to 3 channels, alpha dropped, 8-bit / 255, 16-bit / 65535),
/// resized straight to size x size (no aspect-preserving crop: medical slices are mostly square and the whole
/// field of view matters) with PyTorch's antialiased bicubic (`F.interpolate(mode="bicubic", antialias=True)`,
/// i.e. torchvision's tensor `Resize`; Keys a = -0.5, support widened when downscaling), in float with no
/// rounding or clamping, then ImageNet mean/std. Fixture: tools/make_dinov2_fixtures.py `preprocess_reference`.
public enum DINOv2Preprocessing {
    public static let mean: [Float] = [0.485, 0.456, 0.406]
    public static let std: [Float] = [0.229, 0.224, 0.225]

    /// [3, size, size] normalized pixels for `image`.
    public static func pixels(_ image: PNGImage, size: Int) -> Tensor {
        let h = image.height, w = image.width, c = image.channels
        let maxValue = Float((1 << image.bitDepth) - 1)
        let rgb = Tensor(shape: [3, h, w]) { out in
            image.pixels.withUnsafeBufferPointer { src in
                for ch in 0..<3 {
                    // Gray (+alpha) images repeat channel 0; RGB(A) takes channels 0...2.
                    let from = c >= 3 ? ch : 0
                    let plane = out.baseAddress! + ch * h * w
                    for i in 0..<(h * w) { plane[i] = Float(src[i * c + from]) / maxValue }
                }
            }
        }
        var resized = interpolate(rgb, size: (height: size, width: size), mode: .bicubic, antialias: true)
        resized.withUnsafeMutableBufferPointer { buf in
            for ch in 0..<3 {
                let m = mean[ch], s = std[ch]
                for i in (ch * size * size)..<((ch + 1) * size * size) { buf[i] = (buf[i] - m) / s }
            }
        }
        return resized
    }
}

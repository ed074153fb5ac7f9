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
    /// [3, size, size] normalized pixels for `image`; a malformed image is an error naming `name`.
    public static func pixels(_ image: PNGImage, size: Int, name: String = "image") throws -> Tensor {
        let unit = try ImageNetNormalization.unitPlanes(image, name: name)
        return ImageNetNormalization.normalized(
            interpolate(unit, size: (height: size, width: size), mode: .bicubic, antialias: true))
    }
}

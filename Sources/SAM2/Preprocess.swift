// Image preprocessing for the SAM 2 image encoder (`SAM2Transforms`, docs/sam2.md image encoder).
// Chosen path: the official `SAM2ImagePredictor.set_image` one — pixel values to float in [0, 1],
// resize to size x size (aspect ratio NOT kept, no padding) with *antialiased bilinear* on the float
// image (torchvision Resize on a float tensor = F.interpolate(bilinear, align_corners=False,
// antialias=True)), then ImageNet mean/std normalization. It is exactly reproducible (no 8-bit rounding
// between passes, unlike the video predictor's PIL bicubic or HF's uint8 resize).
// Grayscale is replicated to 3 channels (what PIL's convert("RGB") does); alpha is ignored;
// 16-bit PNGs are scaled by 1/65535 (8-bit by 1/255).
import RAGSegIO
import TensorCore

public enum SAM2Preprocess {
    /// PNG file -> [3, size, size] normalized fp32.
    public static func imageTensor(path: String, size: Int = 1024) throws -> Tensor {
        try imageTensor(PNG.read(path), size: size, name: path)
    }

    /// Decoded image -> [3, size.height, size.width] normalized fp32.
    public static func imageTensor(_ image: PNGImage, size: Int = 1024, name: String = "image") throws -> Tensor {
        try imageTensor(image, height: size, width: size, name: name)
    }

    public static func imageTensor(_ image: PNGImage, height: Int, width: Int, name: String = "image") throws -> Tensor
    {
        let unit = try ImageNetNormalization.unitPlanes(image, name: name)
        let resized =
            (image.height == height && image.width == width)
            ? unit
            : interpolate(unit, size: (height: height, width: width), mode: .bilinear, antialias: true)
        return ImageNetNormalization.normalized(resized)
    }
}

// Image preprocessing for the SAM 2 image encoder (sam2.md §2).
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
    public static let mean: [Float] = [0.485, 0.456, 0.406]
    public static let std: [Float] = [0.229, 0.224, 0.225]

    /// PNG file -> [3, size, size] normalized fp32.
    public static func imageTensor(path: String, size: Int = 1024) throws -> Tensor {
        try imageTensor(PNG.read(path), size: size, name: path)
    }

    /// Decoded image -> [3, size.height, size.width] normalized fp32.
    public static func imageTensor(_ image: PNGImage, size: Int = 1024, name: String = "image") throws -> Tensor {
        try imageTensor(image, height: size, width: size, name: name)
    }

    public static func imageTensor(_ image: PNGImage, height: Int, width: Int, name: String = "image") throws -> Tensor {
        guard image.width > 0, image.height > 0 else {
            throw RAGSegIOError(path: name, message: "empty image (\(image.width)x\(image.height))")
        }
        guard image.bitDepth == 8 || image.bitDepth == 16 else {
            throw RAGSegIOError(path: name, message: "unsupported bit depth \(image.bitDepth) (expected 8 or 16)")
        }
        let isGray: Bool
        switch image.channels {
        case 1, 2: isGray = true
        case 3, 4: isGray = false
        default: throw RAGSegIOError(path: name, message: "unsupported channel count \(image.channels)")
        }
        let pixels = image.width * image.height
        guard image.pixels.count == pixels * image.channels else {
            throw RAGSegIOError(path: name, message: "pixel buffer holds \(image.pixels.count) values, expected \(pixels * image.channels)")
        }
        let maxValue = Float((1 << image.bitDepth) - 1)
        // A gray image is resized once and replicated: the three channels would be identical anyway.
        let planes = isGray ? 1 : 3
        let unit = Tensor(shape: [planes, image.height, image.width]) { out in
            image.pixels.withUnsafeBufferPointer { src in
                for p in 0..<pixels {
                    for c in 0..<planes {
                        out[c * pixels + p] = Float(src[p * image.channels + c]) / maxValue
                    }
                }
            }
        }
        let resized = (image.height == height && image.width == width)
            ? unit
            : interpolate(unit, size: (height: height, width: width), mode: .bilinear, antialias: true)
        let plane = height * width
        return Tensor(shape: [3, height, width]) { out in
            resized.withUnsafeBufferPointer { src in
                for c in 0..<3 {
                    let from = src.baseAddress! + (isGray ? 0 : c) * plane
                    let m = mean[c], s = std[c]
                    for i in 0..<plane { out[c * plane + i] = (from[i] - m) / s }
                }
            }
        }
    }
}

// Image -> network input, the parts both encoders share: pixel values to [0, 1] floats and ImageNet
// mean/std normalization. Each model resizes in between with its own filter (SAM 2: antialiased bilinear,
// DINOv2: antialiased bicubic); resampling is per plane, so a gray image is resized as one plane and
// replicated to RGB only by the normalization (identical values, a third of the work).
import TensorCore

public enum ImageNetNormalization {
    public static let mean: [Float] = [0.485, 0.456, 0.406]
    public static let std: [Float] = [0.229, 0.224, 0.225]

    /// Pixel values / (2^bitDepth − 1) as [planes, H, W]: one plane for gray (+alpha), three for RGB(A);
    /// alpha is dropped. A malformed image is an error naming `name`.
    public static func unitPlanes(_ image: PNGImage, name: String = "image") throws -> Tensor {
        guard image.width > 0, image.height > 0 else {
            throw RAGSegIOError(path: name, message: "empty image (\(image.width)x\(image.height))")
        }
        guard image.bitDepth == 8 || image.bitDepth == 16 else {
            throw RAGSegIOError(path: name, message: "unsupported bit depth \(image.bitDepth) (expected 8 or 16)")
        }
        let planes: Int
        switch image.channels {
        case 1, 2: planes = 1
        case 3, 4: planes = 3
        default: throw RAGSegIOError(path: name, message: "unsupported channel count \(image.channels)")
        }
        let pixels = image.width * image.height
        guard image.pixels.count == pixels * image.channels else {
            throw RAGSegIOError(
                path: name,
                message: "pixel buffer holds \(image.pixels.count) values, expected \(pixels * image.channels)")
        }
        let maxValue = Float((1 << image.bitDepth) - 1)
        return Tensor(shape: [planes, image.height, image.width]) { out in
            image.pixels.withUnsafeBufferPointer { src in
                for p in 0..<pixels {
                    for c in 0..<planes {
                        out[c * pixels + p] = Float(src[p * image.channels + c]) / maxValue
                    }
                }
            }
        }
    }

    /// [1 or 3, H, W] in [0, 1] -> [3, H, W] of (value − mean) / std per channel (one plane is gray,
    /// used for all three channels).
    public static func normalized(_ planes: Tensor) -> Tensor {
        precondition(
            planes.rank == 3 && (planes.dim(0) == 1 || planes.dim(0) == 3),
            "ImageNet normalization needs [1 or 3, H, W], got \(planes.shape)")
        let height = planes.dim(1), width = planes.dim(2), plane = height * width
        let isGray = planes.dim(0) == 1
        return Tensor(shape: [3, height, width]) { out in
            planes.withUnsafeBufferPointer { src in
                for c in 0..<3 {
                    let from = src.baseAddress! + (isGray ? 0 : c) * plane
                    let m = mean[c], s = std[c]
                    for i in 0..<plane { out[c * plane + i] = (from[i] - m) / s }
                }
            }
        }
    }
}

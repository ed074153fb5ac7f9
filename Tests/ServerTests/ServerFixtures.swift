import Foundation
import RAGSegIO
import SupportBank

/// The fixture models and synthetic cases of PipelineTests (FixtureModels / SyntheticCases there), for this
/// target: the tiny reference DINOv2 and SAM 2 memory-path checkpoints, and ellipse-on-background cases.
enum ServerFixtures {
    static let testsDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    static let dinov2 = testsDirectory.appendingPathComponent("DINOv2Tests/Fixtures/plain").path
    static let sam2 = testsDirectory.appendingPathComponent("SAM2Tests/Fixtures/memory/weights.safetensors").path

    /// A bright textured ellipse (the object, the mask) on a smooth background with a distractor blob.
    static func makeCase(seed: UInt64, width: Int, height: Int) -> (image: [UInt8], mask: [UInt8]) {
        var state = seed &* 0x9E3779B97F4A7C15 | 1
        func uniform() -> Double {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Double(state >> 11) / Double(1 << 53)
        }
        let cx = (0.3 + 0.4 * uniform()) * Double(width), cy = (0.3 + 0.4 * uniform()) * Double(height)
        let rx = (0.12 + 0.15 * uniform()) * Double(width), ry = (0.12 + 0.15 * uniform()) * Double(height)
        let bx = uniform() * Double(width), by = uniform() * Double(height)
        var image = [UInt8](repeating: 0, count: width * height), mask = image
        for y in 0..<height {
            for x in 0..<width {
                let u = (Double(x) - cx) / rx, v = (Double(y) - cy) / ry
                let inside = u * u + v * v <= 1
                var value = 60 + 25 * sin(Double(x) / 9) * cos(Double(y) / 13)
                if (Double(x) - bx) * (Double(x) - bx) + (Double(y) - by) * (Double(y) - by) < 64 { value += 50 }
                if inside { value = 170 + 20 * sin(u * 5) * cos(v * 4) }
                value += 16 * (uniform() - 0.5)
                image[y * width + x] = UInt8(max(0, min(255, value.rounded())))
                mask[y * width + x] = inside ? 255 : 0
            }
        }
        return (image, mask)
    }

    /// Writes a case as images/case_i.png and masks/case_i.png under `directory`.
    static func write(_ c: (image: [UInt8], mask: [UInt8]), index i: Int, width: Int, height: Int, to directory: URL) throws -> CaseSource {
        let images = directory.appendingPathComponent("images"), masks = directory.appendingPathComponent("masks")
        try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: masks, withIntermediateDirectories: true)
        let image = images.appendingPathComponent("case_\(i).png").path
        let mask = masks.appendingPathComponent("case_\(i).png").path
        try PNG.writeGray8(c.image, width: width, height: height, to: image)
        try PNG.writeGray8(c.mask, width: width, height: height, to: mask)
        return CaseSource(image: image, mask: mask)
    }
}

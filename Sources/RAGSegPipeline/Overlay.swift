// `--overlay`: an RGB picture of the image with the predicted mask's outline and a caption (the ids of
// the retrieved cases), for a person to check a result at a glance.
import RAGSegIO

public enum Overlay {
    /// RGB 8-bit pixels: the image in gray (color images keep their color), the mask's inner boundary
    /// in yellow over a faint tint, and `caption` (digits, spaces and `#,:-`) in the top-left corner.
    public static func render(_ image: PNGImage, mask: [Bool], caption: String) -> [UInt8] {
        let w = image.width, h = image.height, c = image.channels
        precondition(mask.count == w * h, "overlay mask has \(mask.count) pixels for \(w)x\(h)")
        let shift = image.bitDepth == 16 ? 8 : 0
        var rgb = [UInt8](repeating: 0, count: w * h * 3)
        for i in 0..<(w * h) {
            for ch in 0..<3 {
                let v = UInt8(image.pixels[i * c + (c >= 3 ? ch : 0)] >> shift)
                // Tint inside the mask towards yellow so thin structures stay visible.
                rgb[i * 3 + ch] = mask[i] && ch < 2 ? UInt8((Int(v) * 3 + 255) / 4) : v
            }
        }
        for y in 0..<h {
            for x in 0..<w where mask[y * w + x] {
                let edge =
                    x == 0 || y == 0 || x == w - 1 || y == h - 1
                    || !mask[y * w + x - 1] || !mask[y * w + x + 1] || !mask[(y - 1) * w + x] || !mask[(y + 1) * w + x]
                if edge { setPixel(&rgb, w, x, y, (255, 230, 0)) }
            }
        }
        drawText(&rgb, width: w, height: h, caption)
        return rgb
    }

    /// 3x5 glyphs, one row per string, '#' = ink.
    static let glyphs: [Character: [String]] = [
        "0": ["###", "#.#", "#.#", "#.#", "###"], "1": [".#.", "##.", ".#.", ".#.", "###"],
        "2": ["###", "..#", "###", "#..", "###"], "3": ["###", "..#", "###", "..#", "###"],
        "4": ["#.#", "#.#", "###", "..#", "..#"], "5": ["###", "#..", "###", "..#", "###"],
        "6": ["###", "#..", "###", "#.#", "###"], "7": ["###", "..#", "..#", "..#", "..#"],
        "8": ["###", "#.#", "###", "#.#", "###"], "9": ["###", "#.#", "###", "..#", "###"],
        "#": ["#.#", "###", "#.#", "###", "#.#"], ",": ["...", "...", "...", ".#.", "#.."],
        ":": ["...", ".#.", "...", ".#.", "..."], "-": ["...", "...", "###", "...", "..."],
        " ": ["...", "...", "...", "...", "..."],
    ]

    static func setPixel(_ rgb: inout [UInt8], _ w: Int, _ x: Int, _ y: Int, _ color: (UInt8, UInt8, UInt8)) {
        let i = (y * w + x) * 3
        rgb[i] = color.0
        rgb[i + 1] = color.1
        rgb[i + 2] = color.2
    }

    /// White glyphs at scale 2 on a black box; characters without a glyph are skipped; clipped to the image.
    static func drawText(_ rgb: inout [UInt8], width w: Int, height h: Int, _ text: String) {
        let scale = 2, advance = 4 * scale
        let chars = text.filter { glyphs[$0] != nil }
        guard !chars.isEmpty else { return }
        let boxW = min(w, chars.count * advance + scale), boxH = min(h, 5 * scale + 2 * scale)
        for y in 0..<boxH { for x in 0..<boxW { setPixel(&rgb, w, x, y, (0, 0, 0)) } }
        for (n, ch) in chars.enumerated() {
            for (row, bits) in glyphs[ch]!.enumerated() {
                for (col, bit) in bits.enumerated() where bit == "#" {
                    for dy in 0..<scale {
                        for dx in 0..<scale {
                            let x = scale + n * advance + col * scale + dx, y = scale + row * scale + dy
                            if x < w && y < h { setPixel(&rgb, w, x, y, (255, 255, 255)) }
                        }
                    }
                }
            }
        }
    }
}

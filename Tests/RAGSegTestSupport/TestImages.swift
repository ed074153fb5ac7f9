// Gray PNG image/mask folders for the suites that ingest files (ingest, the `ragseg index` CLI, concurrency).
import Foundation
import RAGSegIO

/// Writes a w x h gray PNG whose pixels come from f(x, y).
public func writeGray(_ path: String, _ w: Int, _ h: Int, _ f: (Int, Int) -> UInt8) throws {
    var pixels = [UInt8](repeating: 0, count: w * h)
    for y in 0..<h { for x in 0..<w { pixels[y * w + x] = f(x, y) } }
    try PNG.writeGray8(pixels, width: w, height: h, to: path)
}

/// A folder pair images/ + masks/ of n cases named case000...; returns (images, masks).
public func writeDataset(_ dir: String, count: Int, size: Int = 32, maskValue: UInt8 = 255) throws -> (String, String) {
    let images = (dir as NSString).appendingPathComponent("images")
    let masks = (dir as NSString).appendingPathComponent("masks")
    try FileManager.default.createDirectory(atPath: images, withIntermediateDirectories: true)
    try FileManager.default.createDirectory(atPath: masks, withIntermediateDirectories: true)
    for i in 0..<count {
        let name = String(format: "case%03d.png", i)
        try writeGray((images as NSString).appendingPathComponent(name), size, size) { x, y in
            UInt8((x * 5 + y * 3 + i * 11) % 256)
        }
        try writeGray((masks as NSString).appendingPathComponent(name), size, size) { x, y in
            abs(x - (i % size)) < 4 && abs(y - size / 2) < 4 ? maskValue : 0
        }
    }
    return (images, masks)
}

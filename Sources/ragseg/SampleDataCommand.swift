// `ragseg sample-data`: a small synthetic segmentation dataset, so the quick start needs nothing but ragseg.
import ArgumentParser
import Foundation
import RAGSegIO
import RAGSegPipeline

struct SampleData: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sample-data",
        abstract:
            "Write a small synthetic segmentation dataset (gray \"scans\" with one bright ellipse each, 0/255 masks).",
        discussion: """
            Each case is an 8-bit grayscale image (smooth shaded background, noise, three bright distractor \
            blobs) with one bright, slightly textured ellipse whose mask is the ground truth. Writes \
            OUT_DIR/images/case_NNN.png and OUT_DIR/masks/case_NNN.png; the same --seed gives the same files. \
            It exercises the whole pipeline on any machine; it is NOT medical data and says nothing about \
            clinical accuracy.
            """)

    @Argument(
        help: ArgumentHelp(
            "Output folder (created if missing; its images/ and masks/ must be empty or absent).", valueName: "out-dir")
    )
    var out: String

    @Option(help: "Number of cases (1...10000).")
    var cases = 24

    @Option(help: "Image width and height in pixels (32...4096).")
    var size = 160

    @Option(help: "Random seed: the same seed writes the same files.")
    var seed: UInt64 = 1

    @Option(
        help: ArgumentHelp(
            "Every Nth case (the Nth, 2Nth, ...) shows no object and has an empty mask; 0: none.",
            discussion:
                "Like the slices of a scan that miss the organ. The other cases are the same as without the option."))
    var emptyEvery = 0

    @Flag(
        name: .customLong("3d"),
        help: ArgumentHelp(
            "Write 3-D CT-like volumes in nnU-Net v2 layout instead of PNGs.",
            discussion: """
                OUT_DIR/imagesTr/case_NNN_0000.nii.gz (int16 HU: air, a soft-tissue body, an "organ" ellipsoid with a \
                "lesion" sphere), OUT_DIR/labelsTr/case_NNN.nii.gz (uint8: 0 background, 1 organ, 2 lesion) and \
                OUT_DIR/dataset.json (channel 0 "CT"). Voxels are 1.5 x 1.5 x 3 mm, --size x 7/8 --size x --slices, \
                stored permuted and flipped (posterior, left, superior) so readers must honour the affine.
                """))
    var threeD = false

    @Option(help: "With --3d: slices per volume (4...512).")
    var slices = 24

    func validate() throws {
        guard (1...10000).contains(cases) else { throw ValidationError("--cases must be in 1...10000, got \(cases)") }
        guard (32...4096).contains(size) else { throw ValidationError("--size must be in 32...4096, got \(size)") }
        guard emptyEvery >= 0 else {
            throw ValidationError("--empty-every must be 0 (none) or positive, got \(emptyEvery)")
        }
        if threeD {
            guard size <= 512 else { throw ValidationError("--size must be in 32...512 with --3d, got \(size)") }
            guard (4...512).contains(slices) else {
                throw ValidationError("--slices must be in 4...512, got \(slices)")
            }
            guard emptyEvery == 0 else {
                throw ValidationError("--empty-every applies to 2-D cases only, not with --3d")
            }
        }
    }

    func run() throws {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        if fm.fileExists(atPath: out, isDirectory: &isDirectory), !isDirectory.boolValue {
            throw RAGSegIOError(path: out, message: "exists and is not a folder")
        }
        let folders = (threeD ? ["imagesTr", "labelsTr"] : ["images", "masks"]).map {
            (out as NSString).appendingPathComponent($0)
        }
        for folder in folders {
            if fm.fileExists(atPath: folder, isDirectory: &isDirectory) {
                guard isDirectory.boolValue else {
                    throw RAGSegIOError(path: folder, message: "exists and is not a folder")
                }
                let entries = try fm.contentsOfDirectory(atPath: folder)
                guard entries.isEmpty else {
                    throw RAGSegIOError(
                        path: folder,
                        message:
                            "is not empty (\(entries.count) entries); sample-data writes only into empty or new folders"
                    )
                }
            }
            do {
                try fm.createDirectory(atPath: folder, withIntermediateDirectories: true)
            } catch {
                throw RAGSegIOError(path: folder, message: "cannot create the folder: \(error.localizedDescription)")
            }
        }
        if threeD { return try writeVolumes(imagesFolder: folders[0], labelsFolder: folders[1]) }
        var rng = SeededRandom(state: seed)
        for i in 0..<cases {
            let empty = emptyEvery > 0 && (i + 1) % emptyEvery == 0
            let (image, mask) = SampleData.makeCase(size: size, rng: &rng, withObject: !empty)
            let name = String(format: "case_%03d.png", i)
            try PNG.writeGray8(
                image, width: size, height: size, to: (folders[0] as NSString).appendingPathComponent(name))
            try PNG.writeGray8(
                mask, width: size, height: size, to: (folders[1] as NSString).appendingPathComponent(name))
        }
        let empties = emptyEvery > 0 ? cases / emptyEvery : 0
        print(
            """
            wrote \(cases) synthetic cases (\(size)x\(size), seed \
            \(seed)\(empties > 0 ? ", \(empties) without an object" : "")) to \(out)
            """
        )
    }

    /// The --3d dataset: cases from SyntheticVolumes (deterministic by seed), then dataset.json.
    func writeVolumes(imagesFolder: String, labelsFolder: String) throws {
        for i in 0..<cases {
            let c = SyntheticVolumes.makeCase(index: i, size: size, slices: slices, seed: seed)
            let id = SyntheticVolumes.caseID(i)
            try NIfTI.write(
                c.image, to: (imagesFolder as NSString).appendingPathComponent(NnUNetDataset.imageFileName(caseID: id)))
            try NIfTI.write(c.labels, to: (labelsFolder as NSString).appendingPathComponent(id + ".nii.gz"))
        }
        let datasetPath = (out as NSString).appendingPathComponent("dataset.json")
        do {
            try Data(SyntheticVolumes.datasetJSON(cases: cases).utf8).write(to: URL(fileURLWithPath: datasetPath))
        } catch {
            throw RAGSegIOError(path: datasetPath, message: "cannot write: \(error.localizedDescription)")
        }
        let shape = SyntheticVolumes.shape(size: size, slices: slices)
        print(
            """
            wrote \(cases) synthetic CT-like volumes (\(shape.map(String.init).joined(separator: "x")) voxels of \
            1.5x1.5x3 mm, seed \(seed)) 
            """
                + "in nnU-Net layout to \(out)")
    }

    /// One case: the image and its 0/255 mask, row-major `size * size` bytes each. Without the object the
    /// same random numbers are drawn, so the cases after it do not change.
    static func makeCase(size: Int, rng: inout SeededRandom, withObject: Bool = true) -> (image: [UInt8], mask: [UInt8])
    {
        let s = Double(size)
        func uniform(_ low: Double, _ high: Double) -> Double { low + (high - low) * Double(rng.uniform()) }
        let cx = uniform(0.3, 0.7) * s, cy = uniform(0.3, 0.7) * s
        let rx = uniform(0.10, 0.25) * s, ry = uniform(0.10, 0.25) * s
        let angle = uniform(0, .pi)
        let ca = cos(angle), sa = sin(angle)
        let blobs = (0..<3).map { _ in (x: uniform(0, s), y: uniform(0, s), r: uniform(0.03, 0.08) * s) }
        let tilt = uniform(-0.3, 0.3)
        var image = [UInt8](repeating: 0, count: size * size)
        var mask = [UInt8](repeating: 0, count: size * size)
        for y in 0..<size {
            for x in 0..<size {
                let fx = Double(x), fy = Double(y)
                let dx = fx - cx, dy = fy - cy
                let u = (dx * ca + dy * sa) / rx, v = (-dx * sa + dy * ca) / ry
                let inside = withObject && u * u + v * v <= 1
                var value: Double
                if inside {
                    value = 170 + 20 * sin(u * 5) * cos(v * 4)
                } else {
                    value = 60 + 40 * tilt * (fx - s / 2) / s + 25 * sin(fx / 9) * cos(fy / 13)
                    for b in blobs where (fx - b.x) * (fx - b.x) + (fy - b.y) * (fy - b.y) <= b.r * b.r { value += 45 }
                }
                value += 8 * Double(rng.gaussian())
                image[y * size + x] = UInt8(max(0, min(255, value.rounded())))
                mask[y * size + x] = inside ? 255 : 0
            }
        }
        return (image, mask)
    }
}

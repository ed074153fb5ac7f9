// A small synthetic CT-like dataset in nnU-Net v2 layout, so volume commands can be tried and tested
// without patient data. Each case: an int16 HU volume (air, a soft-tissue body, an "organ" ellipsoid with
// a "lesion" sphere inside) and its uint8 label map. Voxels are stored in a permuted, flipped order
// (axis 0 toward posterior, axis 1 toward the patient's left, axis 2 toward superior) so that every
// reader of these files must honour the affine. NOT medical data.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public enum SyntheticVolumes {
    /// Voxel sizes (mm) along the stored axes 0, 1, 2.
    public static let spacing: [Double] = [1.5, 1.5, 3.0]
    public static let labelNames: [(name: String, value: Int)] = [("background", 0), ("organ", 1), ("lesion", 2)]

    public struct Case: Sendable {
        public var image: NIfTIImage
        public var labels: NIfTIImage
        /// The organ ellipsoid's semi-axes (mm) and volume 4/3 pi a b c (mm³), lesion included.
        public var organRadii: [Double]
        public var organVolume: Double
        /// The lesion sphere's radius (mm) and volume (mm³).
        public var lesionRadius: Double
        public var lesionVolume: Double
    }

    /// The stored grid for in-plane `size` and `slices`: size x (7/8 size) x slices (not square, so a
    /// transposed reader shows).
    public static func shape(size: Int, slices: Int) -> [Int] { [size, size * 7 / 8, slices] }

    /// The voxel-to-world affine: axis 0 along -y, axis 1 along -x, axis 2 along +z, centred on the origin.
    public static func affine(shape: [Int]) -> Affine {
        let half = (0..<3).map { Double(shape[$0] - 1) * spacing[$0] / 2 }
        return Affine(rows: [
            [0, -spacing[1], 0, half[1]],
            [-spacing[0], 0, 0, half[0]],
            [0, 0, spacing[2], -half[2]],
        ])
    }

    /// Case `index` of the dataset with `seed`: the same arguments give the same bytes.
    public static func makeCase(index: Int, size: Int, slices: Int, seed: UInt64) -> Case {
        var rng = SeededRandom(state: seed &+ 0x9E37_79B9_7F4A_7C15 &* UInt64(index + 1))
        let shape = Self.shape(size: size, slices: slices)
        let affine = Self.affine(shape: shape)
        // World extents (mm) of the volume, centred on 0: x from axis 1, y from axis 0, z from axis 2.
        let halfX = Double(shape[1] - 1) * spacing[1] / 2, halfY = Double(shape[0] - 1) * spacing[0] / 2
        let halfZ = Double(shape[2] - 1) * spacing[2] / 2
        let body = [halfX * 0.85, halfY * 0.8]
        let organRadii = [
            rng.uniform(0.30, 0.45) * halfX, rng.uniform(0.30, 0.45) * halfY, rng.uniform(0.45, 0.65) * halfZ,
        ]
        let organCentre = [
            rng.uniform(-0.2, 0.2) * halfX, rng.uniform(-0.2, 0.2) * halfY, rng.uniform(-0.15, 0.15) * halfZ,
        ]
        let smallest = organRadii.min()!
        let lesionRadius = rng.uniform(0.30, 0.40) * smallest
        // Inside the organ: offset plus radius stays below its smallest semi-axis.
        let lesionCentre = (0..<3).map { organCentre[$0] + rng.uniform(-0.25, 0.25) * smallest }
        let organHU = rng.uniform(70, 110), lesionHU = rng.uniform(-10, 25)

        let count = shape.reduce(1, *)
        var hu = [Int16](repeating: 0, count: count)
        var labels = [UInt8](repeating: 0, count: count)
        var n = 0
        for k in 0..<shape[2] {
            for j in 0..<shape[1] {
                for i in 0..<shape[0] {
                    let p = affine.apply([Double(i), Double(j), Double(k)])
                    var value: Double
                    var label: UInt8 = 0
                    let inBody = insideEllipsoid(Array(p[0..<2]), centre: [0, 0], radii: body)
                    let organ = insideEllipsoid(p, centre: organCentre, radii: organRadii)
                    let lesion = insideEllipsoid(
                        p, centre: lesionCentre, radii: [lesionRadius, lesionRadius, lesionRadius])
                    if lesion {
                        value = lesionHU; label = 2
                    } else if organ {
                        value = organHU; label = 1
                    } else if inBody {
                        value = 40 + 15 * (p[0] / body[0])
                    } else {
                        value = -1000
                    }
                    value += 12 * rng.normal()
                    hu[n] = Int16(max(-1024, min(3071, value.rounded())))
                    labels[n] = label
                    n += 1
                }
            }
        }
        var header = NIfTIHeader(shape: shape, datatype: .int16)
        header.setSform(affine, code: 1)
        header.setQform(affine, code: 1)
        header.xyztUnits = 2  // mm
        header.setDescription("RAGSeg synthetic CT-like volume (not medical data)")
        let image = NIfTIImage(header: header, voxels: .int16(hu))
        let labelImage = NIfTIImage.labelMap(VoxelGrid(shape: shape, values: labels.map(UInt16.init)), like: header)
        let fourThirdsPi = 4.0 / 3.0 * Double.pi
        return Case(
            image: image, labels: labelImage, organRadii: organRadii,
            organVolume: fourThirdsPi * organRadii.reduce(1, *),
            lesionRadius: lesionRadius, lesionVolume: fourThirdsPi * lesionRadius * lesionRadius * lesionRadius)
    }

    /// Whether `p` lies in the axis-aligned ellipse/ellipsoid (boundary included).
    static func insideEllipsoid(_ p: [Double], centre: [Double], radii: [Double]) -> Bool {
        var sum = 0.0
        for axis in 0..<p.count {
            let t = (p[axis] - centre[axis]) / radii[axis]
            sum += t * t
        }
        return sum <= 1
    }

    /// nnU-Net v2's dataset.json for `cases` training cases (keys sorted, two-space indent).
    public static func datasetJSON(cases: Int) -> String {
        let labels = labelNames.map { "    \"\($0.name)\": \($0.value)" }.joined(separator: ",\n")
        return """
            {
              "channel_names": {
                "0": "CT"
              },
              "description": "RAGSeg synthetic CT-like volumes (ellipsoids; not medical data)",
              "file_ending": ".nii.gz",
              "labels": {
            \(labels)
              },
              "name": "RAGSegSynthetic3D",
              "numTraining": \(cases)
            }

            """
    }

    /// "case_007" for index 7.
    public static func caseID(_ index: Int) -> String {
        let digits = String(index)
        return "case_" + String(repeating: "0", count: max(0, 3 - digits.count)) + digits
    }
}

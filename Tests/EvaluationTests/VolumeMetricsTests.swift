import Foundation
import RAGSegIO
import XCTest
@testable import Evaluation

/// 3-D Dice, IoU and HD95 (mm) against MedPy's own `hd95(result, reference, voxelspacing)` on small
/// volumes with anisotropic spacing (tools/make_volume_metric_fixtures.py).
final class VolumeMetricsTests: XCTestCase {
    struct Expected: Decodable {
        let name: String
        let spacing: [Double]
        let dice: Double
        let iou: Double
        let hd95: Double?
    }

    func fixture(_ name: String) throws -> String {
        try XCTUnwrap(
            Bundle.module.path(forResource: name, ofType: nil, inDirectory: "Fixtures/volumes"),
            "missing fixture \(name)")
    }

    /// A numpy (n0, n1, n2) array (last index fastest) as a volume with the first index fastest.
    func volume(_ name: String) throws -> BinaryVolume {
        let array = try NPY.readArray(try fixture(name + ".npy"))
        let values = try XCTUnwrap(array.uint8, "\(name) is not uint8")
        XCTAssertEqual(array.shape.count, 3)
        let (n0, n1, n2) = (array.shape[0], array.shape[1], array.shape[2])
        var voxels = [Bool](repeating: false, count: values.count)
        for i in 0..<n0 {
            for j in 0..<n1 {
                for k in 0..<n2 { voxels[i + n0 * (j + n1 * k)] = values[(i * n1 + j) * n2 + k] != 0 }
            }
        }
        return BinaryVolume(shape: array.shape, voxels: voxels)
    }

    func testScoresMatchMedPy() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: try fixture("expected.json")))
        let cases = try JSONDecoder().decode([Expected].self, from: data)
        XCTAssertEqual(cases.map(\.name), ["blobs", "shifted", "border", "empty", "bothempty"])
        for c in cases {
            let scores = volumeScores(
                prediction: try volume(c.name + "_pred"), truth: try volume(c.name + "_truth"), spacing: c.spacing)
            XCTAssertEqual(scores.dice, c.dice, accuracy: 1e-12, c.name)
            XCTAssertEqual(scores.iou, c.iou, accuracy: 1e-12, c.name)
            if let expected = c.hd95 {
                XCTAssertEqual(try XCTUnwrap(scores.hd95, c.name), expected, accuracy: 1e-6, c.name)
            } else {
                XCTAssertNil(scores.hd95, c.name)
            }
        }
    }

    func testHandWorkedExampleInMillimetres() {
        // One voxel each, 2 voxels apart along k (3 mm slices) and 1 along i (0.5 mm): every surface distance
        // is sqrt(6² + 0.5²) mm.
        let shape = [4, 3, 5]
        var a = [Bool](repeating: false, count: 60), b = a
        a[1 + 4 * (1 + 3 * 1)] = true
        b[2 + 4 * (1 + 3 * 3)] = true
        let s = volumeScores(
            prediction: BinaryVolume(shape: shape, voxels: a), truth: BinaryVolume(shape: shape, voxels: b),
            spacing: [0.5, 1, 3])
        XCTAssertEqual(s.dice, 0)
        XCTAssertEqual(try XCTUnwrap(s.hd95), (36.0 + 0.25).squareRoot(), accuracy: 1e-12)
        let same = volumeScores(
            prediction: BinaryVolume(shape: shape, voxels: a), truth: BinaryVolume(shape: shape, voxels: a),
            spacing: [0.5, 1, 3])
        XCTAssertEqual(same.dice, 1)
        XCTAssertEqual(same.hd95, 0)
    }

    /// The distance transform is exact: compared with brute force on random sparse features.
    func testDistanceTransformIsExact() {
        var random = SeededRandom(state: 5)
        let shape = [9, 7, 6], spacing = [0.7, 1.9, 2.6]
        let features = (0..<(9 * 7 * 6)).map { _ in random.unit() < 0.04 }
        let fast = squaredDistanceTransform3D(features: features, shape: shape, spacing: spacing)
        let points = features.indices.filter { features[$0] }.map { [$0 % 9, $0 / 9 % 7, $0 / 63] }
        for index in features.indices {
            let c = [index % 9, index / 9 % 7, index / 63]
            let brute = points.map { p in
                (0..<3).reduce(0.0) { $0 + pow(Double(p[$1] - c[$1]) * spacing[$1], 2) }
            }.min()!
            XCTAssertEqual(fast[index], brute, accuracy: 1e-9)
        }
    }
}

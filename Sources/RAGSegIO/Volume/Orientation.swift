// The closest canonical (RAS+) voxel order of a volume, by axis permutations and flips only: no
// resampling, so every voxel keeps its value and the change is undone exactly. The axis choice is
// nibabel's io_orientation: strip voxel sizes, take the nearest orthogonal matrix (polar decomposition),
// then give each voxel axis in turn the world axis it moves along most, never the same world axis twice.

/// For each voxel axis: the world axis (0 x/right, 1 y/anterior, 2 z/superior) it runs along, and
/// whether it runs backwards along it (toward left, posterior or inferior).
public struct AxisOrientation: Sendable, Equatable, CustomStringConvertible {
    public var worldAxis: [Int]
    public var reversed: [Bool]

    public init(worldAxis: [Int], reversed: [Bool]) {
        self.worldAxis = worldAxis
        self.reversed = reversed
    }

    /// The closest orientation for `affine`; a singular 3x3 part (a voxel axis without extent) is an error.
    public static func closest(to affine: Affine, name: String) throws -> AxisOrientation {
        var columns = (0..<3).map { c in (0..<3).map { affine[$0, c] } }
        for c in 0..<3 {
            let length = (columns[c].map { $0 * $0 }.reduce(0, +)).squareRoot()
            guard length > 0, length.isFinite else {
                throw RAGSegIOError(
                    path: name,
                    message:
                        """
                        the affine's voxel axis \(c) has no extent (or is not finite); cannot orient the \
                        volume:\n\(affine)
                        """
                )
            }
            columns[c] = columns[c].map { $0 / length }
        }
        // R[row][column], with unit columns.
        var r = (0..<3).map { row in (0..<3).map { columns[$0][row] } }
        guard let rotation = orthogonalPolarFactor(r) else {
            throw RAGSegIOError(
                path: name,
                message: "the affine's voxel axes are (nearly) parallel; cannot orient the volume:\n\(affine)")
        }
        r = rotation
        var worldAxis = [0, 0, 0], reversed = [false, false, false]
        for voxelAxis in 0..<3 {
            var best = 0
            for row in 1..<3 where abs(r[row][voxelAxis]) > abs(r[best][voxelAxis]) { best = row }
            worldAxis[voxelAxis] = best
            reversed[voxelAxis] = r[best][voxelAxis] < 0
            // This world axis is taken: later voxel axes choose among the others.
            for c in 0..<3 { r[best][c] = 0 }
        }
        return AxisOrientation(worldAxis: worldAxis, reversed: reversed)
    }

    /// "LPS", "RAS", "PLS"... : the direction each voxel axis points toward, as nibabel's aff2axcodes.
    public var codes: String {
        String((0..<3).map { Array(reversed[$0] ? "LPI" : "RAS")[worldAxis[$0]] })
    }

    public var description: String { codes }

    /// The nearest orthogonal matrix to `a` (the orthogonal factor of its polar decomposition), by Newton's
    /// iteration X <- (X + X^-T) / 2, which converges quadratically for non-singular matrices; nil if singular.
    static func orthogonalPolarFactor(_ a: [[Double]]) -> [[Double]]? {
        var x = a
        for _ in 0..<100 {
            let d =
                x[0][0] * (x[1][1] * x[2][2] - x[1][2] * x[2][1]) - x[0][1] * (x[1][0] * x[2][2] - x[1][2] * x[2][0])
                + x[0][2] * (x[1][0] * x[2][1] - x[1][1] * x[2][0])
            guard abs(d) > 1e-10 else { return nil }
            // X^-T is the cofactor matrix divided by the determinant.
            let cofactor: [[Double]] = (0..<3).map { i in
                (0..<3).map { j in
                    let (i1, i2) = ((i + 1) % 3, (i + 2) % 3), (j1, j2) = ((j + 1) % 3, (j + 2) % 3)
                    return x[i1][j1] * x[i2][j2] - x[i1][j2] * x[i2][j1]
                }
            }
            var next = x
            var change = 0.0
            for i in 0..<3 {
                for j in 0..<3 {
                    next[i][j] = (x[i][j] + cofactor[i][j] / d) / 2
                    change = max(change, abs(next[i][j] - x[i][j]))
                }
            }
            x = next
            if change < 1e-15 { break }
        }
        return x
    }
}

/// The permutation and flips that bring a volume from its stored voxel order to the closest canonical
/// order (voxel axes 0, 1, 2 running toward right, anterior, superior), and back.
public struct CanonicalReorientation: Sendable, Equatable {
    public let orientation: AxisOrientation
    /// The stored volume's grid shape.
    public let sourceShape: [Int]

    public init(orientation: AxisOrientation, sourceShape: [Int]) {
        self.orientation = orientation
        self.sourceShape = sourceShape
    }

    /// For a volume read from `name` (for errors).
    public init<T: Sendable & Equatable>(_ volume: Volume<T>, name: String) throws {
        self.init(
            orientation: try AxisOrientation.closest(to: volume.affine, name: name), sourceShape: volume.grid.shape)
    }

    /// The canonical grid's shape: the stored sizes in world-axis order.
    public var canonicalShape: [Int] {
        (0..<3).map { world in sourceShape[sourceAxis(forWorld: world)] }
    }

    /// The stored voxel axis that runs along world axis `world`.
    public func sourceAxis(forWorld world: Int) -> Int {
        orientation.worldAxis.firstIndex(of: world)!
    }

    /// Visits every canonical voxel in canonical order (x fastest) with the offset of its stored voxel.
    @inline(__always)
    func forEachVoxel(_ body: (_ canonical: Int, _ source: Int) -> Void) {
        let shape = canonicalShape
        let (start, step) = storedSteps()
        var n = 0
        for z in 0..<shape[2] {
            for y in 0..<shape[1] {
                var offset = start + y * step[1] + z * step[2]
                for _ in 0..<shape[0] {
                    body(n, offset)
                    offset += step[0]
                    n += 1
                }
            }
        }
    }

    /// Canonical voxel (x, y, z) is stored voxel `start + x * step[0] + y * step[1] + z * step[2]`.
    public func storedSteps() -> (start: Int, step: [Int]) {
        let strides = [1, sourceShape[0], sourceShape[0] * sourceShape[1]]
        var start = 0
        var step = [0, 0, 0]
        for world in 0..<3 {
            let axis = sourceAxis(forWorld: world)
            if orientation.reversed[axis] {
                start += (sourceShape[axis] - 1) * strides[axis]
                step[world] = -strides[axis]
            } else {
                step[world] = strides[axis]
            }
        }
        return (start, step)
    }

    /// The stored grid rearranged into canonical order.
    public func toCanonical<T: Sendable & Equatable>(_ grid: VoxelGrid<T>) -> VoxelGrid<T> {
        precondition(grid.shape == sourceShape, "grid \(grid.shape) is not the oriented volume's \(sourceShape)")
        let count = grid.values.count
        let values = [T](unsafeUninitializedCapacity: count) { out, initialized in
            grid.values.withUnsafeBufferPointer { source in
                forEachVoxel { canonical, stored in (out.baseAddress! + canonical).initialize(to: source[stored]) }
            }
            initialized = count
        }
        return VoxelGrid(shape: canonicalShape, values: values)
    }

    /// The exact inverse of `toCanonical`: a canonical grid back in the stored voxel order.
    public func fromCanonical<T: Sendable & Equatable>(_ grid: VoxelGrid<T>) -> VoxelGrid<T> {
        precondition(grid.shape == canonicalShape, "grid \(grid.shape) is not the canonical shape \(canonicalShape)")
        let count = grid.values.count
        let values = [T](unsafeUninitializedCapacity: count) { out, initialized in
            grid.values.withUnsafeBufferPointer { canonicalValues in
                forEachVoxel { canonical, stored in
                    (out.baseAddress! + stored).initialize(to: canonicalValues[canonical])
                }
            }
            initialized = count
        }
        return VoxelGrid(shape: sourceShape, values: values)
    }

    /// The affine of the canonical grid: canonical voxel (x, y, z) lands where its stored voxel does.
    public func canonicalAffine(_ affine: Affine) -> Affine {
        var result = Affine.identity
        let origin = (0..<3).map { world -> Double in
            let axis = sourceAxis(forWorld: world)
            return orientation.reversed[axis] ? Double(sourceShape[axis] - 1) : 0
        }
        // The stored index of canonical (0,0,0), then each canonical axis as a stored-axis step of +-1.
        var start = [0.0, 0.0, 0.0]
        for world in 0..<3 { start[sourceAxis(forWorld: world)] = origin[world] }
        let translation = affine.apply(start)
        for world in 0..<3 {
            let axis = sourceAxis(forWorld: world)
            let sign: Double = orientation.reversed[axis] ? -1 : 1
            for row in 0..<3 { result[row, world] = affine[row, axis] * sign }
        }
        for row in 0..<3 { result[row, 3] = translation[row] }
        return result
    }

    /// Voxel sizes (mm) along the canonical axes: the lengths of the affine's columns.
    public func canonicalSpacing(_ affine: Affine) -> [Double] {
        (0..<3).map { world in
            let axis = sourceAxis(forWorld: world)
            return (0..<3).map { affine[$0, axis] * affine[$0, axis] }.reduce(0, +).squareRoot()
        }
    }
}

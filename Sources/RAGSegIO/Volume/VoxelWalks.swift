// What every in-place voxel reader (`StoredVoxels`, `IntensityVoxels`, `LabelVoxels`) builds on its own
// `walk` (values along a strided path): the values gathered into an array (a slice, a range), and a pass
// over all voxels a chunk at a time. One body each, whatever the value type.

/// The `count` values `walk` visits, in visiting order (`walk` hands each with its index 0..<count).
@inline(__always)
func gathered<Value>(_ count: Int, _ walk: ((Int, Value) -> Void) -> Void) -> [Value] {
    [Value](unsafeUninitializedCapacity: count) { out, initialized in
        walk { (out.baseAddress! + $0).initialize(to: $1) }
        initialized = count
    }
}

/// Calls `body(firstIndex, values)` for the `count` voxels in stored order, `chunk` at a time, holding one
/// chunk: `walk(first, n, visit)` visits voxels first..<first + n.
@inline(__always)
func forEachChunk<Value>(
    count: Int, chunk: Int, zero: Value, walk: (Int, Int, (Int, Value) -> Void) -> Void,
    _ body: (Int, UnsafeBufferPointer<Value>) -> Void
) {
    var values = [Value](repeating: zero, count: min(chunk, count))
    var first = 0
    while first < count {
        let n = min(chunk, count - first)
        values.withUnsafeMutableBufferPointer { out in walk(first, n) { i, v in out[i] = v } }
        values.withUnsafeBufferPointer { body(first, UnsafeBufferPointer(rebasing: $0[0..<n])) }
        first += n
    }
}

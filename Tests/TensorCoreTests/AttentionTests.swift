import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif
@testable import TensorCore

/// Deterministic uniform(-1, 1) values (SplitMix64), so tests need no fixture for random inputs.
func randomTensor(_ shape: [Int], seed: UInt64) -> Tensor {
    var state = seed
    let n = Tensor.count(of: shape)
    var values = [Float](repeating: 0, count: n)
    for i in 0..<n {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        values[i] = Float(Double(z >> 11) / Double(1 << 53) * 2 - 1)
    }
    return Tensor(shape: shape, data: values)
}

/// Textbook attention of selected query rows, in Double, one head at a time (no blocking, no BLAS).
func naiveAttentionRows(q: Tensor, k: Tensor, v: Tensor, heads: Int, scale: Double, rows: [Int]) -> [[Float]] {
    let nk = k.dim(-2), cq = q.dim(-1), cv = v.dim(-1), dq = cq / heads, dv = cv / heads
    return rows.map { i in
        var out = [Float](repeating: 0, count: cv)
        for h in 0..<heads {
            var s = [Double](repeating: 0, count: nk)
            for j in 0..<nk {
                var dot = 0.0
                for c in 0..<dq { dot += Double(q.data[i * cq + h * dq + c]) * Double(k.data[j * cq + h * dq + c]) }
                s[j] = dot * scale
            }
            let m = s.max()!
            let e = s.map { Foundation.exp($0 - m) }
            let total = e.reduce(0, +)
            for c in 0..<dv {
                var acc = 0.0
                for j in 0..<nk { acc += e[j] * Double(v.data[j * cv + h * dv + c]) }
                out[h * dv + c] = Float(acc / total)
            }
        }
        return out
    }
}

final class AttentionTests: XCTestCase {
    /// Unbatched, 2 heads, dq ≠ dv, explicit scale, Nq spanning two query blocks. Tolerance 1e-5 absolute
    /// (outputs are convex combinations of values in [-1, 1]).
    func testMatchesNaiveReference() {
        let nq = attentionQueryBlockRows(keys: 37) + 44, nk = 37
        let q = randomTensor([nq, 2 * 6], seed: 1), k = randomTensor([nk, 2 * 6], seed: 2),
            v = randomTensor([nk, 2 * 3], seed: 3)
        let out = attention(query: q, key: k, value: v, heads: 2, scale: 0.9)
        XCTAssertEqual(out.shape, [nq, 6])
        let ref = naiveAttentionRows(q: q, k: k, v: v, heads: 2, scale: 0.9, rows: Array(0..<nq))
        var maxError: Float = 0
        for i in 0..<nq { for c in 0..<6 { maxError = max(maxError, abs(out.data[i * 6 + c] - ref[i][c])) } }
        XCTAssertLessThanOrEqual(maxError, 1e-5)
    }

    /// Nq = 4096, Nk = 16384, d = 16, one head: the full score matrix would be 256 MiB. Checks the result on
    /// rows at block edges against the naive computation of those rows only, and that peak resident memory
    /// grew by far less than the score matrix would need.
    func testLargeShapeRunsInBoundedMemory() {
        let nq = 4096, nk = 16384, d = 16
        let q = randomTensor([nq, d], seed: 11), k = randomTensor([nk, d], seed: 12),
            v = randomTensor([nk, d], seed: 13)
        let before = peakResidentBytes()
        let out = attention(query: q, key: k, value: v, heads: 1)
        let grown = peakResidentBytes() - before
        XCTAssertEqual(out.shape, [nq, d])
        XCTAssertLessThan(grown, 128 << 20, "attention grew peak memory by \(grown >> 20) MiB")
        let block = attentionQueryBlockRows(keys: nk)
        let rows = [0, block - 1, block, nq / 2 + 7, nq - 1]
        let ref = naiveAttentionRows(q: q, k: k, v: v, heads: 1, scale: 1 / Double(d).squareRoot(), rows: rows)
        for (r, i) in rows.enumerated() {
            for c in 0..<d { XCTAssertEqual(out.data[i * d + c], ref[r][c], accuracy: 1e-5, "row \(i) channel \(c)") }
        }
    }

    private func peakResidentBytes() -> Int {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return usage.ru_maxrss * 1024  // Linux reports KiB
    }
}

// Percentile bounds of a volume without sorting (or copying) its voxels: an exact radix select. Each
// nonzero Float maps to a 32-bit key that orders like the value (sign bit set for positives, all bits
// flipped for negatives; zeros are left out, so +0/-0 never compete). A pass counts keys by their high
// 16 bits, which names the bin holding each wanted rank; a second pass counts, within those bins only,
// the low 16 bits, which names the exact key. The ranks are numpy's (`IntensityMapping.ranks`), so the
// bounds equal those of sorting the nonzero values, bit for bit; memory is a few 65536-entry tables.

extension IntensityMapping {
    /// The clipping range for intensities read in place: `bounds([Float])` of the same values.
    public func bounds(_ voxels: IntensityVoxels) -> (lower: Double, upper: Double) {
        switch self {
        case .window(let w):
            return (w.lower, w.upper)
        case .percentile(let low, let high):
            let select = RankSelect(voxels)
            guard select.count > 0 else { return (0, 0) }
            let wanted = [low, high].map { Self.ranks(count: select.count, $0) }
            let values = select.values(atRanks: Set(wanted.flatMap { [$0.below, $0.above] }))
            return (
                Self.percentile(count: select.count, low) { values[$0]! },
                Self.percentile(count: select.count, high) { values[$0]! }
            )
        }
    }
}

/// Exact order statistics of a volume's nonzero intensities, two streaming passes per query.
struct RankSelect {
    let voxels: IntensityVoxels
    /// Nonzero values per high 16 bits of the key.
    private(set) var high = [Int](repeating: 0, count: 1 << 16)
    /// Nonzero values in all.
    private(set) var count = 0

    init(_ voxels: IntensityVoxels) {
        self.voxels = voxels
        var high = [Int](repeating: 0, count: 1 << 16)
        var count = 0
        high.withUnsafeMutableBufferPointer { table in
            voxels.forEachChunk { _, values in
                for v in values where v != 0 {
                    table[Int(Self.key(v) >> 16)] += 1
                    count += 1
                }
            }
        }
        self.high = high
        self.count = count
    }

    /// An unsigned key in the order of the (nonzero, finite) values.
    @inline(__always)
    static func key(_ v: Float) -> UInt32 {
        let bits = v.bitPattern
        return bits & 0x8000_0000 != 0 ? ~bits : bits | 0x8000_0000
    }

    @inline(__always)
    static func value(_ key: UInt32) -> Float {
        Float(bitPattern: key & 0x8000_0000 != 0 ? key & 0x7FFF_FFFF : ~key)
    }

    /// The value at each rank (0-based, ascending) of `ranks`, all in 0..<count.
    func values(atRanks ranks: Set<Int>) -> [Int: Float] {
        // Which high bin holds each rank, and its rank inside the bin.
        var place: [Int: (bin: Int, rank: Int)] = [:]
        var below = 0
        var pending = ranks.sorted()[...]
        for bin in 0..<high.count where high[bin] > 0 {
            while let r = pending.first, r < below + high[bin] {
                place[r] = (bin, r - below)
                pending = pending.dropFirst()
            }
            below += high[bin]
        }
        precondition(pending.isEmpty, "ranks \(Array(pending)) out of 0..<\(count)")
        let bins = Array(Set(place.values.map(\.bin))).sorted()
        let slot = Dictionary(uniqueKeysWithValues: bins.enumerated().map { ($1, $0) })
        var low = [Int](repeating: 0, count: bins.count << 16)
        low.withUnsafeMutableBufferPointer { table in
            var binSlot = [Int](repeating: -1, count: 1 << 16)
            for (bin, s) in slot { binSlot[bin] = s }
            binSlot.withUnsafeBufferPointer { binSlot in
                voxels.forEachChunk { _, values in
                    for v in values where v != 0 {
                        let k = Self.key(v)
                        let s = binSlot[Int(k >> 16)]
                        if s >= 0 { table[s << 16 | Int(k & 0xFFFF)] += 1 }
                    }
                }
            }
        }
        var result: [Int: Float] = [:]
        for (r, (bin, rank)) in place {
            let base = slot[bin]! << 16
            var seen = 0
            for l in 0..<(1 << 16) {
                seen += low[base + l]
                if rank < seen {
                    result[r] = Self.value(UInt32(bin) << 16 | UInt32(l))
                    break
                }
            }
        }
        return result
    }
}

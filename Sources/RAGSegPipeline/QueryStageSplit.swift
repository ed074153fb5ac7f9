// Where the time of one retrieval query goes (`ragseg-bench query`): the stage seconds a
// `RetrievalSegmentation` records, with the derived figures the benchmark reports.

/// One query's stage seconds by name (`RetrievalSegmentation.stageOrder`), and what follows from them.
public struct QueryStageSplit: Sendable {
    public var seconds: [String: Double]

    public init(_ stages: [(stage: String, seconds: Double)]) {
        seconds = Dictionary(stages.map { ($0.stage, $0.seconds) }, uniquingKeysWith: { a, _ in a })
    }

    public init(_ stages: [(stage: QueryStage, seconds: Double)]) {
        self.init(stages.map { ($0.stage.rawValue, $0.seconds) })
    }

    public subscript(_ stage: String) -> Double { seconds[stage] ?? 0 }

    public var total: Double { self["total"] }

    /// Nearest-neighbour search + reading the k memories: the bank's part of a query.
    public var retrievalAndLoad: Double { self["search"] + self["load"] }

    /// `retrievalAndLoad` as a fraction of the total (0 when the total is 0).
    public var retrievalAndLoadShare: Double { total > 0 ? retrievalAndLoad / total : 0 }

    /// The total less its timed parts (embed, encode, search, load, attend, decode): bookkeeping between
    /// stages; about 0.
    public var untimed: Double {
        total - ["embed", "encode", "search", "load", "attend", "decode"].reduce(0) { $0 + self[$1] }
    }
}

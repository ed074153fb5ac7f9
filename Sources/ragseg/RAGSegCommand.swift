import ArgumentParser

@main
struct RAGSeg: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ragseg",
        abstract: "Training-free, retrieval-augmented few-shot medical image segmentation.",
        subcommands: [SegmentCommand.self, IndexCommand.self, Eval.self, Embed.self, Bench.self, DebugCommand.self])
}

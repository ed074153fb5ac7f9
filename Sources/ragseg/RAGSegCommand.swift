import ArgumentParser

@main
struct RAGSeg: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ragseg",
        abstract: "Training-free, retrieval-augmented few-shot medical image segmentation.",
        subcommands: [Embed.self, SegmentCommand.self, Bench.self, DebugCommand.self])
}

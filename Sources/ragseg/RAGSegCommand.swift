import ArgumentParser

@main
struct RAGSeg: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ragseg",
        abstract: "Training-free, retrieval-augmented few-shot medical image segmentation.",
        subcommands: [
            SegmentCommand.self, ServeCommand.self, IndexCommand.self, Eval.self, Embed.self, SampleData.self,
            WeightsCommand.self, DebugCommand.self,
        ])
}

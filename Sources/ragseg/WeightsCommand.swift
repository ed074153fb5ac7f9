import ArgumentParser
import RAGSegIO

/// `ragseg weights`: operations on weight files (conversion between the formats the loaders read).
struct WeightsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "weights",
        abstract: "Weight file tools.",
        subcommands: [Convert.self])

    struct Convert: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Convert a PyTorch checkpoint (.pt/.pth) or safetensors file to fp32 safetensors.",
            discussion: """
                Tensor names are kept, so the output loads exactly like the input (SAM 2's official .pt holds \
                {"model": state_dict}: its tensors are written under their state-dict names). The checkpoint is \
                read by a restricted unpickler that runs no code: a pickle naming anything but tensor rebuild \
                functions, storages and OrderedDict is refused. A `<input>.json` model description is copied to \
                `<output>.json`; a DINOv2 config.json is not (keep it beside the output yourself).
                """)

        @Argument(help: "Input weights (.pt, .pth or .safetensors).")
        var input: String

        @Argument(help: "Output .safetensors file.")
        var output: String

        @Flag(help: "Replace an existing output file.")
        var force = false

        func run() throws {
            let summary = try WeightConversion.toSafeTensors(input: input, output: output, overwrite: force)
            print("wrote \(output): \(summary.tensors) tensors, \(summary.values) values (fp32)")
            if let sidecar = summary.sidecar { print("copied the model description to \(sidecar)") }
        }
    }
}

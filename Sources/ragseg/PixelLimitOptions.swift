// `--max-pixels`: the largest image a command decodes (the same limit RAGSEG_MAX_PIXELS sets process-wide).
import ArgumentParser
import RAGSegIO

struct PixelLimitOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            """
            Largest image decoded, in pixels (width x height; default \(PNG.defaultMaxPixels), or \
            $\(PNG.maxPixelsVariable)).
            """,
            discussion: "A small PNG can declare a huge canvas; larger images are refused before decoding.",
            valueName: "n"))
    var maxPixels: Int?

    /// Checks the value and installs it for the whole process: ArgumentParser validates every option group
    /// before `run`, so a command needs only the `@OptionGroup` line for its image reads to honour it.
    func validate() throws {
        if let maxPixels {
            guard maxPixels > 0 else { throw ValidationError("--max-pixels must be positive, got \(maxPixels)") }
            PNG.setMaxPixels(maxPixels)
        }
    }
}

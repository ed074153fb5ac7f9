// Options both executables (`ragseg`, `ragseg-bench`) take.
// `--precision fp32|bf16`: the arithmetic of the large matrix products (TensorCore's Precision), process-wide.
import ArgumentParser
import TensorCore

extension Precision: ExpressibleByArgument {}

public struct PrecisionOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Products in fp32 (default, parity with the reference) or bf16 (oneDNN, fp32 accumulation).",
            discussion: """
                bf16 rounds the inputs of the large products (linear layers, attention) to bfloat16, about \
                twice as fast on CPUs with AVX512_BF16 or AMX, and is refused on other CPUs.
                """,
            valueName: "fp32|bf16"))
    public var precision: Precision = .fp32

    public init() {}

    /// Installs the precision for the whole process (ArgumentParser validates option groups before `run`).
    public func validate() throws {
        do {
            try Precision.use(precision)
        } catch let error as PrecisionError {
            throw ValidationError(error.description)
        }
    }
}

import CBLAS
import Foundation

/// Which OpenBLAS kernels this process runs, for benchmark reports.
///
/// OpenBLAS picks its kernels once at load time, from the CPU or from `OPENBLAS_CORETYPE`. An
/// environment that pins `OPENBLAS_CORETYPE=Haswell` (as some shared machines do, for results that do
/// not depend on the host) runs the AVX2 kernels even on an AVX-512 CPU: on the Zen 5 machines RAGSeg
/// is developed on that halves sgemm (123 vs 226 GFLOP/s per core). We do not override a setting the
/// environment made on purpose; benchmarks print it so a slow number is never a mystery.
public enum BLASKernels {
    /// OpenBLAS's kernel family in use, e.g. "SkylakeX", "Cooperlake", "Haswell".
    public static var coreName: String {
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name)
    }

    /// True when the CPU and OS support the AVX-512 subset of OpenBLAS's SkylakeX kernels.
    public static var cpuHasAVX512: Bool {
        guard let cpuinfo = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
            let flagsLine = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("flags") })
        else { return false }
        let flags = Set(flagsLine.split(separator: " ").map(String.init))
        return ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"].allSatisfy(flags.contains)
    }

    /// One line for benchmark headers, with advice when AVX2 kernels were forced on an AVX-512 CPU.
    public static var summary: String {
        let core = coreName
        let forced = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"]
        var line = "OpenBLAS kernels: \(core)"
        if let forced { line += " (OPENBLAS_CORETYPE=\(forced))" }
        if ["Haswell", "Zen", "Sandybridge"].contains(core), cpuHasAVX512 {
            line +=
                "\nnote: this CPU has AVX-512 but OpenBLAS runs its \(core) kernels; "
                + "OPENBLAS_CORETYPE=SkylakeX (or unsetting it) about doubles sgemm throughput"
        }
        return line
    }
}

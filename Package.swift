// swift-tools-version:6.0
// RAGSeg: training-free, retrieval-augmented few-shot medical image segmentation.
import PackageDescription

// Release-mode math even in debug/test builds: the tensor core is unusable at -Onone.
// Dynamic exclusivity checks are off in these targets: they showed up as 2% of the SAM 2 encoder
// (swift_beginAccess on captured variables in parallel loops); static checks still run.
let fastMath: [SwiftSetting] = [.unsafeFlags(["-O", "-enforce-exclusivity=unchecked"])]

let package = Package(
    name: "RAGSeg",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "ragseg", targets: ["ragseg"]),
        .executable(name: "ragseg-bench", targets: ["ragseg-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        // Already in Hummingbird's graph; named here because the server uses them directly (bound port, shutdown).
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.0.0"),
    ],
    targets: [
        // System libraries (Debian: libopenblas-dev, liblmdb-dev).
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS"),
        .systemLibrary(name: "CLMDB", path: "Sources/CLMDB"),
        // zlib (Debian: zlib1g-dev) for .nii.gz.
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        .systemLibrary(name: "CZstd", path: "Sources/CZstd"),
        // libpng behind a C shim: libpng reports errors by longjmp, which Swift cannot catch.
        .target(name: "CPNG", path: "Sources/CPNG", linkerSettings: [.linkedLibrary("png16")]),
        // Debian's libfaiss.a ships no C API: a small C++ wrapper with an exception-safe extern "C" surface.
        .target(
            name: "CFaiss", path: "Sources/CFaiss",
            cxxSettings: [.headerSearchPath("omp-shim"), .unsafeFlags(["-O2", "-fopenmp"])],
            linkerSettings: [
                .linkedLibrary("faiss"), .linkedLibrary("openblas"),
                .linkedLibrary("gomp"), .linkedLibrary("stdc++"),
            ]),
        // GELU, exp/softmax, sigmoid, SiLU compiled per instruction-set level (AVX-512/AVX2/SSE2), picked at run time.
        .target(name: "CKernels", path: "Sources/CKernels", exclude: ["kernels.inc"], cSettings: [.unsafeFlags(["-O3"])]),
        // oneDNN (Debian: libdnnl-dev) matmul for the bf16 precision: primitives cached per shape, one thread per call.
        .target(
            name: "CDNNL", path: "Sources/CDNNL", cSettings: [.unsafeFlags(["-O2"])],
            linkerSettings: [.linkedLibrary("dnnl"), .linkedLibrary("gomp")]),
        .target(name: "TensorCore", dependencies: ["CBLAS", "CKernels", "CDNNL"], swiftSettings: fastMath),
        .target(name: "RAGSegIO", dependencies: ["TensorCore", "CPNG", "CZlib"], swiftSettings: fastMath),
        .target(name: "DINOv2", dependencies: ["TensorCore", "RAGSegIO"], swiftSettings: fastMath),
        .target(name: "SAM2", dependencies: ["TensorCore", "RAGSegIO"], swiftSettings: fastMath),
        .target(name: "Evaluation", swiftSettings: fastMath),
        // Stores SAM 2's own SupportMemory values (the one memory type from the encoder to memory attention).
        .target(name: "SupportBank", dependencies: ["RAGSegIO", "SAM2", "CLMDB", "CFaiss", "CZlib", "CZstd"], exclude: ["README.md"], swiftSettings: fastMath),
        // The product's pipelines: ingest (PNG pairs, datasets, encoders), retrieval-augmented segmentation.
        .target(name: "RAGSegPipeline", dependencies: ["TensorCore", "RAGSegIO", "DINOv2", "SAM2", "SupportBank", "Evaluation"],
                swiftSettings: fastMath),
        // `ragseg serve`: the HTTP server (Hummingbird) over a bank, in a library so tests can run it in-process.
        .target(name: "RAGSegServer", dependencies: [
                    "TensorCore", "RAGSegIO", "SupportBank", "RAGSegPipeline", "SAM2",
                    .product(name: "Hummingbird", package: "hummingbird"),
                    .product(name: "NIOCore", package: "swift-nio"),
                    .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                    .product(name: "HTTPTypes", package: "swift-http-types"),
                    .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                    .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                ],
                swiftSettings: fastMath),
        // Command-line option groups both executables take.
        .target(
            name: "RAGSegCommandOptions",
            dependencies: ["TensorCore", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: fastMath),
        .executableTarget(
            name: "ragseg",
            dependencies: [
                "TensorCore", "RAGSegIO", "DINOv2", "SAM2", "SupportBank", "Evaluation", "RAGSegPipeline", "RAGSegServer",
                "RAGSegCommandOptions", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: fastMath),
        // The benchmarks (kernels, models, query path, bank), apart from the product CLI; the only client of
        // SupportBank's @_spi(Benchmark) bulk fill.
        .executableTarget(
            name: "ragseg-bench",
            dependencies: [
                "TensorCore", "RAGSegIO", "DINOv2", "SAM2", "SupportBank", "Evaluation", "RAGSegPipeline", "RAGSegServer",
                "RAGSegCommandOptions", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: fastMath),
        .testTarget(name: "TensorCoreTests", dependencies: ["TensorCore", "CKernels", "RAGSegIO"], resources: [.copy("Fixtures")]),
        .testTarget(name: "RAGSegIOTests", dependencies: ["RAGSegIO", "TensorCore"], resources: [.copy("Fixtures")]),
        .testTarget(name: "DINOv2Tests", dependencies: ["DINOv2", "TensorCore", "RAGSegIO"], resources: [.copy("Fixtures")]),
        .testTarget(name: "SAM2Tests", dependencies: ["SAM2", "TensorCore", "RAGSegIO"], resources: [.copy("Fixtures")]),
        .testTarget(name: "EvaluationTests", dependencies: ["Evaluation", "RAGSegIO"], resources: [.copy("Fixtures")]),
        // The tiny reference models and synthetic cases that end-to-end suites share (test code only).
        .target(name: "RAGSegTestSupport", dependencies: ["RAGSegPipeline", "SupportBank", "SAM2", "DINOv2", "RAGSegIO"],
                path: "Tests/RAGSegTestSupport"),
        .testTarget(name: "PipelineTests", dependencies: ["RAGSegPipeline", "RAGSegTestSupport", "SupportBank", "SAM2", "DINOv2", "RAGSegIO", "TensorCore"]),
        .testTarget(name: "ServerTests", dependencies: [
            "RAGSegTestSupport",
            "RAGSegServer", "RAGSegPipeline", "SupportBank", "SAM2", "DINOv2", "RAGSegIO", "TensorCore",
        ]),
        .testTarget(name: "SupportBankTests", dependencies: ["SupportBank", "SAM2", "TensorCore", "RAGSegIO", "RAGSegTestSupport"]),
        // NIfTI reading/writing against nibabel's and libnifti's files, orientation, slicing, windows.
        .testTarget(name: "VolumeTests", dependencies: ["RAGSegIO", "TensorCore"], resources: [.copy("Fixtures")]),
    ],
    cxxLanguageStandard: .cxx17
)

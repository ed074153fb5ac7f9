import Foundation
import XCTest
@testable import RAGSegIO
#if canImport(Glibc)
import Glibc
#endif

/// PyTorch checkpoints written by torch.save (tools/make_pt_fixtures.py): every tensor must come out exactly as
/// torch holds it, and every hostile or damaged file must be a clear error before anything runs or is allocated.
final class TorchCheckpointTests: XCTestCase {
    /// torch's own tensors, contiguous fp32, written by the safetensors library from the same values.
    func assertMatchesTorch(_ path: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let checkpoint = try TorchCheckpoint(path: path)
        let expected = try SafeTensors(path: fixture("torch/mixed_expected.safetensors"))
        XCTAssertEqual(checkpoint.names, expected.names, "every tensor, and nothing else", file: file, line: line)
        XCTAssertEqual(checkpoint.stateDictKey, "")
        for name in expected.names {
            let got = try checkpoint.tensor(name), want = try expected.tensor(name)
            XCTAssertEqual(got.shape, want.shape, name, file: file, line: line)
            assertBitwiseEqual(got.data, want.data, name, file: file, line: line)
        }
    }

    func testTensorsOfEveryKindMatchTorchBitForBit() throws {
        try assertMatchesTorch(fixture("torch/mixed.pt"))
        let checkpoint = try TorchCheckpoint(path: fixture("torch/mixed.pt"))
        // The stored types are reported as stored; views and shared storages come out as torch shows them.
        XCTAssertEqual(checkpoint.entry("f16")?.dtype, "F16")
        XCTAssertEqual(checkpoint.entry("bf16")?.dtype, "BF16")
        XCTAssertEqual(checkpoint.entry("i64")?.dtype, "I64")
        XCTAssertEqual(checkpoint.entry("transposed")?.shape, [3, 2])
        XCTAssertEqual(checkpoint.entry("scalar")?.shape, [])
        XCTAssertFalse(checkpoint.contains("not_a_tensor"), "non-tensor entries are skipped")
        let f32 = try checkpoint.tensor("f32").data, transposed = try checkpoint.tensor("transposed").data
        XCTAssertEqual(transposed, [f32[0], f32[3], f32[1], f32[4], f32[2], f32[5]])
        XCTAssertEqual(try checkpoint.tensor("i64").data, [-3, 0, 7, 1_099_511_627_776])
    }

    func testZip64ArchiveReadsTheSame() throws {
        try assertMatchesTorch(fixture("torch/zip64.pt"))
    }

    func testFormatIsChosenByContentNotName() throws {
        let dir = try TemporaryDirectory()
        let renamed = dir.path("looks-like.safetensors")
        try FileManager.default.copyItem(atPath: fixture("torch/mixed.pt"), toPath: renamed)
        XCTAssertTrue(try TensorFiles.open(renamed) is TorchCheckpoint)
        XCTAssertTrue(try TensorFiles.open(fixture("torch/mixed_expected.safetensors")) is SafeTensors)
        let notTorch = try dir.write(Array("not a checkpoint at all".utf8), "weights.pt")
        assertIOError(try TensorFiles.open(notTorch), names: "weights.pt", contains: "not a PyTorch zip checkpoint")
    }

    // MARK: hostile and damaged files

    static let executionMarker = "/tmp/ragseg-pickle-fixture-was-executed"

    func testCodeExecutionPicklesAreRefusedAndNothingRuns() throws {
        try? FileManager.default.removeItem(atPath: Self.executionMarker)
        let cases = [
            ("hostile_os_system.pt", "at byte 2: refuses global 'os.system'"),
            ("hostile_builtins_eval.pt", "refuses global 'builtins.eval'"),
            ("hostile_unknown_torch_global.pt", "refuses global 'torch.load'"),
            ("hostile_reduce_string.pt", "REDUCE calls the string 'os.system', which is not an allowed function"),
        ]
        for (name, message) in cases {
            assertIOError(try TensorFiles.open(fixture("torch/" + name)), names: name, contains: message)
            assertIOError(try TorchCheckpoint(path: fixture("torch/" + name)), names: name, contains: "nothing was run")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: Self.executionMarker), "a pickle was executed")
    }

    func testImpossibleSizesAreRefusedBeforeAllocating() throws {
        let before = peakResidentBytes()
        let cases = [
            ("hostile_storage_offset.pt", "reaches element 10 of storage '0', which holds 6 elements"),
            ("hostile_numel.pt", "declares 1073741824 F32 elements"),
            ("hostile_numel_overflow.pt", "declares 4611686018427387904 F32 elements"),
            ("hostile_missing_storage.pt", "storage '7' has no data/7 entry"),
            ("hostile_long_string.pt", "declares 1099511627776 bytes"),
            ("hostile_memo.pt", "memo entry 4294967280 was never stored"),
            ("hostile_deep.pt", "nested more than 100 levels deep"),
        ]
        for (name, message) in cases {
            assertIOError(try TorchCheckpoint(path: fixture("torch/" + name)), names: name, contains: message)
        }
        // The claims add up to terabytes; refusing them must not have touched more than a little memory.
        XCTAssertLessThan(peakResidentBytes() - before, 64 << 20)
    }

    func testDamagedArchivesAndOtherFormatsAreClearErrors() throws {
        assertIOError(
            try TorchCheckpoint(path: fixture("torch/truncated.pt")), names: "truncated.pt",
            contains: "no end-of-central-directory record")
        assertIOError(
            try TorchCheckpoint(path: fixture("torch/compressed.pt")), names: "compressed.pt",
            contains: "is compressed (method 8)")
        assertIOError(try TensorFiles.open(fixture("torch/legacy.pt")), names: "legacy.pt", contains: "PyTorch 1.6")
        assertIOError(
            try TorchCheckpoint(path: fixture("st_f32.safetensors")), names: "st_f32.safetensors",
            contains: "no end-of-central-directory record")
    }

    /// Every prefix of a real checkpoint, and the file with a hole cut out of its middle, is an error (never
    /// a trap or a read outside the file).
    func testEveryTruncationAndCutThrows() throws {
        let good = try fixtureBytes("torch/mixed.pt")
        let dir = try TemporaryDirectory()
        for cut in stride(from: 0, to: good.count, by: 13) {
            let p = try dir.write(Array(good[..<cut]), "cut.pt")
            XCTAssertThrowsError(try TorchCheckpoint(path: p), "prefix of \(cut) bytes") {
                XCTAssertTrue($0 is RAGSegIOError, "\($0)")
            }
        }
        for start in stride(from: 0, to: good.count - 200, by: 97) {
            let p = try dir.write(Array(good[..<start] + good[(start + 100)...]), "hole.pt")
            XCTAssertThrowsError(try TorchCheckpoint(path: p), "100 bytes cut at \(start)") {
                XCTAssertTrue($0 is RAGSegIOError, "\($0)")
            }
        }
    }

    // MARK: conversion

    func testConvertWritesTheSameTensorsAsSafeTensors() throws {
        let dir = try TemporaryDirectory()
        let out = dir.path("mixed.safetensors")
        let summary = try WeightConversion.toSafeTensors(input: fixture("torch/mixed.pt"), output: out)
        XCTAssertEqual(summary.tensors, 13)
        XCTAssertNil(summary.sidecar)
        let converted = try SafeTensors(path: out),
            expected = try SafeTensors(path: fixture("torch/mixed_expected.safetensors"))
        XCTAssertEqual(converted.names, expected.names)
        XCTAssertEqual(converted.metadata["source"], "mixed.pt")
        for name in expected.names {
            assertBitwiseEqual(try converted.tensor(name).data, try expected.tensor(name).data, name)
        }
        assertIOError(
            try WeightConversion.toSafeTensors(input: fixture("torch/mixed.pt"), output: out),
            names: "mixed.safetensors",
            contains: "already exists")
        XCTAssertEqual(
            try WeightConversion.toSafeTensors(input: fixture("torch/mixed.pt"), output: out, overwrite: true).tensors,
            13)
        // A refused input leaves no output behind.
        let refused = dir.path("refused.safetensors")
        assertIOError(
            try WeightConversion.toSafeTensors(input: fixture("torch/hostile_os_system.pt"), output: refused),
            names: "hostile_os_system.pt", contains: "refuses global 'os.system'")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.url.path), ["mixed.safetensors"])
    }
}

/// Peak resident set size of this process so far.
func peakResidentBytes() -> Int {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return usage.ru_maxrss * 1024  // kilobytes on Linux
}

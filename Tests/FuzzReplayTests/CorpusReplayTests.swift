import Foundation
import Testing

/// Every committed fuzz input (seed corpora and crash regressions under Tests/Fuzz/Corpus)
/// runs through its fuzz body in the normal test suite, so a fixed crash stays fixed. Each
/// file runs in a process of its own, the fuzz target's executable built without libFuzzer
/// (next to this test binary: the same build), because a body reports a broken check by
/// trapping: a failing file fails its own test case, by name, and the rest still run. Every
/// seed is listed by name, so a regression seed cannot be dropped or replaced unnoticed.
@Suite("Fuzz corpora replayed")
struct CorpusReplayTests {
    static let corpusRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fuzz/Corpus")

    /// Each fuzz target's corpus directory and every seed it must hold.
    static let seeds: [String: [String]] = [
        "message-decoder": ["config", "get-features", "handshake", "inflight", "iotlb", "mem-table", "vring-setup"],
        "descriptor-chain": [
            "across-regions", "available-index-jump", "buffer-into-gap-with-segment-buffer-full", "direct-chains",
            "indirect-table", "indirect-table-across-three-regions", "long-indirect-chain",
            "regression-indirect-table-through-three-regions-into-gap", "ring-of-256", "small-segment-buffer",
            "wrapping-indices-and-loop",
        ],
        "block-request": ["discard-and-write-zeroes", "flush-identify-unsupported", "hostile-shapes", "read-only-device",
                          "write-then-read"],
        "iommu-model": [
            "cookies-fixed-areas-and-quarantine", "hostile-configuration", "mapper-byte-pages-at-the-top",
            "mapper-reserve-link-replace-release", "mirror-huge-leaves-split-and-punched", "mirror-top-of-space-and-refusals",
            "pins-deferred-invalidation-and-limit", "regression-invalidate-split-at-entry-limit", "reverse-translation-regions",
        ],
        "qcow2-image": ["compressed", "extended-l2", "missing-backing", "refcount-1-bit", "refcount-64-bit",
                        "regression-backing-name-offset-overflow", "regression-shared-cluster-freed-by-copy-on-write", "v2-data",
                        "v3-data", "zero-clusters"],
        "dispatch": ["add-remove-region", "config", "get-features-with-fds", "handshake", "inflight", "iotlb", "mem-table",
                     "reset", "rings-start-and-stop"],
    ]

    /// One corpus file of one target.
    struct Input: CustomTestStringConvertible, Sendable {
        let target: String
        let name: String
        var path: String { CorpusReplayTests.corpusRoot.appendingPathComponent("\(target)/\(name)").path }
        var testDescription: String { "\(target)/\(name)" }
    }

    /// Every file in the corpus directories (listed or not: a new seed is replayed too).
    static var inputs: [Input] {
        seeds.keys.sorted().flatMap { target in
            let names = (try? FileManager.default.contentsOfDirectory(atPath: corpusRoot.appendingPathComponent(target).path)) ?? []
            return names.sorted().map { Input(target: target, name: $0) }
        }
    }

    @Test("every listed seed is in its corpus", arguments: seeds.keys.sorted())
    func listedSeedsArePresent(_ target: String) throws {
        let present = Set(try FileManager.default.contentsOfDirectory(atPath: Self.corpusRoot.appendingPathComponent(target).path))
        let missing = Set(Self.seeds[target] ?? []).subtracting(present)
        #expect(missing.isEmpty, "\(target): seeds missing from Tests/Fuzz/Corpus/\(target): \(missing.sorted())")
    }

    @Test("the input replays through its fuzz body without tripping a check", arguments: inputs)
    func inputReplays(_ input: Input) throws {
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("fuzz-\(input.target)")
        let process = Process()
        process.executableURL = executable
        process.arguments = [input.path]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationReason == .exit && process.terminationStatus == 0,
                "\(input.testDescription) tripped a check (\(process.terminationReason == .uncaughtSignal ? "signal" : "status") \(process.terminationStatus)): \(text)")
        #expect(text.contains("ran \(input.path) "), "\(input.testDescription): \(text)")
    }
}
